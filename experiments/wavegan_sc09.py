"""WAVEGAN-PLACEHOLDER"""
from experiments import common


def get_config():
  config = common.use_sc09(common.audio_gan_config("wavegan", d=64))
  config.train.steps = 200_000
  config.train.log_every = 100
  config.train.sample_every = 5000
  config.train.checkpoint_every = 5000
  config.train.eval_every = 20_000
  return config
