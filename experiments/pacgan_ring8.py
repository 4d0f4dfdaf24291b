"""TITLE

Launch: python launch.py --experiment=pacgan_ring8 --workdir=/tmp/pacgan_ring8
Runtime: RUNTIME
Reproduces: RESULT
"""
from experiments import common


def get_config():
  return common.mixture_gan_config("ring8", pack=2)
