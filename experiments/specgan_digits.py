"""SPECGAN-PLACEHOLDER"""
from experiments import common


def get_config():
  config = common.audio_gan_config("specgan", d=16, sample_rate=8000, clip_length=8192)
  config.train.steps = 2000
  config.train.log_every = 50
  config.train.sample_every = 500
  config.train.checkpoint_every = 500
  return config
