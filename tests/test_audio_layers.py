"""WaveGAN's and SpecGAN's "same"-padded convolutions in gans.layers equal lax's, values and gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gans import layers

_1D = ("NWC", "WIO", "NWC")
_2D = ("NHWC", "HWIO", "NHWC")


def _lax_conv(x, kernel, strides):
  return lax.conv_general_dilated(x, kernel, strides, "SAME", dimension_numbers=_1D if x.ndim == 3 else _2D)


def _lax_conv_transpose(x, kernel, strides):
  # lax.conv_transpose correlates the dilated input; the scatter-form kernel is flipped for it.
  flipped = kernel[::-1] if x.ndim == 3 else kernel[::-1, ::-1]
  return lax.conv_transpose(x, flipped, strides, "SAME", dimension_numbers=_1D if x.ndim == 3 else _2D)


def _assert_values_and_gradients_equal(fast, reference, x, kernel):
  np.testing.assert_allclose(fast(x, kernel), reference(x, kernel), rtol=1e-5, atol=1e-5)
  probe = jax.random.normal(jax.random.key(9), reference(x, kernel).shape)
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)) * probe)
  for got, want in zip(jax.grad(loss(fast), (0, 1))(x, kernel), jax.grad(loss(reference), (0, 1))(x, kernel)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# WaveGAN's layers (kernel 25, stride 4), a shorter input, a length stride 4 does not divide, and stride 1.
@pytest.mark.parametrize("length,kernel_size,stride", [(64, 25, 4), (30, 25, 4), (16, 5, 1), (17, 4, 2)])
def test_conv1d_same_equals_lax(length, kernel_size, stride):
  x = jax.random.normal(jax.random.key(0), (2, length, 3))
  kernel = jax.random.normal(jax.random.key(1), (kernel_size, 3, 5))
  fast = lambda x, k: layers.conv1d_same(x, k, stride)
  _assert_values_and_gradients_equal(fast, lambda x, k: _lax_conv(x, k, (stride,)), x, kernel)
  assert fast(x, kernel).shape == (2, -(-length // stride), 5)


@pytest.mark.parametrize("length,kernel_size,stride", [(16, 25, 4), (5, 25, 4), (7, 3, 4), (9, 5, 1)])
def test_conv_transpose1d_same_equals_lax_and_is_the_conv_adjoint(length, kernel_size, stride):
  x = jax.random.normal(jax.random.key(2), (2, length, 4))
  kernel = jax.random.normal(jax.random.key(3), (kernel_size, 4, 3))
  fast = lambda x, k: layers.conv_transpose1d_same(x, k, stride)
  _assert_values_and_gradients_equal(fast, lambda x, k: _lax_conv_transpose(x, k, (stride,)), x, kernel)
  assert fast(x, kernel).shape == (2, length * stride, 3)
  # tf.nn.conv2d_transpose is the adjoint of the "same" conv with the channels swapped.
  adjoint = jax.linear_transpose(lambda y: _lax_conv(y, kernel.transpose(0, 2, 1), (stride,)),
                                 jnp.zeros((2, length * stride, 3)))
  np.testing.assert_allclose(fast(x, kernel), adjoint(x)[0], rtol=1e-5, atol=1e-5)


def test_specgan_5x5_stride2_layers_equal_lax():
  x = jax.random.normal(jax.random.key(4), (2, 8, 8, 3))
  kernel = jax.random.normal(jax.random.key(5), (5, 5, 3, 4))
  _assert_values_and_gradients_equal(lambda x, k: layers.conv_same(x, k, 2),
                                     lambda x, k: _lax_conv(x, k, (2, 2)), x, kernel)
  _assert_values_and_gradients_equal(lambda x, k: layers.conv_transpose_same(x, k, 2),
                                     lambda x, k: _lax_conv_transpose(x, k, (2, 2)), x, kernel)


def test_the_1d_modules_keep_a_1d_kernel():
  module = layers.ConvTranspose1DSame(features=6, kernel_size=25, strides=4)
  x = jnp.ones((1, 16, 3))
  variables = module.init(jax.random.key(0), x)
  assert variables["params"]["kernel"].shape == (25, 3, 6)
  y = module.apply(variables, x)
  np.testing.assert_allclose(y, layers.conv_transpose1d_same(x, variables["params"]["kernel"], 4), rtol=1e-6)
  with pytest.raises(ValueError, match="expected NTC input"):
    layers.conv1d_same(jnp.ones((1, 4, 4, 3)), jnp.ones((25, 3, 6)), 4)
