"""StyleGAN (v1, progressive growing 8 -> 16 -> 32) on scikit-learn's digits at 32x32, CPU-sized.

Launch: python launch.py --experiment=stylegan_digits --workdir=/tmp/stylegan_digits
Runtime: 2000 steps (the default) in 14 min 14 s of wall time on 2 idle CPU cores (commit da77899): the
  8x8 stage at about 10 steps/s, 32x32 at about 1.7 steps/s, one compilation per stage. Samples: digit shapes
  (9, 5, 3, 0) at step 750 in the 16x16 stage, recognisable 32x32 digits at step 2000 (README grids).
Reproduces: no published number; the check is that samples are recognisable digits (README sample grid).

stylegan_ffhq's architecture and training narrowed to run on a laptop CPU: z and w of 64, 2 mapping
layers (lr multiplier 0.01 kept), at most 64 channels, batch 32, lr 0.002, R1 gamma 1, 300 steps
(9.6k images) per stable and per fade stage, G EMA half-life 1k images.
"""
from experiments import stylegan_configs


def get_config():
  config = stylegan_configs.stylegan_config(
    resolution=32, channels=1, batch_size=32, learning_rate=0.002, ema_kimg=1.0, stable_kimg=9.6, fade_kimg=9.6,
    z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64, r1_gamma=1.0, start_resolution=8)
  config.data.source = "digits"
  config.train.steps = 2000
  config.train.log_every = 50
  config.train.sample_every = 250
  config.train.checkpoint_every = 500
  return config
