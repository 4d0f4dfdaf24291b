"""DCGAN (Radford, Metz & Chintala 2016).

G: z -> 4x4 feature map (a 4x4 transposed conv from 1x1, written as the
equivalent dense layer) -> transposed convs (4x4, stride 2, padding 1) that
double the resolution and halve the channels, batch norm + ReLU, tanh output.
D: the mirror image with strided 4x4 convs, LeakyReLU(0.2), batch norm on all
but the first layer, and a final 4x4 valid conv to one logit. The convolutions
come from gans/layers.py, which computes them in forms that XLA:CPU runs fast
(sub-pixel transposed convs, gradients without input-dilated convs). Weights
N(0, 0.02^2), batch-norm scales N(1, 0.02^2), as in the paper. For 64x64 and
`g_channels = d_channels = 64` this is the paper's network exactly.

`dtype` (config.model.dtype) is the computation dtype of every layer; parameters
and BatchNorm statistics stay float32, and images and logits leave the modules in
float32, so the losses are reduced in float32.
"""
from typing import Any

import math

import flax.linen as nn
import jax.numpy as jnp

from gans import layers
from gans.state import GanVariant
from gans.variants import common

_init = nn.initializers.normal(0.02)


def _scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * nn.initializers.normal(1.0)(key, shape, dtype)


def _batch_norm(train: bool, dtype=jnp.float32):
  # PyTorch's BatchNorm2d momentum 0.1 is Flax's 0.9 (the weight of the old running value). Flax reduces the
  # batch statistics in float32 and keeps the running ones in float32 whatever `dtype` (its output's).
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, scale_init=_scale_init,
                      dtype=dtype)


def _num_doublings(resolution: int) -> int:
  doublings = int(round(math.log2(resolution / 4)))
  if resolution < 8 or 4 * 2 ** doublings != resolution:
    raise ValueError(f"DCGAN needs a resolution of 4 * 2^k >= 8, got {resolution}.")
  return doublings


def up_conv(features: int, use_bias: bool = False, dtype=jnp.float32) -> nn.Module:
  """PyTorch's ConvTranspose2d(k=4, s=2, p=1), which doubles H and W, in the form fast on every backend."""
  return layers.ConvTranspose(features, 4, strides=2, padding=1, use_bias=use_bias, kernel_init=_init, dtype=dtype)


def down_conv(features: int, use_bias: bool = False, dtype=jnp.float32) -> nn.Module:
  """PyTorch's Conv2d(k=4, s=2, p=1), which halves H and W, with the fast backward of gans.layers."""
  return layers.Conv(features, 4, strides=2, padding=1, use_bias=use_bias, kernel_init=_init, dtype=dtype)


class Generator(nn.Module):
  resolution: int  # output height and width, 4 * 2^k
  channels: int  # output image channels
  base_channels: int = 64  # channels of the last hidden layer; doubled at every lower resolution (ngf)
  dtype: Any = jnp.float32  # computation dtype; parameters stay float32, images come out in float32

  @nn.compact
  def __call__(self, z, train: bool):
    doublings = _num_doublings(self.resolution)
    width = self.base_channels * 2 ** (doublings - 1)
    h = nn.Dense(4 * 4 * width, use_bias=False, kernel_init=_init, dtype=self.dtype)(z)
    h = nn.relu(_batch_norm(train, self.dtype)(h.reshape(z.shape[0], 4, 4, width)))
    for level in range(doublings - 1):
      width //= 2
      h = nn.relu(_batch_norm(train, self.dtype)(up_conv(width, dtype=self.dtype)(h)))
    return jnp.tanh(up_conv(self.channels, dtype=self.dtype)(h)).astype(jnp.float32)


class Discriminator(nn.Module):
  base_channels: int = 64  # channels of the first conv; doubled at every halving (ndf)
  dtype: Any = jnp.float32  # computation dtype; parameters stay float32, logits come out in float32

  @nn.compact
  def __call__(self, x_NHWC, train: bool):
    doublings = _num_doublings(x_NHWC.shape[1])
    h = x_NHWC
    for level in range(doublings):
      h = down_conv(self.base_channels * 2 ** level, dtype=self.dtype)(h)
      if level > 0:
        h = _batch_norm(train, self.dtype)(h)
      h = nn.leaky_relu(h, 0.2)
    logits = nn.Conv(1, (4, 4), padding="VALID", use_bias=False, kernel_init=_init, dtype=self.dtype)(h)
    return logits.reshape(-1).astype(jnp.float32)


def make(config) -> GanVariant:
  model = config.model
  shape = common.data_shape(config.data)
  dtype = common.compute_dtype(model)
  generator = Generator(resolution=shape[0], channels=shape[-1], base_channels=model.g_channels, dtype=dtype)
  discriminator = Discriminator(base_channels=model.d_channels, dtype=dtype)
  phases, prepare = common.standard_training(generator, discriminator, model, config.train.get("n_critic", 1))
  return GanVariant(
      init=common.init_generator_discriminator(generator, discriminator, model.z_dim, shape, model.get("pack", 1)),
      phases=phases,
      prepare=prepare,
      sample=common.make_sampler(generator, model.z_dim),
      modules={"g": generator, "d": discriminator},
      hyperparameters=common.standard_hyperparameters(model),
  )
