"""A standalone JAX/Flax DCGAN training step, the twin of benchmarks/torch_dcgan.py.

Same architecture, initialisation, losses, optimizer and step structure as the
PyTorch reference (see its docstring), so that the two can be timed back to
back (benchmarks/conv_transpose.py dcgan). Two variants of the network:

  variant="fast": gans.layers.ConvTranspose / gans.layers.Conv (sub-pixel
      forward, custom gradients with no input-dilated convs; fast on XLA:CPU).
  variant="flax": flax.linen.ConvTranspose / flax.linen.Conv (XLA's dilated
      convolutions in the backward pass; the baseline).

This is a benchmark, not the project's trainer: the trainer builds its step
from the variant's phases (gans/steps.py).
"""
import math
import os
import sys
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gans import layers  # noqa: E402

conv_init = nn.initializers.normal(0.02)


def batch_norm_scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _num_upsamplings(resolution: int) -> int:
  num = int(round(math.log2(resolution / 4)))
  if resolution < 8 or 4 * 2**num != resolution:
    raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
  return num


def _upsample_conv(variant: str, features: int, stride: int, padding: int, name: str) -> nn.Module:
  """4x4 transposed conv with PyTorch semantics, no bias."""
  if variant == "fast":
    return layers.ConvTranspose(features, 4, stride, padding, use_bias=False, kernel_init=conv_init, name=name)
  # flax.linen.ConvTranspose pads the dilated input: PyTorch's padding p is k-1-p there.
  return nn.ConvTranspose(features, (4, 4), (stride, stride), ((3 - padding, 3 - padding),) * 2,
                          use_bias=False, kernel_init=conv_init, name=name)


def _downsample_conv(variant: str, features: int, stride: int, padding: int, name: str) -> nn.Module:
  """4x4 conv with symmetric zero padding, no bias."""
  if variant == "fast":
    return layers.Conv(features, 4, stride, padding, use_bias=False, kernel_init=conv_init, name=name)
  return nn.Conv(features, (4, 4), (stride, stride), ((padding, padding),) * 2, use_bias=False,
                 kernel_init=conv_init, name=name)


def _batch_norm(name: str) -> nn.Module:
  # PyTorch's momentum 0.1 is flax's 0.9; eps 1e-5 as in PyTorch.
  return nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5,
                      scale_init=batch_norm_scale_init, name=name)


class Generator(nn.Module):
  resolution: int = 64  # output side, a power of two >= 8
  base_channels: int = 64  # channels of the last hidden layer (64 in the paper)
  image_channels: int = 3  # output channels
  variant: str = "fast"  # "fast" (gans.layers) or "flax" (flax.linen convs)

  @nn.compact
  def __call__(self, z):
    num_up = _num_upsamplings(self.resolution)
    channels = self.base_channels * 2**(num_up - 1)
    x = z.reshape(z.shape[0], 1, 1, z.shape[-1])
    x = _upsample_conv(self.variant, channels, 1, 0, "conv0")(x)
    x = nn.relu(_batch_norm("bn0")(x))
    for i in range(1, num_up):
      channels //= 2
      x = _upsample_conv(self.variant, channels, 2, 1, f"conv{i}")(x)
      x = nn.relu(_batch_norm(f"bn{i}")(x))
    x = _upsample_conv(self.variant, self.image_channels, 2, 1, f"conv{num_up}")(x)
    return jnp.tanh(x)


class Discriminator(nn.Module):
  resolution: int = 64  # input side, a power of two >= 8
  base_channels: int = 64  # channels of the first layer (64 in the paper)
  variant: str = "fast"  # "fast" (gans.layers) or "flax" (flax.linen convs)

  @nn.compact
  def __call__(self, img_NHWC):
    num_down = _num_upsamplings(self.resolution)
    channels = self.base_channels
    x = nn.leaky_relu(_downsample_conv(self.variant, channels, 2, 1, "conv0")(img_NHWC), 0.2)
    for i in range(1, num_down):
      channels *= 2
      x = _downsample_conv(self.variant, channels, 2, 1, f"conv{i}")(x)
      x = nn.leaky_relu(_batch_norm(f"bn{i}")(x), 0.2)
    x = _downsample_conv(self.variant, 1, 1, 0, f"conv{num_down}")(x)
    return x.reshape(x.shape[0])


def _bce_with_logits(logits, target_is_real: bool):
  # -log sigmoid(l) = softplus(-l); -log(1 - sigmoid(l)) = softplus(l).
  return jnp.mean(jax.nn.softplus(-logits if target_is_real else logits))


