"""Image-to-image translation: pix2pix (Isola et al. 2017) and CycleGAN (Zhu et al. 2017).

networks.py  the official networks (U-Net, ResNet generator, PatchGAN and pixel discriminators), NHWC
convert.py   official state dicts -> these modules: load_official
"""
from gans.variants.image2image.convert import build_official, convert_state_dict, load_official
from gans.variants.image2image.networks import (
  NLayerDiscriminator, PixelDiscriminator, ResnetGenerator, UnetGenerator, define_discriminator, define_generator)
