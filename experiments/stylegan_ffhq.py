"""StyleGAN (v1, progressive growing) on FFHQ (PNG folder or zip), 1024x1024 by default: the paper's FID 4.40.

Launch: python launch.py --experiment=stylegan_ffhq --workdir=/runs/sg_ffhq --config.data.path=/data/ffhq.zip
Runtime: the paper's 25M images = 781,250 steps at batch 32; NVlabs report about one week on 8 V100s for
  FFHQ 1024x1024 (stylegan README). Not run here.
Reproduces: Karras et al. 2019, Table 1, configuration F (style-based generator, noise, mixing
  regularisation), FFHQ 1024x1024: FID 4.40 (50k samples, no truncation).

Settings from the paper and NVlabs' FFHQ config: mapping 8 x 512 with lr multiplier 0.01, channels
16384 / resolution up to 512, growing from 8x8 with 600k images per fade and per stable stage,
style mixing 0.9, R1 gamma 10 on every D step, Adam betas (0, 0.99), G EMA half-life 10k images,
truncation psi 0.7 on the first 8 layers at sampling time (--truncation_psi / cutoff).
Not reproduced: the official per-resolution batch (256 at 8x8 ... 32 from 64x64) and learning rate
(0.001 up to 128x128, then 0.0015, 0.002, 0.003) schedules -- the trainer has one batch size and one
learning rate per group, so this uses batch 32 and lr 0.001 throughout -- and x-flip augmentation.
"""
from experiments import stylegan_configs


def get_config():
  config = stylegan_configs.stylegan_config(resolution=1024, channels=3, batch_size=32, learning_rate=0.001,
                                            ema_kimg=10.0, stable_kimg=600, fade_kimg=600)
  config.data.source = "folder"
  config.data.path = ""  # --config.data.path=/data/ffhq or .../ffhq.zip
  config.data.num_workers = 4  # PNG decoding and resizing at 1024x1024 needs processes, not threads
  config.train.steps = 781_250  # 25,000 kimg at batch 32
  config.train.log_every = 100
  config.train.sample_every = 5_000
  config.train.checkpoint_every = 5_000
  config.train.num_grid_samples = 16
  return config
