"""SRGAN (Ledig et al. 2017) on the bundled photographs, G pretrained as SRResNet-MSE in the same run.

Launch: python launch.py --experiment=srgan_photos --workdir=/tmp/srgan_photos
  (the paper's SRGAN-VGG54: add --config.model.content=vgg54 --config.model.vgg_weights=vgg19-dcbccbbe.pth)
Runtime: 63 min on the 2-core machine shared with one or two other training runs (commit c038e40, seed 0):
  pretraining 26.5 min (3.8 steps/s), the GAN steps 35 min (1.4 steps/s).
Two phases of one run: steps 0 .. 5,999 train G alone with the MSE at 1e-3 (phase g_pretrain, =
  srresnet_photos), steps 6,000 .. 8,999 train SRGAN from that G (d_main, g_main: content + 1e-3 adversarial)
  at the paper's 1e-4, then 1e-5 for the last 1,500.
Narrowed for 2 CPU cores as srresnet_photos (B = 6 blocks of 32 channels, 48x48 HR crops, batch 16), and D at
  half width (32 ... 256 channels, dense 512); the content loss defaults to mse (SRGAN-MSE of Table 1), since
  the VGG19 file cannot be downloaded here.
Reproduces (in miniature): SRGAN below SRResNet in PSNR/SSIM but sharper (seed 0: 27.02 dB / 0.727 against
  28.33 / 0.784 at the end of pretraining; the sharpness statistic, Laplacian energy of SR over HR's, 0.775
  against 0.079; README "SRResNet and SRGAN"). Unlike the paper's Set5 numbers, SRGAN falls below bicubic here.
"""
from experiments import srgan_configs


def get_config():
  config = srgan_configs.srgan_config(objective="srgan", blocks=6, features=32, crop=48, steps=9000,
                                      pretrain_steps=6000, pretrain_learning_rate=1e-3)
  config.model.d_features = 32
  config.model.d_dense = 512
  config.train.log_every = 100
  config.train.sample_every = 1000
  config.train.checkpoint_every = 1000
  return config
