"""3D-GAN (Wu, Zhang, Xue, Freeman & Tenenbaum 2016): voxel occupancy grids from a 200-d latent.

G: z -> 4x4x4 x (8 g_channels) (the paper's 4^3 transposed conv from 1^3, written as the equivalent dense
layer), then 3D transposed convs (kernel 4, stride 2, padding 1) halving the channels, each with batch norm
and ReLU, down to one channel and a sigmoid: occupancies in [0, 1]. At 64^3 with g_channels = 64 these are
the paper's 512 -> 256 -> 128 -> 64 -> 1. D: the mirror, strided 3D convs (64 -> 128 -> 256 -> 512 at 64^3
with d_channels = 64), batch norm and LeakyReLU 0.2 between them, a 4^3 valid conv (a dense layer) to one
logit. The paper's sigmoid + cross-entropy is `loss` = "minimax" / "non_saturating" on logits.

The paper's adaptive training: D is updated only when its accuracy on the batch is below
`d_accuracy_threshold` (80%): the D phase measures the accuracy of its own forward pass (reals with logit
> 0, fakes with logit < 0) and the trainer applies the update through `Phase.apply_if`, inside jit
(`common.standard_training`'s `d_accuracy_threshold`).

The 3D convs are gans.layers3d's (space-to-depth forms on the CPU, benchmarks/conv3d.py). Weights
N(0, 0.02^2) and batch-norm scales N(1, 0.02^2), as DCGAN (the paper's code builds on it).
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from gans import layers3d
from gans.state import GanVariant
from gans.variants import common

_init = nn.initializers.normal(0.02)


def _scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * nn.initializers.normal(1.0)(key, shape, dtype)


def _batch_norm(train: bool):
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, scale_init=_scale_init)


def num_doublings(resolution: int) -> int:
  doublings = int(round(math.log2(resolution / 4)))
  if resolution < 8 or 4 * 2 ** doublings != resolution:
    raise ValueError(f"3D-GAN needs a voxel resolution of 4 * 2^k >= 8 (the paper: 64), got {resolution}.")
  return doublings


class Generator(nn.Module):
  resolution: int  # output voxels per side, 4 * 2^k
  base_channels: int = 64  # channels of the last hidden layer; doubled at every lower resolution
  form: str | None = None  # gans.layers3d form; None = the backend's default

  @nn.compact
  def __call__(self, z, train: bool):
    doublings = num_doublings(self.resolution)
    width = self.base_channels * 2 ** (doublings - 1)
    h = nn.Dense(4 ** 3 * width, use_bias=False, kernel_init=_init)(z).reshape(z.shape[0], 4, 4, 4, width)
    h = nn.relu(_batch_norm(train)(h))
    for _ in range(doublings - 1):
      width //= 2
      h = layers3d.UpConv3d(width, use_bias=False, form=self.form, kernel_init=_init)(h)
      h = nn.relu(_batch_norm(train)(h))
    return nn.sigmoid(layers3d.UpConv3d(1, use_bias=False, form=self.form, kernel_init=_init)(h))


class Discriminator(nn.Module):
  base_channels: int = 64  # channels of the first conv; doubled at every halving
  form: str | None = None  # gans.layers3d form; None = the backend's default

  @nn.compact
  def __call__(self, voxels_NDHWC, train: bool, features: bool = False):
    """The logit per example; with `features`, also the activations after each strided conv (for the
    paper's representation-learning evaluation)."""
    doublings = num_doublings(voxels_NDHWC.shape[1])
    h, hidden = voxels_NDHWC, []
    for level in range(doublings):
      h = layers3d.DownConv3d(self.base_channels * 2 ** level, use_bias=False, form=self.form, kernel_init=_init)(h)
      h = nn.leaky_relu(_batch_norm(train)(h), 0.2)
      hidden.append(h)
    logits = nn.Dense(1, use_bias=False, kernel_init=_init)(h.reshape(h.shape[0], -1)).reshape(-1)
    return (logits, hidden) if features else logits


def pooled_features(hidden: list) -> jax.Array:
  """Each activation [N, S, S, S, C] max-pooled to 2^3 cells and flattened, concatenated: [N, sum 8 C] (the
  paper pools its 2nd-4th layers with kernels 8, 4, 2)."""
  pooled = []
  for h in hidden:
    n, s, _, _, c = h.shape
    cell = s // 2
    pooled.append(h.reshape(n, 2, cell, 2, cell, 2, cell, c).max(axis=(2, 4, 6)).reshape(n, -1))
  return jnp.concatenate(pooled, axis=-1)


def make_encoder(discriminator: Discriminator):
  """encode(params, model_state, voxels) -> {"d_features": D's pooled features}, BatchNorm in eval: the
  representation the paper's Table 1 probes (gans/metrics/voxel_probe.py)."""
  def encode(params, model_state, voxels_NDHWC):
    (_, hidden), _ = common.apply_module(discriminator, params["d"], model_state["d"], voxels_NDHWC, train=False,
                                         features=True)
    return {"d_features": pooled_features(hidden)}
  return encode


def make(config) -> GanVariant:
  model = config.model
  shape = common.data_shape(config.data)
  if len(shape) != 4:
    raise ValueError(f"gan3d trains on voxel grids; data.source must be one of {common.VOXEL_SOURCES}, "
                     f"got {config.data.source!r}.")
  form = model.get("conv_form", None) or None
  generator = Generator(resolution=shape[0], base_channels=model.g_channels, form=form)
  discriminator = Discriminator(base_channels=model.d_channels, form=form)
  # The paper's adaptive training: D learns only when its accuracy on the step's batch is below the threshold.
  phases, prepare = common.standard_training(generator, discriminator, model,
                                             d_accuracy_threshold=model.d_accuracy_threshold)
  return GanVariant(
      init=common.init_generator_discriminator(generator, discriminator, model.z_dim, shape),
      phases=phases,
      prepare=prepare,
      sample=common.make_sampler(generator, model.z_dim),
      modules={"g": generator, "d": discriminator},
      encode=make_encoder(discriminator),
  )