def make_jax_dcgan_step(resolution: int = 64, batch_size: int = 64, latent_dim: int = 100,
                        base_channels: int = 64, image_channels: int = 3, learning_rate: float = 2e-4,
                        beta1: float = 0.5, seed: int = 0, reuse_fake: bool = True, variant: str = "fast",
                        donate: bool = True, compiler_options: Optional[dict] = None
                        ) -> Callable[[Optional[Any]], dict]:
  """Returns `step(real_NHWC=None) -> {"d_loss", "g_loss"}`, one D update then one G update.

  reuse_fake=True runs G forward once per step and back-propagates the G loss
  through it (jax.vjp), like PyTorch's DCGAN example; False runs G forward
  again inside the G loss, as phase-structured trainers do. The training state
  lives in the closure and is donated to the jitted step (unless donate=False).
  compiler_options are passed to jax.jit, e.g. gans.layers.xla_cpu_compiler_options().
  """
  generator = Generator(resolution, base_channels, image_channels, variant)
  discriminator = Discriminator(resolution, base_channels, variant)
  g_key, d_key, data_key, step_key = jax.random.split(jax.random.key(seed), 4)
  g_vars = generator.init(g_key, jnp.zeros((1, latent_dim)))
  d_vars = discriminator.init(d_key, jnp.zeros((1, resolution, resolution, image_channels)))
  optimizer = optax.adam(learning_rate, b1=beta1, b2=0.999)
  state = {
      "g_params": g_vars["params"], "g_stats": g_vars["batch_stats"],
      "d_params": d_vars["params"], "d_stats": d_vars["batch_stats"],
      "g_opt": optimizer.init(g_vars["params"]), "d_opt": optimizer.init(d_vars["params"]),
  }
  default_real = jax.random.uniform(data_key, (batch_size, resolution, resolution, image_channels),
                                    minval=-1.0, maxval=1.0)

  def generate(g_params, g_stats, z):
    fake, updates = generator.apply({"params": g_params, "batch_stats": g_stats}, z, mutable=["batch_stats"])
    return fake, updates["batch_stats"]

  def discriminate(d_params, d_stats, images):
    logits, updates = discriminator.apply({"params": d_params, "batch_stats": d_stats}, images,
                                          mutable=["batch_stats"])
    return logits, updates["batch_stats"]

  def train_step(state, real, key):
    z = jax.random.normal(key, (batch_size, latent_dim))
    fake, generator_vjp, g_stats = jax.vjp(lambda p: generate(p, state["g_stats"], z), state["g_params"],
                                           has_aux=True)

    def d_loss_fn(d_params):
      real_logits, d_stats = discriminate(d_params, state["d_stats"], real)
      fake_logits, d_stats = discriminate(d_params, d_stats, jax.lax.stop_gradient(fake))
      return _bce_with_logits(real_logits, True) + _bce_with_logits(fake_logits, False), d_stats

    (d_loss, d_stats), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state["d_params"])
    d_updates, d_opt = optimizer.update(d_grads, state["d_opt"], state["d_params"])
    d_params = optax.apply_updates(state["d_params"], d_updates)

    if reuse_fake:
      def g_loss_of_fake(fake):
        logits, stats = discriminate(d_params, d_stats, fake)
        return _bce_with_logits(logits, True), stats

      (g_loss, d_stats), fake_grad = jax.value_and_grad(g_loss_of_fake, has_aux=True)(fake)
      (g_grads,) = generator_vjp(fake_grad)
    else:
      def g_loss_fn(g_params):
        fake, stats = generate(g_params, state["g_stats"], z)
        logits, d_stats_new = discriminate(d_params, d_stats, fake)
        return _bce_with_logits(logits, True), (stats, d_stats_new)

      (g_loss, (g_stats, d_stats)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state["g_params"])
    g_updates, g_opt = optimizer.update(g_grads, state["g_opt"], state["g_params"])
    g_params = optax.apply_updates(state["g_params"], g_updates)
    new_state = {"g_params": g_params, "g_stats": g_stats, "d_params": d_params, "d_stats": d_stats,
                 "g_opt": g_opt, "d_opt": d_opt}
    return new_state, {"d_loss": d_loss, "g_loss": g_loss}

  jitted = jax.jit(train_step, donate_argnums=(0,) if donate else (), compiler_options=compiler_options)
  holder = {"state": state, "step": 0}

  def step(real_NHWC=None) -> dict:
    real = default_real if real_NHWC is None else real_NHWC
    key = jax.random.fold_in(step_key, holder["step"])
    holder["state"], metrics = jitted(holder["state"], real, key)
    holder["step"] += 1
    return {name: float(value) for name, value in metrics.items()}

  step.generator = generator
  step.discriminator = discriminator
  step.holder = holder
  step.jitted = jitted
  step.batch_size = batch_size
  return step
