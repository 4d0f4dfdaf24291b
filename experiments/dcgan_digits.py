"""DCGAN on scikit-learn's 8x8 digits upsampled to 32x32: the no-download default.

Launch: python launch.py --experiment=dcgan_digits --workdir=/tmp/dcgan_digits
Runtime: 2,000 steps (the default) in 2 min 19 s of wall time on 2 idle CPU cores, including start-up,
  compilation, the digits classifier and the final evaluation (16.5 steps/s while training; seed 0, commit 8834ff2).
Reproduces: no published number; samples are recognisable digits by step 2,000 (README sample grid);
  that run's evaluation: classifier-FID 34.5, class coverage 1.0, class KL 0.049.
"""
from experiments import common
from gans.metrics import eval_config


def get_config():
  config = common.dcgan_config(resolution=32, channels=1, base_channels=32)
  config.data.source = "digits"
  config.train.batch_size = 64
  config.train.steps = 2000
  config.train.log_every = 100
  config.train.sample_every = 500
  config.train.checkpoint_every = 1000
  # No download: the project's digits classifier (trained on first use, cached); at the end of training.
  config.eval = eval_config.eval_config(eval_config.CLASSIFIER_METRICS, num_samples=2000)
  return config
