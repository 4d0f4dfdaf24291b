"""The experiment registry: name -> get_config, read by launch.py.

An experiment is one module in this package whose get_config() returns a
ConfigDict; the first line of its docstring is its description in --list.
"""
import importlib

import ml_collections

NAMES = (
    "gan_ring8",
    "gan_grid25",
    "pacgan_ring8",
    "pacgan_grid25",
    "dcgan_digits",
    "dcgan_fashion_mnist",
    "dcgan_mnist",
    "dcgan_celeba64",
    "stylegan_ffhq",
    "stylegan_digits",
    "stylegan2_ffhq",
    "stylegan2_digits",
    "cgan_digits",
    "cgan_fashion_mnist",
    "cgan_mnist",
    "infogan_digits",
    "infogan_fashion_mnist",
    "infogan_mnist",
    "gan3d_shapes",
    "gan3d_modelnet10",
    "pix2pix_edges2fashion",
    "cyclegan_edges2fashion",
    "pix2pix_facades",
    "cyclegan_horse2zebra",
    "wavegan_digits",
    "specgan_digits",
    "wavegan_sc09",
    "specgan_sc09",
    "srresnet_photos",
    "srgan_photos",
    "srresnet_div2k",
    "srgan_div2k",
    "gan_int_cls_shapes",
    "gan_int_cls_cub",
    "stackgan_shapes",
    "stackgan_cub",
)


class UnknownExperimentError(ValueError):
  pass


def _module(name: str):
  if name not in NAMES:
    raise UnknownExperimentError(f"Unknown experiment {name!r}. Valid experiments:\n  " + "\n  ".join(NAMES))
  return importlib.import_module(f"experiments.{name}")


def get_config(name: str) -> ml_collections.ConfigDict:
  """The experiment's config, locked so that overrides cannot add misspelt fields."""
  config = _module(name).get_config()
  config.lock()
  return config


def description(name: str) -> str:
  return (_module(name).__doc__ or "").strip().splitlines()[0]
