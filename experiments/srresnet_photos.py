"""SRResNet-MSE (Ledig et al. 2017) on the photographs bundled with scikit-image/scikit-learn: no download.

Launch: python launch.py --experiment=srresnet_photos --workdir=/tmp/srresnet_photos
Runtime: not measured yet (coordinator's run).
Narrowed for 2 CPU cores: B = 6 residual blocks of 32 channels (paper: 16 of 64), 48x48 HR crops (paper 96),
  batch 16, 3,000 steps (paper: 10^6 on ImageNet). Training photos: hubble_deep_field, immunohistochemistry,
  stereo_motorcycle, retina, rocket, china.jpg, flower.jpg; held out: astronaut, chelsea, coffee
  (gans/data/super_resolution.py), their central 128x128 squares.
Reproduces (in miniature, to be measured): Table 2's ordering, SRResNet's Y-channel PSNR/SSIM (4-pixel border)
  well above bicubic upsampling of the same inputs (eval.jsonl: super_resolution_*).
"""
from experiments import srgan_configs


def get_config():
  config = srgan_configs.srgan_config(objective="srresnet", blocks=6, features=32, crop=48, steps=6000,
                                      pretrain_learning_rate=1e-3)
  config.train.log_every = 100
  config.train.sample_every = 1000
  config.train.checkpoint_every = 1000
  return config
