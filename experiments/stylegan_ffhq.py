"""StyleGAN (v1, progressive growing) on FFHQ (PNG folder or zip), 1024x1024 by default: the paper's FID 4.40.

Launch: python launch.py --experiment=stylegan_ffhq --workdir=/runs/sg_ffhq --config.data.path=/data/ffhq.zip
Runtime: the paper's 25M images (717,964 steps; fewer, larger batches below 64x64); NVlabs report about one week on 8 V100s for
  FFHQ 1024x1024 (stylegan README). Not run here.
Reproduces: Karras et al. 2019, Table 1, configuration F (style-based generator, noise, mixing
  regularisation), FFHQ 1024x1024: FID 4.40 (50k samples, no truncation).

Settings from the paper and NVlabs' FFHQ config for 8 GPUs (stylegan/train.py): mapping 8 x 512 with lr
multiplier 0.01, channels 16384 / resolution up to 512, growing from 8x8 with 600k images per fade and per
stable stage, minibatch 256 at 8x8, 128 at 16x16, 64 at 32x32 and 32 from 64x64 on (global), learning rate
0.001 up to 64x64, then 0.0015 (128), 0.002 (256), 0.003 (512, 1024), style mixing 0.9, R1 gamma 10 on every
D step, Adam betas (0, 0.99), G EMA half-life 10k images, truncation psi 0.7 on the first 8 layers at sampling
time (--truncation_psi / cutoff), 25M images in all, the dataset mirrored (data.mirror), as the paper's FFHQ.
"""
from experiments import stylegan_configs
from gans.variants import stylegan


def get_config():
  config = stylegan_configs.stylegan_config(
    resolution=1024, channels=3, batch_size=32, learning_rate=0.001, ema_kimg=10.0, stable_kimg=600,
    fade_kimg=600, batch_by_resolution={8: 256, 16: 128, 32: 64},
    learning_rate_by_resolution={128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003})
  config.data.source = "folder"
  config.data.path = ""  # --config.data.path=/data/ffhq or .../ffhq.zip
  config.data.mirror = True  # each image also seen flipped, as NVlabs trained FFHQ
  config.data.num_workers = 4  # PNG decoding and resizing at 1024x1024 needs processes, not threads
  config.train.steps = stylegan.steps_for_images(config, 25_000_000)  # the paper's 25M images
  config.train.log_every = 100
  config.train.sample_every = 5_000
  config.train.checkpoint_every = 5_000
  config.train.num_grid_samples = 16
  return config
