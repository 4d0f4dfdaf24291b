"""PacGAN2 on the ring of 8 Gaussians (PacGAN paper, Table 1, row PacGAN2).

Launch: python launch.py --experiment=pacgan_ring8 --workdir=/tmp/pacgan_ring8
Runtime: the paper's 400 epochs of 100,000 points (400k steps) take about 2 hours on 2 idle CPU cores (about 52 steps/s at
  batch 200, commit da77899); the README table's shorter runs say their steps.
Reproduces: Lin et al. 2018, Table 1, PacGAN2: 7.9 modes, 95.6% high-quality samples, reverse KL 0.07 (mean of 10 trials).
  Metrics over 2,500 samples (gans/metrics/modes.py); pack m=3, 4: --config.model.pack=3 --config.train.batch_size=300.
"""
from experiments import common


def get_config():
  return common.mixture_gan_config("ring8", pack=2)
