"""WaveGAN's and SpecGAN's "same"-padded convolutions in gans.layers equal lax's, values and gradients."""
import re

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


def _assert_penalty_gradients_equal(fast, reference, x, kernel):
  """WGAN-GP differentiates D's input gradient again: the second order must match too."""
  penalty = lambda op: lambda x, k: jnp.sum(jax.grad(lambda x: jnp.sum(jnp.tanh(op(x, k))))(x) ** 2)
  got = jax.jit(jax.grad(penalty(fast), (0, 1)))(x, kernel)
  want = jax.jit(jax.grad(penalty(reference), (0, 1)))(x, kernel)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def _has_conv(fn, *args):
  return "conv_general_dilated" in str(jax.make_jaxpr(fn)(*args))


# SpecGAN's single-channel layers (G's last, the input gradient of D's first): 4 sub-pixel channels, col2im.
def test_transposed_convs_to_few_channels_take_col2im_and_equal_lax():
  x = jax.random.normal(jax.random.key(6), (2, 6, 4, 3))
  kernel = jax.random.normal(jax.random.key(7), (5, 5, 3, 1))
  fast = lambda x, k: layers.conv_transpose_same(x, k, 2)
  reference = lambda x, k: _lax_conv_transpose(x, k, (2, 2))
  assert layers.COL2IM_MAX_SUBPIXEL_CHANNELS == 4
  assert not _has_conv(fast, x, kernel)
  # The other forms on 8 input channels: from at most PLANAR_IM2COL_MAX_CHANNELS the stride-1 conv inside them
  # is a matmul too (SRGAN's few-channel layers).
  wide = jnp.ones((2, 6, 4, 8))
  assert layers.PLANAR_IM2COL_MAX_CHANNELS < 8
  assert _has_conv(fast, wide, jnp.ones((5, 5, 8, 2)))  # 8 sub-pixel channels: the sub-pixel conv
  assert _has_conv(lambda x, k: layers.conv_transpose(x, k, 2, 1), wide, jnp.ones((4, 4, 8, 1)))  # 16 taps: as before
  _assert_values_and_gradients_equal(fast, reference, x, kernel)
  _assert_penalty_gradients_equal(fast, reference, x, kernel)
  # and as the input gradient of the "same" conv from one channel (D's first layer)
  y = jax.random.normal(jax.random.key(8), (2, 12, 8, 1))
  _assert_penalty_gradients_equal(lambda y, k: layers.conv_same(y, k, 2), lambda y, k: _lax_conv(y, k, (2, 2)),
                                  y, kernel.transpose(0, 1, 3, 2))


# SpecGAN's D at 16 kHz ends 8x8 -> 4x4 with 16d channels: no more output pixels than channels, im2col.
def test_kernel_bound_strided_convs_take_im2col_and_equal_lax():
  x = jax.random.normal(jax.random.key(10), (2, 8, 4, 3))
  kernel = jax.random.normal(jax.random.key(11), (5, 5, 3, 16))  # 2 x 4 x 2 output pixels, 16 channels
  fast = lambda x, k: layers.conv_same(x, k, 2)
  reference = lambda x, k: _lax_conv(x, k, (2, 2))
  assert layers.IM2COL_MAX_PIXELS_PER_CHANNEL == 1
  assert not _has_conv(fast, x, kernel)
  assert _has_conv(fast, x, kernel[..., :15])  # one channel fewer than output pixels: XLA's conv
  # Fewer taps than IM2COL_MIN_TAPS (4x4, pix2pix's kernel-bound layers) keep XLA's conv.
  assert _has_conv(lambda x, k: layers.conv(x, k, 2, 1), x, jnp.ones((3, 3, 3, 16)))
  _assert_values_and_gradients_equal(fast, reference, x, kernel)
  _assert_penalty_gradients_equal(fast, reference, x, kernel)


def _conv_output_shapes(fn, *args):
  return re.findall(r"f32\[([\d,]+)\] = conv_general_dilated", str(jax.make_jaxpr(fn)(*args)))


# SpecGAN's "same" 5x5 stride-2 layers crop one row more on the high side than on the low: the sub-pixel conv
# (G's transposed convs, the input gradient of D's convs) computes exactly the output's 4 x 3 blocks of 2 x 2
# pixels, not 5 x 4 cropped afterwards; first and second order equal lax's.
def test_same_padded_5x5_stride2_subpixel_convs_compute_only_the_output_blocks():
  x = jax.random.normal(jax.random.key(12), (2, 4, 3, 3))
  kernel = jax.random.normal(jax.random.key(13), (5, 5, 3, 4))  # 16 sub-pixel channels: not col2im
  fast = lambda x, k: layers.conv_transpose_same(x, k, 2)
  reference = lambda x, k: _lax_conv_transpose(x, k, (2, 2))
  # The shapes on 8 input channels: from at most PLANAR_IM2COL_MAX_CHANNELS the sub-pixel conv is a matmul.
  assert _conv_output_shapes(fast, jnp.ones((2, 4, 3, 8)), jnp.ones((5, 5, 8, 4))) == ["2,4,3,16"]
  _assert_values_and_gradients_equal(fast, reference, x, kernel)
  _assert_penalty_gradients_equal(fast, reference, x, kernel)
  y = jax.random.normal(jax.random.key(14), (2, 8, 6, 4))  # D's conv from 4 to 3 channels, and an odd map
  d_kernel = kernel.transpose(0, 1, 3, 2)
  input_gradient = jax.grad(lambda y, k: jnp.sum(layers.conv_same(y, k, 2)))
  assert "2,4,3,16" in _conv_output_shapes(input_gradient, y, jnp.ones((5, 5, 4, 8)))  # to 8 channels
  for y in (y, y[:, :7, :5]):
    _assert_values_and_gradients_equal(lambda y, k: layers.conv_same(y, k, 2), lambda y, k: _lax_conv(y, k, (2, 2)),
                                       y, d_kernel)
    _assert_penalty_gradients_equal(lambda y, k: layers.conv_same(y, k, 2), lambda y, k: _lax_conv(y, k, (2, 2)),
                                    y, d_kernel)
