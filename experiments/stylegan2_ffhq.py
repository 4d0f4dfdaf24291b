"""StyleGAN2 config F on FFHQ (PNG folder or zip), 1024x1024 by default: the paper's FID 2.84.

Launch: python launch.py --experiment=stylegan2_ffhq --workdir=/runs/sg2_ffhq --config.data.path=/data/ffhq.zip
        (any size: --config.data.resolution=256 resizes the images; FFHQ ships 1024x1024 PNGs.)
Runtime: the paper's 25M images at batch 32 = 781,250 steps; NVlabs report 9 days 18 hours on 8 V100s for
  1024x1024 config F (stylegan2 README), about 70 GPU-days. Not run here.
Reproduces: Karras et al. 2020, Table 1, config F, FFHQ 1024x1024: FID 2.84 (50k samples, no truncation),
  perceptual path length 145.0. Evaluate with the FID command line on `--mode=sample` output.

Settings, all from the paper / NVlabs' config F: batch 32 (global, split over every device), Adam
lr 0.002, betas (0, 0.99), eps 1e-8 with the lazy-regularisation correction (experiments/stylegan_configs.py),
R1 gamma 10 every 16 steps, path length weight 2 every 4 steps on half batches, style mixing 0.9,
mapping 8 layers with lr multiplier 0.01, minibatch std groups of 4, G EMA half-life 10k images,
channel_base 32768 (512 channels up to 64x64, 16384 / res above), conv_clamp 256.
The dataset is mirrored (data.mirror, the official --mirror=1), as in the paper. Not reproduced: mixed precision.
"""
from experiments import stylegan_configs


def get_config():
  config = stylegan_configs.stylegan2_config(resolution=1024, channels=3, batch_size=32, ema_kimg=10.0)
  config.data.source = "folder"
  config.data.path = ""  # --config.data.path=/data/ffhq or .../ffhq.zip
  config.data.mirror = True  # each image also seen flipped, as NVlabs trained FFHQ
  config.data.num_workers = 4  # PNG decoding and resizing at 1024x1024 needs processes, not threads
  config.train.steps = 781_250  # 25,000 kimg at batch 32
  config.train.log_every = 100
  config.train.sample_every = 5_000
  config.train.checkpoint_every = 5_000
  config.train.num_grid_samples = 16
  return config
