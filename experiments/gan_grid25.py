"""TITLE

Launch: python launch.py --experiment=gan_grid25 --workdir=/tmp/gan_grid25
Runtime: RUNTIME
Reproduces: RESULT
"""
from experiments import common


def get_config():
  return common.mixture_gan_config("grid25", pack=1)
