"""SRResNet-MSE (Ledig et al. 2017) on the photographs bundled with scikit-image/scikit-learn: no download.

Launch: python launch.py --experiment=srresnet_photos --workdir=/tmp/srresnet_photos
Runtime: the same 6,000 steps (srgan_photos' pretraining phase, tested step-equal) took 26.5 min on the 2-core
  machine shared with one other training run (3.8 steps/s; commit c038e40, seed 0).
Narrowed for 2 CPU cores: B = 6 residual blocks of 32 channels (paper: 16 of 64), 48x48 HR crops (paper 96),
  batch 16, 6,000 steps at learning rate 1e-3 (paper: 10^6 steps at 1e-4 on ImageNet; at 1e-4 this run was
  still 3.5 dB below bicubic after 3,000 steps, at 1e-3 level with it). Training photos: hubble_deep_field, immunohistochemistry,
  stereo_motorcycle, retina, rocket, china.jpg, flower.jpg; held out: astronaut, chelsea, coffee
  (gans/data/super_resolution.py), their central 128x128 squares.
Reproduces (in miniature): Table 2's ordering, SRResNet's Y-channel PSNR/SSIM (4-pixel border) above bicubic
  upsampling of the same inputs: 28.33 dB / 0.784 against 27.86 / 0.756 (seed 0; README "SRResNet and SRGAN").
"""
from experiments import srgan_configs


def get_config():
  config = srgan_configs.srgan_config(objective="srresnet", blocks=6, features=32, crop=48, steps=6000,
                                      pretrain_learning_rate=1e-3)
  config.train.log_every = 100
  config.train.sample_every = 1000
  config.train.checkpoint_every = 1000
  return config
