"""StyleGAN2 (config F's architecture and training, narrowed) on scikit-learn's digits at 32x32, CPU-sized.

Launch: python launch.py --experiment=stylegan2_digits --workdir=/tmp/stylegan2_digits
Runtime: 1500 steps (the default) in 9 min 26 s of wall time on 2 idle CPU cores, commit b557c39: the first 100
  steps in 2 min 10 s after training starts (compiling the three step variants: main, +path length, +R1), then
  3.0-3.7 steps/s (13 min 12 s and 2.1 steps/s at da77899, before the faster StyleGAN2 layers; the samples of
  the two runs look the same). Samples: blobs at step 500, blurry but recognisable digit shapes (2, 3, 6, 8, 9)
  at step 1500 (README sample grids); longer runs sharpen them (--config.train.steps=3000, about 17 minutes by
  that step rate).
Reproduces: no published number; the check is that samples are recognisable digits (README sample grid).

Everything but the widths follows stylegan2_ffhq: lazy R1 (gamma reduced to 1 for these 1,797 small
images) every 16 steps, path length every 4, style mixing, Adam with the lazy-regularisation correction.
Narrowed to run on a laptop CPU: z and w of 64, 2 mapping layers (the lr multiplier 0.01 is kept),
64 channels, batch 32, and a G EMA half-life of 1k images (10k would average over a third of this run).
"""
from experiments import stylegan_configs


def get_config():
  config = stylegan_configs.stylegan2_config(
    resolution=32, channels=1, batch_size=32, ema_kimg=1.0,
    z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64, r1_gamma=1.0)
  config.data.source = "digits"
  config.train.steps = 1500  # ~9.5 minutes on 2 CPU cores
  config.train.log_every = 100
  config.train.sample_every = 250
  config.train.checkpoint_every = 1000
  return config
