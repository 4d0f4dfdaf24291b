"""DCGAN on CelebA at 64x64 from TFDS: the DCGAN paper's own network (ngf = ndf = 64, batch 128).

Data: prepared TFDS celeb_a; `pip install -e .[prepare]` then `tfds build celeb_a --data_dir=DIR` (CelebA's
files must be downloaded manually, see the TFDS catalog), and --config.data.path=DIR here.
Launch: python launch.py --experiment=dcgan_celeba64 --workdir=/tmp/dcgan_celeba64 --config.data.path=DIR
Runtime: RUNTIME
Reproduces: the DCGAN paper reports samples, not a number, on faces; FID columns come with the metrics issue.
"""
from experiments import common


def get_config():
  config = common.dcgan_config(resolution=64, channels=3, base_channels=64)
  config.data.source = "tfds"
  config.data.name = "celeb_a"
  config.train.steps = 20_000
  config.train.sample_every = 1000
  config.train.checkpoint_every = 2000
  return config
