"""PacGAN2 on the grid of 25 Gaussians (PacGAN paper, Table 1, row PacGAN2).

Launch: python launch.py --experiment=pacgan_grid25 --workdir=/tmp/pacgan_grid25
Runtime: the paper's 400 epochs of 100,000 points (400k steps) take about 2 hours on 2 idle CPU cores (about 52 steps/s for
  pacgan_ring8's identical networks, commit da77899); the README table's shorter runs say their steps.
Reproduces: Lin et al. 2018, Table 1, PacGAN2: 23.8 modes, 91.3% high-quality samples, reverse KL 0.13 (mean of 10 trials).
  Metrics over 2,500 samples (gans/metrics/modes.py); pack m=3, 4: --config.model.pack=3 --config.train.batch_size=300.
"""
from experiments import common


def get_config():
  return common.mixture_gan_config("grid25", pack=2)
