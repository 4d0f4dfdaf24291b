"""StyleGAN2 (config F's architecture and training, narrowed) on scikit-learn's digits at 32x32, CPU-sized.

Launch: python launch.py --experiment=stylegan2_digits --workdir=/tmp/stylegan2_digits
Runtime: measured on 2 CPU cores shared with other jobs (load average 15-20): about 3 CPU-minutes to compile
  the three step variants (main, +path length, +R1), then about 1.5 CPU-seconds per step (6-12 s of wall time
  under that load), so the 3000-step default is roughly 75 CPU-minutes. Only 250 steps were run here: the
  samples were still textured blobs, not digits (docs/images/stylegan2_digits_step250.png).
Reproduces: no published number; the check is that samples are recognisable digits (README sample grid).

Everything but the widths follows stylegan2_ffhq: lazy R1 (gamma reduced to 1 for these 1,797 small
images) every 16 steps, path length every 4, style mixing, Adam with the lazy-regularisation correction.
Narrowed to run on a laptop CPU: z and w of 128, 2 mapping layers (the lr multiplier 0.01 is kept),
64 channels, batch 32, and a G EMA half-life of 1k images (10k would average over a third of this run).
"""
from experiments import stylegan_configs


def get_config():
  config = stylegan_configs.stylegan2_config(
    resolution=32, channels=1, batch_size=32, ema_kimg=1.0,
    z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64, r1_gamma=1.0)
  config.data.source = "digits"
  config.train.steps = 3000
  config.train.log_every = 100
  config.train.sample_every = 500
  config.train.checkpoint_every = 1000
  return config
