"""The vanilla GAN of Goodfellow et al. (2014): multilayer perceptrons for G and D.

Defaults follow the 2D experiments of the PacGAN paper (Lin et al. 2018), which
reuse VEEGAN's setup: G has four hidden layers of 400 ReLU units with batch
norm, D three hidden layers of 200 linear-maxout units with 5 pieces and no
batch norm, weights initialised N(0, 0.02^2), biases 0. With `model.pack = m`
this is PacGAN: D judges m samples concatenated into one input.

`dtype` (config.model.dtype) is the computation dtype of the layers; parameters
and BatchNorm statistics stay float32, samples and logits leave in float32.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from gans.state import GanVariant
from gans.variants import common

_init = nn.initializers.normal(0.02)


class MLPGenerator(nn.Module):
  output_shape: Sequence[int]  # shape of one generated example, e.g. (2,) or (28, 28, 1)
  hidden: Sequence[int] = (400, 400, 400, 400)  # width of each hidden layer
  batch_norm: bool = True  # batch norm before each hidden activation (then the layer needs no bias)
  tanh_output: bool = False  # squash outputs into [-1, 1], the data range of images
  dtype: Any = jnp.float32  # computation dtype; parameters and BatchNorm statistics stay float32

  @nn.compact
  def __call__(self, z, train: bool):
    h = z
    for width in self.hidden:
      h = nn.Dense(width, use_bias=not self.batch_norm, kernel_init=_init, dtype=self.dtype)(h)
      if self.batch_norm:
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype)(h)
      h = nn.relu(h)
    x = nn.Dense(int(np.prod(self.output_shape)), kernel_init=_init, dtype=self.dtype)(h)
    if self.tanh_output:
      x = jnp.tanh(x)
    return x.reshape((z.shape[0],) + tuple(self.output_shape)).astype(jnp.float32)


class Maxout(nn.Module):
  features: int  # output units
  pieces: int  # linear pieces per unit; the unit outputs their maximum (Goodfellow et al. 2013)
  dtype: Any = jnp.float32  # computation dtype; parameters stay float32

  @nn.compact
  def __call__(self, x):
    h = nn.Dense(self.features * self.pieces, kernel_init=_init, dtype=self.dtype)(x)
    return jnp.max(h.reshape(h.shape[:-1] + (self.features, self.pieces)), axis=-1)


class MLPDiscriminator(nn.Module):
  hidden: Sequence[int] = (200, 200, 200)  # width of each hidden layer
  maxout_pieces: int = 5  # 1 gives plain LeakyReLU(0.2) layers instead of maxout
  dtype: Any = jnp.float32  # computation dtype; parameters stay float32, logits come out in float32

  @nn.compact
  def __call__(self, x, train: bool):
    del train  # no batch norm in D
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      h = Maxout(width, self.maxout_pieces, dtype=self.dtype)(h) if self.maxout_pieces > 1 else nn.leaky_relu(
          nn.Dense(width, kernel_init=_init, dtype=self.dtype)(h), 0.2)
    return nn.Dense(1, kernel_init=_init, dtype=self.dtype)(h)[:, 0].astype(jnp.float32)


def make(config) -> GanVariant:
  model = config.model
  shape = common.data_shape(config.data)
  dtype = common.compute_dtype(model)
  generator = MLPGenerator(output_shape=shape, hidden=tuple(model.g_hidden), batch_norm=model.g_batch_norm,
                           tanh_output=len(shape) == 3, dtype=dtype)
  discriminator = MLPDiscriminator(hidden=tuple(model.d_hidden), maxout_pieces=model.d_maxout_pieces, dtype=dtype)
  phases, prepare = common.standard_training(generator, discriminator, model, config.train.get("n_critic", 1))
  return GanVariant(
      init=common.init_generator_discriminator(generator, discriminator, model.z_dim, shape, model.get("pack", 1)),
      phases=phases,
      prepare=prepare,
      sample=common.make_sampler(generator, model.z_dim),
      modules={"g": generator, "d": discriminator},
      hyperparameters=common.standard_hyperparameters(model),
  )
