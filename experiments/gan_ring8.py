"""TITLE

Launch: python launch.py --experiment=gan_ring8 --workdir=/tmp/gan_ring8
Runtime: RUNTIME
Reproduces: RESULT
"""
from experiments import common


def get_config():
  return common.mixture_gan_config("ring8", pack=1)
