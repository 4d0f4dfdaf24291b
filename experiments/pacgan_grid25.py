"""TITLE

Launch: python launch.py --experiment=pacgan_grid25 --workdir=/tmp/pacgan_grid25
Runtime: RUNTIME
Reproduces: RESULT
"""
from experiments import common


def get_config():
  return common.mixture_gan_config("grid25", pack=2)
