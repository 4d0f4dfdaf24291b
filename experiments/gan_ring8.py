"""Vanilla GAN on the ring of 8 Gaussians (PacGAN paper, Table 1, row GAN).

Launch: python launch.py --experiment=gan_ring8 --workdir=/tmp/gan_ring8
Runtime: the paper's 400 epochs of 100,000 points (400k steps) take about 1.5 hours on 2 idle CPU cores (73 steps/s in a
  6,000-step run, commit da77899); the README table's shorter runs say their steps.
Reproduces: Lin et al. 2018, Table 1, GAN: 6.3 modes, 98.2% high-quality samples, reverse KL 0.45 (mean of 10 trials).
  Metrics over 2,500 samples (gans/metrics/modes.py); pack m=3, 4: --config.model.pack=3 --config.train.batch_size=300.
"""
from experiments import common


def get_config():
  return common.mixture_gan_config("ring8", pack=1)
