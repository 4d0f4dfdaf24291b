"""gans.layers.ConvTranspose / Conv against independent definitions.

The reference that makes these tests meaningful without any other library is a
plain numpy transcription of the definitions (scatter-add for the transposed
conv, gather for the conv) together with their gradients, in float64. The fast
ops are also compared with lax.conv_transpose / lax.conv_general_dilated
(values and jax.grad), with flax.linen.ConvTranspose through the documented
kernel and padding correspondence, and with PyTorch when it is importable.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gans import layers

TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def _pair(value):
  return (value, value) if isinstance(value, int) else tuple(value)


# ---------------------------------------------------------------------------
# numpy references (float64)


def numpy_conv_transpose(x, kernel, stride, padding, output_padding=0):
  """y[i*s - p + a] += x[i] @ kernel[a] per spatial axis, cropped to PyTorch's output size."""
  (s_h, s_w), (p_h, p_w), (op_h, op_w) = _pair(stride), _pair(padding), _pair(output_padding)
  n, h, w, _ = x.shape
  k_h, k_w, _, c_out = kernel.shape
  out_h, out_w = (h - 1) * s_h - 2 * p_h + k_h + op_h, (w - 1) * s_w - 2 * p_w + k_w + op_w
  # Canvas in uncropped coordinates, long enough for the kernel reach and the output_padding rows.
  canvas = np.zeros((n, max((h - 1) * s_h + k_h, p_h + out_h), max((w - 1) * s_w + k_w, p_w + out_w), c_out))
  for i in range(h):
    for j in range(w):
      canvas[:, i * s_h:i * s_h + k_h, j * s_w:j * s_w + k_w] += np.einsum("nc,abcd->nabd", x[:, i, j], kernel)
  return canvas[:, p_h:p_h + out_h, p_w:p_w + out_w]


def numpy_conv_transpose_grads(x, kernel, y_grad, stride, padding, output_padding=0):
  """Gradients of sum(conv_transpose(x, kernel) * y_grad) w.r.t. x and kernel, from the same definition."""
  (s_h, s_w), (p_h, p_w) = _pair(stride), _pair(padding)
  n, h, w, _ = x.shape
  k_h, k_w = kernel.shape[:2]
  out_h, out_w = y_grad.shape[1:3]
  canvas = np.zeros((n, max((h - 1) * s_h + k_h, p_h + out_h), max((w - 1) * s_w + k_w, p_w + out_w),
                     y_grad.shape[-1]))
  canvas[:, p_h:p_h + out_h, p_w:p_w + out_w] = y_grad
  x_grad = np.zeros_like(x)
  kernel_grad = np.zeros_like(kernel)
  for i in range(h):
    for j in range(w):
      window = canvas[:, i * s_h:i * s_h + k_h, j * s_w:j * s_w + k_w]
      x_grad[:, i, j] = np.einsum("nabd,abcd->nc", window, kernel)
      kernel_grad += np.einsum("nc,nabd->abcd", x[:, i, j], window)
  return x_grad, kernel_grad


def numpy_conv(x, kernel, stride, padding):
  """y[o] = sum_a x_padded[o*s + a] @ kernel[a] per spatial axis (PyTorch Conv2d, symmetric zero padding)."""
  (s_h, s_w), (p_h, p_w) = _pair(stride), _pair(padding)
  x = np.pad(x, ((0, 0), (p_h, p_h), (p_w, p_w), (0, 0)))
  k_h, k_w, _, c_out = kernel.shape
  out_h, out_w = (x.shape[1] - k_h) // s_h + 1, (x.shape[2] - k_w) // s_w + 1
  y = np.zeros((x.shape[0], out_h, out_w, c_out))
  for i in range(out_h):
    for j in range(out_w):
      y[:, i, j] = np.einsum("nabc,abcd->nd", x[:, i * s_h:i * s_h + k_h, j * s_w:j * s_w + k_w], kernel)
  return y


def numpy_conv_grads(x, kernel, y_grad, stride, padding):
  (s_h, s_w), (p_h, p_w) = _pair(stride), _pair(padding)
  x_padded = np.pad(x, ((0, 0), (p_h, p_h), (p_w, p_w), (0, 0)))
  k_h, k_w = kernel.shape[:2]
  x_padded_grad = np.zeros_like(x_padded)
  kernel_grad = np.zeros_like(kernel)
  for i in range(y_grad.shape[1]):
    for j in range(y_grad.shape[2]):
      window = (slice(None), slice(i * s_h, i * s_h + k_h), slice(j * s_w, j * s_w + k_w))
      x_padded_grad[window] += np.einsum("nd,abcd->nabc", y_grad[:, i, j], kernel)
      kernel_grad += np.einsum("nabc,nd->abcd", x_padded[window], y_grad[:, i, j])
  return x_padded_grad[:, p_h:p_h + x.shape[1], p_w:p_w + x.shape[2]], kernel_grad


def _random(shape, seed, scale=1.0):
  return scale * np.random.default_rng(seed).standard_normal(shape)


def _operands(h, w, kernel_size, c_in, c_out, seed=0):
  k_h, k_w = _pair(kernel_size)
  x = _random((2, h, w, c_in), seed)
  kernel = _random((k_h, k_w, c_in, c_out), seed + 1, 1.0 / np.sqrt(k_h * k_w * c_in))
  return x, kernel


def _value_and_grads(fn, x, kernel, y_grad):
  """fn's output and the gradients of sum(fn(x, kernel) * y_grad), jitted, float32."""
  x, kernel, y_grad = (jnp.asarray(a, jnp.float32) for a in (x, kernel, y_grad))
  value = jax.jit(fn)(x, kernel)
  grads = jax.jit(jax.grad(lambda x, k: jnp.vdot(fn(x, k), y_grad), (0, 1)))(x, kernel)
  return value, grads


def _assert_same_values_and_grads(fast, reference, x, kernel, seed: int, tolerance=TOLERANCE):
  """fast(x, kernel) and its gradients (against a random output gradient) equal reference's."""
  y_grad = _random(jax.eval_shape(reference, jnp.zeros(np.shape(x)), jnp.zeros(np.shape(kernel))).shape, seed)
  value, grads = _value_and_grads(fast, x, kernel, y_grad)
  want_value, want_grads = _value_and_grads(reference, x, kernel, y_grad)
  for got, want in zip((value,) + grads, (want_value,) + want_grads):
    np.testing.assert_allclose(got, want, **tolerance)


# ---------------------------------------------------------------------------
# ConvTranspose

# (h, w, kernel_size, stride, padding, output_padding); output_padding < stride as PyTorch requires.
CONV_TRANSPOSE_CASES = [
    (4, 4, 4, 2, 1, 0),  # DCGAN's upsampling layer
    (1, 1, 4, 1, 0, 0),  # DCGAN's z -> 4x4 layer
    (5, 3, 4, 2, 1, 0),  # odd, non-square input
    (3, 5, 3, 2, 1, 1),  # kernel not a multiple of the stride, output_padding
    (4, 3, (3, 5), (2, 3), (1, 2), (1, 0)),  # everything different per axis
    (2, 3, 2, 3, 0, 2),  # stride > kernel: gaps between the kernel's footprints
    (7, 6, 3, 1, 3, 0),  # padding beyond the kernel's reach: crops the input itself
    (3, 3, 5, 2, 3, 1),  # padding > stride
    (1, 1, 4, 2, 1, 0),  # one input pixel, cropped
    (1, 1, 3, 2, 0, 1),  # one input pixel, output_padding beyond the kernel
    (6, 5, 1, 1, 0, 0),  # pointwise
    (3, 2, 4, 4, 0, 0),  # stride == kernel: no overlap
    (4, 2, 5, 2, 2, 1),  # SpecGAN's 4x2 -> 8x4: the sub-pixel kernel (3x3) exceeds the map (col2im form)
    (2, 3, 7, 3, 0, 0),  # col2im form, no crop, stride 3
]
# (c_in, c_out): the kernel gradient takes a different branch when c_in > stride**2 * c_out.
CHANNELS = [(3, 5), (16, 2)]


@pytest.mark.parametrize("channels", CHANNELS, ids=lambda c: f"c{c[0]}-{c[1]}")
@pytest.mark.parametrize("h,w,kernel_size,stride,padding,output_padding", CONV_TRANSPOSE_CASES)
def test_conv_transpose_matches_numpy_scatter_definition(h, w, kernel_size, stride, padding, output_padding,
                                                         channels):
  x, kernel = _operands(h, w, kernel_size, *channels)
  want = numpy_conv_transpose(x, kernel, stride, padding, output_padding)
  y_grad = _random(want.shape, 7)
  fast = lambda x, k: layers.conv_transpose(x, k, stride, padding, output_padding)
  value, (x_grad, kernel_grad) = _value_and_grads(fast, x, kernel, y_grad)

  assert value.shape == want.shape
  np.testing.assert_allclose(value, want, **TOLERANCE)
  want_x_grad, want_kernel_grad = numpy_conv_transpose_grads(x, kernel, y_grad, stride, padding, output_padding)
  np.testing.assert_allclose(x_grad, want_x_grad, **TOLERANCE)
  np.testing.assert_allclose(kernel_grad, want_kernel_grad, **TOLERANCE)


@pytest.mark.parametrize("channels", CHANNELS, ids=lambda c: f"c{c[0]}-{c[1]}")
@pytest.mark.parametrize("h,w,kernel_size,stride,padding,output_padding", CONV_TRANSPOSE_CASES)
def test_conv_transpose_matches_lax_conv_transpose_values_and_grads(h, w, kernel_size, stride, padding,
                                                                    output_padding, channels):
  x, kernel = _operands(h, w, kernel_size, *channels, seed=3)
  reference = lambda x, k: layers.conv_transpose_reference(x, k, stride, padding, output_padding)
  fast = lambda x, k: layers.conv_transpose(x, k, stride, padding, output_padding)
  _assert_same_values_and_grads(fast, reference, x, kernel, 5)


@pytest.mark.parametrize("col2im_min_channels_per_pixel", [10**9, 0], ids=["transposed-to-hwio", "col2im"])
@pytest.mark.parametrize("channels", CHANNELS, ids=lambda c: f"c{c[0]}-{c[1]}")
@pytest.mark.parametrize("h,w,kernel_size,stride,padding,output_padding", CONV_TRANSPOSE_CASES)
def test_conv_transpose_ihwo_matches_lax_conv_transpose_values_and_grads(h, w, kernel_size, stride, padding,
                                                                         output_padding, channels,
                                                                         col2im_min_channels_per_pixel, monkeypatch):
  # Both of its paths on every case: the col2im form on the stored kernel, and the transpose to conv_transpose.
  monkeypatch.setattr(layers, "COL2IM_IHWO_MIN_CHANNELS_PER_PIXEL", col2im_min_channels_per_pixel)
  x, kernel = _operands(h, w, kernel_size, *channels, seed=13)
  kernel_IHWO = kernel.transpose(2, 0, 1, 3)
  reference = lambda x, k: layers.conv_transpose_reference(x, k.transpose(1, 2, 0, 3), stride, padding, output_padding)
  fast = lambda x, k: layers.conv_transpose_ihwo(x, k, stride, padding, output_padding)
  _assert_same_values_and_grads(fast, reference, x, kernel_IHWO, 5)


def test_conv_transpose_ihwo_takes_col2im_only_where_kernel_bound():
  # C_in against N * H * W input pixels: pix2pix's 16x16 -> 32x32 at 1024 channels is, 8x8 at batch 32 and 512 not.
  forms = lambda x, k: str(jax.make_jaxpr(lambda x, k: layers.conv_transpose_ihwo(x, k, 2, 1))(x, k))
  kernel_bound = forms(jnp.zeros((1, 16, 16, 1024)), jnp.zeros((1024, 4, 4, 256)))
  sub_pixel = forms(jnp.zeros((32, 4, 4, 512)), jnp.zeros((512, 4, 4, 128)))
  assert "custom_vjp_call" not in kernel_bound and "dot_general" in kernel_bound
  assert "custom_vjp_call" in sub_pixel


def test_conv_transpose_ihwo_module_is_conv_transpose_with_the_kernel_stored_transposed():
  x = jnp.asarray(_random((2, 3, 5, 3), 4), jnp.float32)
  ours = layers.ConvTransposeIHWO(4, 4, 2, 1, bias_init=nn.initializers.normal(1.0))
  plain = layers.ConvTranspose(4, 4, 2, 1, bias_init=nn.initializers.normal(1.0))
  params, plain_params = ours.init(jax.random.key(0), x)["params"], plain.init(jax.random.key(0), x)["params"]
  assert params["kernel"].shape == (3, 4, 4, 4)
  # The same initial values from the same key, stored (C_in, kH, kW, C_out).
  np.testing.assert_array_equal(params["kernel"], plain_params["kernel"].transpose(2, 0, 1, 3))
  np.testing.assert_array_equal(params["bias"], plain_params["bias"])
  np.testing.assert_allclose(ours.apply({"params": params}, x), plain.apply({"params": plain_params}, x), **TOLERANCE)


def _flax_padding(kernel_size, padding, output_padding):
  """flax.linen.ConvTranspose pads the stride-dilated input: PyTorch's p is (k-1-p, k-1-p+output_padding)."""
  return tuple((k - 1 - p, k - 1 - p + op)
               for k, p, op in zip(_pair(kernel_size), _pair(padding), _pair(output_padding)))


@pytest.mark.parametrize("transpose_kernel", [False, True])
@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("h,w,kernel_size,stride,padding,output_padding",
                         [case for case in CONV_TRANSPOSE_CASES
                          if all(p <= k - 1 for p, k in zip(_pair(case[4]), _pair(case[2])))])
def test_conv_transpose_module_matches_flax_conv_transpose(h, w, kernel_size, stride, padding, output_padding,
                                                           use_bias, transpose_kernel):
  ours = layers.ConvTranspose(4, kernel_size, stride, padding, output_padding=output_padding, use_bias=use_bias,
                              bias_init=nn.initializers.normal(1.0))
  theirs = nn.ConvTranspose(4, _pair(kernel_size), _pair(stride), _flax_padding(kernel_size, padding, output_padding),
                            use_bias=use_bias, transpose_kernel=transpose_kernel)
  x = jnp.asarray(_random((2, h, w, 3), 11), jnp.float32)
  params = ours.init(jax.random.key(0), x)["params"]
  assert params["kernel"].shape == _pair(kernel_size) + (3, 4)
  assert ("bias" in params) == use_bias

  def to_flax(params):
    # Documented correspondence: our scatter-form kernel K is flax's K[::-1, ::-1] without
    # transpose_kernel, and K with its channel axes swapped with transpose_kernel.
    kernel = params["kernel"].transpose(0, 1, 3, 2) if transpose_kernel else params["kernel"][::-1, ::-1]
    return dict(params, kernel=kernel)

  np.testing.assert_allclose(ours.apply({"params": params}, x),
                             theirs.apply({"params": to_flax(params)}, x), **TOLERANCE)
  # Gradients w.r.t. the parameters and the input, mapped through the same (linear) correspondence.
  y_grad = jnp.asarray(_random(ours.apply({"params": params}, x).shape, 12), jnp.float32)
  loss = lambda module, p, x: jnp.vdot(module.apply({"params": p}, x), y_grad)
  our_param_grad, our_x_grad = jax.jit(jax.grad(lambda p, x: loss(ours, p, x), (0, 1)))(params, x)
  their_param_grad, their_x_grad = jax.jit(jax.grad(lambda p, x: loss(theirs, to_flax(p), x), (0, 1)))(params, x)
  np.testing.assert_allclose(our_x_grad, their_x_grad, **TOLERANCE)
  for name in params:
    np.testing.assert_allclose(our_param_grad[name], their_param_grad[name], **TOLERANCE)


@pytest.mark.parametrize("h,w,kernel_size,stride,padding,output_padding", CONV_TRANSPOSE_CASES)
def test_conv_transpose_matches_torch(h, w, kernel_size, stride, padding, output_padding):
  torch = pytest.importorskip("torch")
  x, _ = _operands(h, w, kernel_size, 3, 5, seed=21)
  torch_weight = torch.randn(3, 5, *_pair(kernel_size), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
  torch_x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
  want = torch.nn.functional.conv_transpose2d(torch_x, torch_weight, stride=stride, padding=padding,
                                              output_padding=output_padding).numpy().transpose(0, 2, 3, 1)
  kernel = layers.torch_conv_transpose_kernel_to_flax(torch_weight).numpy()
  got = layers.conv_transpose(jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32), stride, padding,
                              output_padding)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_torch_kernel_conversion_round_trips_and_matches_the_scatter_definition():
  weight = _random((3, 5, 4, 2), 0)  # PyTorch ConvTranspose2d: (C_in, C_out, kH, kW)
  kernel = layers.torch_conv_transpose_kernel_to_flax(weight)
  assert kernel.shape == (4, 2, 3, 5)
  np.testing.assert_array_equal(layers.flax_conv_transpose_kernel_to_torch(kernel), weight)
  # A single input pixel with a one-hot input channel reproduces that channel's PyTorch weight, unflipped.
  x = np.zeros((1, 1, 1, 3))
  x[0, 0, 0, 1] = 1.0
  y = numpy_conv_transpose(x, kernel, 1, 0)
  np.testing.assert_array_equal(y[0].transpose(2, 0, 1), weight[1])


def test_conv_transpose_rejects_mismatched_channels_and_empty_outputs():
  with pytest.raises(ValueError, match="expects 4 input channels, input has 3"):
    layers.conv_transpose(jnp.zeros((1, 2, 2, 3)), jnp.zeros((3, 3, 4, 5)), 2, 1)
  with pytest.raises(ValueError, match="would be empty"):
    layers.conv_transpose(jnp.zeros((1, 1, 1, 3)), jnp.zeros((1, 1, 3, 5)), 1, 1)


# ---------------------------------------------------------------------------
# Conv (strided; custom gradient through conv_transpose)

# (h, w, kernel_size, stride, padding)
CONV_CASES = [
    (8, 8, 4, 2, 1),  # DCGAN's downsampling layer
    (4, 4, 4, 1, 0),  # DCGAN's last layer: 4x4 -> 1x1
    (7, 5, 3, 2, 1),  # odd sizes, kernel not a multiple of the stride
    (9, 10, 4, 3, 2),  # stride 3, rows left over at the end
    (5, 6, 1, 2, 0),  # pointwise strided: skips pixels
    (6, 6, 3, 1, 1),  # stride 1 'same'
    (8, 7, (3, 4), (2, 1), (1, 2)),  # everything different per axis
    (4, 4, 4, 1, 1),  # PatchGAN's stride-1 layer on a 4x4 map: the kernel exceeds the 3x3 output gradient
    (2, 2, 4, 2, 1),  # pix2pix's innermost down: one window of the padded input (a matmul)
    (8, 4, 5, 2, 2),  # SpecGAN's 8x4 -> 4x2: its input gradient is the col2im-form transposed conv
    (8, 6, 3, 2, 1),  # SRGAN's D: 3x3 stride 2 padding 1, its input gradient im2col's adjoint
]


@pytest.mark.parametrize("channels", CHANNELS, ids=lambda c: f"c{c[0]}-{c[1]}")
@pytest.mark.parametrize("h,w,kernel_size,stride,padding", CONV_CASES)
def test_conv_matches_numpy_and_lax(h, w, kernel_size, stride, padding, channels):
  x, kernel = _operands(h, w, kernel_size, *channels, seed=30)
  want = numpy_conv(x, kernel, stride, padding)
  y_grad = _random(want.shape, 31)
  fast = lambda x, k: layers.conv(x, k, stride, padding)
  value, grads = _value_and_grads(fast, x, kernel, y_grad)
  np.testing.assert_allclose(value, want, **TOLERANCE)
  for got, want_grad in zip(grads, numpy_conv_grads(x, kernel, y_grad, stride, padding)):
    np.testing.assert_allclose(got, want_grad, **TOLERANCE)

  reference = lambda x, k: lax.conv_general_dilated(x, k, _pair(stride), [(p, p) for p in _pair(padding)],
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
  _, want_grads = _value_and_grads(reference, x, kernel, y_grad)
  for got, want_grad in zip(grads, want_grads):
    np.testing.assert_allclose(got, want_grad, **TOLERANCE)


@pytest.mark.parametrize("h,w,kernel_size,stride,padding", CONV_CASES)
def test_conv_module_matches_torch_conv2d(h, w, kernel_size, stride, padding):
  torch = pytest.importorskip("torch")
  module = layers.Conv(5, kernel_size, stride, padding, bias_init=nn.initializers.normal(1.0))
  x = _random((2, h, w, 3), 40)
  params = module.init(jax.random.key(1), jnp.asarray(x, jnp.float32))["params"]
  want = torch.nn.functional.conv2d(
      torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
      torch.from_numpy(np.asarray(params["kernel"], np.float64).transpose(3, 2, 0, 1).copy()),
      torch.from_numpy(np.asarray(params["bias"], np.float64)), stride=stride, padding=padding)
  np.testing.assert_allclose(module.apply({"params": params}, jnp.asarray(x, jnp.float32)),
                             want.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# conv_stride1: the custom gradients on their own


def _assert_conv_stride1_matches_xla(x, kernel, padding, seed: int):
  """conv_stride1's value and gradients equal lax's stride-1 conv's; returns (ours, lax's) as functions of (x, k)."""
  xla_conv = lambda x, k: lax.conv_general_dilated(x, k, (1, 1), padding,
                                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  fast = lambda x, k: layers.conv_stride1(x, k, padding)
  _assert_same_values_and_grads(fast, xla_conv, x, kernel, seed)
  return fast, xla_conv


@pytest.mark.parametrize("c_in,c_out", [(2, 7), (7, 2)])
@pytest.mark.parametrize("padding", [((0, 0), (0, 0)), ((2, 1), (0, 3)), ((1, -1), (-1, 2))])
def test_conv_stride1_gradients_match_xla(c_in, c_out, padding):
  x = jnp.asarray(_random((3, 6, 5, c_in), 50), jnp.float32)
  kernel = jnp.asarray(_random((3, 2, c_in, c_out), 51), jnp.float32)
  _assert_conv_stride1_matches_xla(x, kernel, padding, 52)


@pytest.mark.parametrize("padding", [((1, 1), (1, 1)), ((2, 1), (0, 3)), ((2, 0), (2, 0))])
def test_conv_stride1_on_maps_smaller_than_its_kernel_matches_xla(padding):
  # The matmul form (XLA:CPU's own conv is ~60x slower there): values, gradients and the gradient of the
  # input gradient (WGAN-GP's penalty) equal lax's.
  x = jnp.asarray(_random((3, 2, 2, 5), 53), jnp.float32)
  kernel = jnp.asarray(_random((3, 3, 5, 4), 54, 0.3), jnp.float32)
  fast, xla_conv = _assert_conv_stride1_matches_xla(x, kernel, padding, 55)
  penalty = lambda op, x, k: jnp.sum(jax.grad(lambda x: jnp.sum(jnp.tanh(op(x, k))))(x) ** 2)
  got = jax.grad(lambda x, k: penalty(fast, x, k), (0, 1))(x, kernel)
  want = jax.grad(lambda x, k: penalty(xla_conv, x, k), (0, 1))(x, kernel)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size,kernel_size,padding,block", [
    ((8, 8), (9, 9), ((4, 4), (4, 4)), 4),  # "same" padding, blocked by 4
    ((5, 10), (9, 9), ((5, 4), (2, 4)), 2),  # 6 x 8 output: blocked by 2, asymmetric padding
    ((7, 9), (9, 9), ((4, 4), (4, 4)), 0),  # odd output: XLA's conv
    ((8, 8), (7, 7), ((3, 3), (3, 3)), 0),  # fewer than 81 taps (CycleGAN's 7x7): XLA's conv
])
def test_conv_stride1_output_blocking_matches_xla(size, kernel_size, padding, block):
  # Few output channels and a large kernel: the forward is a conv between pixel blocks (SRGAN's last layer).
  x = jnp.asarray(_random((2,) + size + (5,), 56), jnp.float32)
  kernel = jnp.asarray(_random(kernel_size + (5, 3), 57, 0.3), jnp.float32)
  assert layers._output_block(x, kernel, padding) == block
  _assert_conv_stride1_matches_xla(x, kernel, padding, 58)


@pytest.mark.parametrize("size,kernel_size,padding,block", [
    ((6, 6), (9, 9), ((4, 4), (4, 4)), 2),  # "same" padding, blocked by 2
    ((5, 10), (9, 9), ((5, 4), (2, 4)), 2),  # 6 x 8 output, asymmetric padding
    ((7, 9), (9, 9), ((4, 4), (4, 4)), 0),  # odd output: XLA's conv
    ((8, 8), (7, 7), ((3, 3), (3, 3)), 0),  # fewer than 81 taps: XLA's conv
])
def test_conv_stride1_input_blocking_matches_xla(size, kernel_size, padding, block):
  # Few input channels and a large kernel: forward and input gradient are convs between 2x2 pixel blocks
  # (SRGAN's first layer, and its last layer's input gradient, whose y_grad has 3 channels).
  x = jnp.asarray(_random((2,) + size + (3,), 59), jnp.float32)
  kernel = jnp.asarray(_random(kernel_size + (3, 5), 60, 0.3), jnp.float32)
  assert layers._input_block(x, kernel, padding) == block
  assert layers._output_block(x, kernel, padding) == 0
  _assert_conv_stride1_matches_xla(x, kernel, padding, 61)


def test_conv_stride1_input_gradient_of_few_output_channels_is_blocked():
  # The last SRGAN layer's shape (9x9, 5 -> 3 channels): its input gradient is a conv with 3 input channels.
  x = jnp.asarray(_random((2, 8, 8, 5), 62), jnp.float32)
  kernel = jnp.asarray(_random((9, 9, 5, 3), 63, 0.3), jnp.float32)
  padding = ((4, 4), (4, 4))
  y_grad = jnp.asarray(_random((2, 8, 8, 3), 64), jnp.float32)
  assert layers._input_block(y_grad, kernel[::-1, ::-1].transpose(0, 1, 3, 2), padding) == 2
  _assert_conv_stride1_matches_xla(x, kernel, padding, 65)


@pytest.mark.parametrize("kernel_size,padding,applies", [
    ((3, 3), ((1, 1), (1, 1)), True),  # SRGAN's D's first layer
    ((3, 2), ((2, 0), (1, 1)), True),  # asymmetric
    ((5, 5), ((2, 2), (2, 2)), False),  # more than 16 taps: XLA's conv
    ((3, 3), ((3, 0), (1, 1)), False),  # low padding past the kernel: the gradient conv crops
])
def test_conv_stride1_input_gradient_to_few_channels_as_tap_sums(kernel_size, padding, applies):
  x = jnp.asarray(_random((2, 7, 6, 3), 66), jnp.float32)
  kernel = jnp.asarray(_random(kernel_size + (3, 5), 67, 0.3), jnp.float32)
  t_h, t_w = kernel_size
  y_shape = lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")).shape
  grad_padding = ((t_h - 1 - padding[0][0], x.shape[1] - y_shape[1] + padding[0][0]),
                  (t_w - 1 - padding[1][0], x.shape[2] - y_shape[2] + padding[1][0]))
  y_grad = jnp.zeros(y_shape)
  assert layers._input_grad_tap_sums_apply(y_grad, kernel[::-1, ::-1].transpose(0, 1, 3, 2), grad_padding) == applies
  _assert_conv_stride1_matches_xla(x, kernel, padding, 68)


@pytest.mark.parametrize("kernel_size,padding,applies", [
    ((3, 3), ((1, 1), (1, 1)), True),  # SRGAN's D's first layer
    ((2, 3), ((0, 1), (2, 0)), True),  # asymmetric
    ((5, 5), ((2, 2), (2, 2)), False),  # more than 16 taps
    ((3, 3), ((1, -1), (1, 1)), False),  # cropping
])
def test_conv_stride1_forward_from_few_channels_as_planar_im2col(kernel_size, padding, applies):
  x = jnp.asarray(_random((2, 7, 6, 3), 69), jnp.float32)
  kernel = jnp.asarray(_random(kernel_size + (3, 5), 70, 0.3), jnp.float32)
  assert layers._planar_im2col_applies(x, kernel, padding) == applies
  _assert_conv_stride1_matches_xla(x, kernel, padding, 71)


def test_strided_conv_input_gradient_form_is_chosen_by_shape(monkeypatch):
  # 3x3 stride-2 padding-1 convs take im2col's adjoint as their input gradient while its columns stay small;
  # past the limit (and for other kernels) the sub-pixel transposed conv. Both equal lax's gradients.
  x = jnp.asarray(_random((2, 8, 6, 3), 62), jnp.float32)
  kernel = jnp.asarray(_random((3, 3, 3, 4), 63, 0.3), jnp.float32)
  y_grad = _random((2, 4, 3, 4), 64)
  assert layers._im2col_input_grad_applies(x, kernel, y_grad, (2, 2), (1, 1))
  assert not layers._im2col_input_grad_applies(x, kernel[:2], y_grad, (2, 2), (1, 1))
  reference = lambda x, k: lax.conv_general_dilated(x, k, (2, 2), [(1, 1), (1, 1)],
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
  _, want = _value_and_grads(reference, x, kernel, y_grad)
  _, im2col = _value_and_grads(lambda x, k: layers.conv(x, k, 2, 1), x, kernel, y_grad)
  monkeypatch.setattr(layers, "IM2COL_INPUT_GRAD_MAX_COLUMNS", 2 * 4 * 3 * 9 * 3 - 1)
  assert not layers._im2col_input_grad_applies(x, kernel, y_grad, (2, 2), (1, 1))
  _, subpixel = _value_and_grads(lambda x, k: layers.conv(x, k, 2, 1), x, kernel, y_grad)
  for got in (im2col, subpixel):
    for g, w in zip(got, want):
      np.testing.assert_allclose(g, w, **TOLERANCE)


# ---------------------------------------------------------------------------
# Second order: gradient penalties (WGAN-GP, R1) differentiate through the input gradient.


@pytest.mark.parametrize("transposed,kernel_size", [(False, 4), (True, 4), (False, 3)])
def test_gradient_of_input_gradient_matches_lax(transposed, kernel_size):
  x = jnp.asarray(_random((2, 5, 6, 3), 60), jnp.float32)
  kernel = jnp.asarray(_random((kernel_size, kernel_size, 3, 2), 61, 0.3), jnp.float32)
  if transposed:
    fast = lambda x, k: layers.conv_transpose(x, k, 2, 1)
    reference = lambda x, k: layers.conv_transpose_reference(x, k, 2, 1)
  else:
    fast = lambda x, k: layers.conv(x, k, 2, 1)
    reference = lambda x, k: lax.conv_general_dilated(x, k, (2, 2), [(1, 1), (1, 1)],
                                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def penalty(op, x, kernel):
    # Squared norm of d(sum tanh(op))/dx, differentiated again w.r.t. both x and the kernel.
    input_grad = jax.grad(lambda x: jnp.sum(jnp.tanh(op(x, kernel))))(x)
    return jnp.sum(input_grad**2)

  got = jax.jit(jax.grad(lambda x, k: penalty(fast, x, k), (0, 1)))(x, kernel)
  want = jax.jit(jax.grad(lambda x, k: penalty(reference, x, k), (0, 1)))(x, kernel)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# Nearest 2x upsampling + conv as one transposed conv (StackGAN's upBlock)


def _upsample_then_lax_conv(x, kernel, padding):
  upsampled = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  return lax.conv_general_dilated(upsampled, kernel, (1, 1), [_pair(padding)[0:1] * 2, _pair(padding)[1:2] * 2],
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


# (h, w, kernel (kH, kW), padding): StackGAN's 3x3 padding 1, and other kernels and paddings the folding covers.
UPSAMPLE_CONV_CASES = [(3, 4, (3, 3), 1), (4, 4, (3, 3), 0), (2, 3, (3, 3), 2), (3, 3, (1, 1), 0),
                       (3, 2, (4, 2), (2, 1)), (4, 5, (5, 5), 2)]


@pytest.mark.parametrize("h, w, kernel_size, padding", UPSAMPLE_CONV_CASES)
def test_nearest_upsample_conv_matches_upsampling_then_lax_conv_values_and_grads(h, w, kernel_size, padding):
  x = _random((2, h, w, 3), 70)
  kernel = _random(kernel_size + (3, 4), 71, 0.3)
  want, want_grads = _value_and_grads(lambda x, k: _upsample_then_lax_conv(x, k, padding), x, kernel,
                                      _random((2,) + _upsample_conv_out(h, w, kernel_size, padding) + (4,), 72))
  got, got_grads = _value_and_grads(lambda x, k: layers.nearest_upsample_conv(x, k, padding), x, kernel,
                                    _random((2,) + _upsample_conv_out(h, w, kernel_size, padding) + (4,), 72))
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, **TOLERANCE)
  for g, w_ in zip(got_grads, want_grads):
    np.testing.assert_allclose(g, w_, rtol=1e-5, atol=1e-4)


def _upsample_conv_out(h, w, kernel_size, padding):
  (p_h, p_w) = _pair(padding)
  return (2 * h + 2 * p_h - kernel_size[0] + 1, 2 * w + 2 * p_w - kernel_size[1] + 1)


def test_nearest_upsample_conv_module_keeps_the_plain_conv_kernel_and_refuses_what_it_cannot_fold():
  module = layers.NearestUpsampleConv(4, 3, padding=1, use_bias=False)
  x = jnp.asarray(_random((1, 3, 3, 2), 73), jnp.float32)
  variables = module.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, variables) == {"params": {"kernel": (3, 3, 2, 4)}}
  np.testing.assert_allclose(module.apply(variables, x),
                             _upsample_then_lax_conv(x, variables["params"]["kernel"], 1), **TOLERANCE)
  with pytest.raises(ValueError, match="padding in \\[0, kernel - 1\\]"):
    layers.nearest_upsample_conv(x, jnp.zeros((3, 3, 2, 4)), 3)
  with pytest.raises(ValueError, match="stride 1 after upsampling"):
    layers.NearestUpsampleConv(4, 3, strides=2, padding=1).init(jax.random.key(0), x)


# ---------------------------------------------------------------------------
# The 256x256 translation steps' forms: im2col for kernel-bound 4x4 convs, tap sums for one output channel,
# Winograd F(4, 3) for CycleGAN's residual convs. Each equals lax's conv, values and gradients.


def _lax_conv(stride, padding):
  return lambda x, k: lax.conv_general_dilated(x, k, (stride, stride), [(padding, padding)] * 2,
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _assert_conv_matches_lax(x, kernel, stride, padding, seed, tolerance=TOLERANCE):
  fast = lambda x, k: layers.conv(x, k, stride, padding)
  _assert_same_values_and_grads(fast, _lax_conv(stride, padding), x, kernel, seed, tolerance)


def _convolutions(fn, *args) -> str:
  return str(jax.make_jaxpr(fn)(*args)).count("conv_general_dilated")


def test_kernel_bound_4x4_strided_conv_is_im2col_and_matches_lax():
  # pix2pix's 4x4 -> 2x2 layer at batch 1 in miniature: 4 output pixels, 6 output channels.
  x = jnp.asarray(_random((1, 4, 4, 5), 70), jnp.float32)
  kernel = jnp.asarray(_random((4, 4, 5, 6), 71, 0.3), jnp.float32)
  assert _convolutions(lambda x, k: layers.conv(x, k, 2, 1), x, kernel) == 0
  _assert_conv_matches_lax(x, kernel, 2, 1, 72)
  wide = jnp.ones((1, 8, 8, 5))  # 16 output pixels for 6 channels: XLA's strided conv
  assert _convolutions(lambda x, k: layers.conv(x, k, 2, 1), wide, kernel) == 1


@pytest.mark.parametrize("size,padding", [((7, 6), 1), ((5, 5), 0)])
def test_one_channel_conv_is_tap_sums_and_matches_lax(size, padding):
  # The PatchGAN's output layer (4x4 kernel to one score per patch).
  x = jnp.asarray(_random((2,) + size + (5,), 73), jnp.float32)
  kernel = jnp.asarray(_random((4, 4, 5, 1), 74, 0.3), jnp.float32)
  assert _convolutions(lambda x, k: layers.conv(x, k, 1, padding), x, kernel) == 0
  _assert_conv_matches_lax(x, kernel, 1, padding, 75)
  penalty = lambda op, x, k: jnp.sum(jax.grad(lambda x: jnp.sum(jnp.tanh(op(x, k))))(x) ** 2)  # R1 / WGAN-GP
  got = jax.jit(jax.grad(lambda x, k: penalty(lambda x, k: layers.conv(x, k, 1, padding), x, k), (0, 1)))(x, kernel)
  want = jax.jit(jax.grad(lambda x, k: penalty(_lax_conv(1, padding), x, k), (0, 1)))(x, kernel)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_residual_3x3_conv_takes_winograd_f4_3_and_matches_lax(monkeypatch):
  # Thresholds lowered to tiny shapes: a VALID 3x3 conv, 10x14 -> 8x12 (tiles of 4), 6 -> 7 channels.
  monkeypatch.setattr(layers, "WINOGRAD_3X3_MIN_CHANNELS", 6)
  monkeypatch.setattr(layers, "WINOGRAD_3X3_MIN_OUTPUT_PIXELS", 2 * 8 * 12)
  x = jnp.asarray(_random((2, 10, 14, 6), 76), jnp.float32)
  kernel = jnp.asarray(_random((3, 3, 6, 7), 77, 0.3), jnp.float32)
  assert _convolutions(lambda x, k: layers.conv(x, k, 1, 0), x, kernel) == 0
  _assert_conv_matches_lax(x, kernel, 1, 0, 78, dict(rtol=0, atol=3e-5 * 3))
  for other in [(1, 10, 14, 6), (2, 11, 14, 6)]:  # a grid below the threshold; a side that is not 4k + 2
    assert _convolutions(lambda x, k: layers.conv(x, k, 1, 0), jnp.ones(other), kernel) == 1
  assert _convolutions(lambda x, k: layers.conv(x, k, 1, 1), x, kernel) == 1  # zero padding: XLA's


def test_winograd_f4_3_rounding_at_a_cyclegan_residual_conv_is_float32_sized():
  # 256 channels as in resnet_9blocks (at 16x16 rather than 64x64): Winograd vs float64, beside XLA's conv.
  rng = np.random.default_rng(79)
  x = rng.standard_normal((1, 18, 18, 256))
  kernel = 0.02 * rng.standard_normal((3, 3, 256, 256))
  exact = sum(np.einsum("nhwc,cd->nhwd", x[:, a:a + 16, b:b + 16], kernel[a, b]) for a in range(3) for b in range(3))
  x32, kernel32 = jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32)
  from gans import winograd
  got = np.asarray(jax.jit(lambda x, k: winograd.correlate(x, k, winograd.F4_3))(x32, kernel32), np.float64)
  direct = np.asarray(jax.jit(_lax_conv(1, 0))(x32, kernel32), np.float64)
  winograd_error, direct_error = np.abs(got - exact).max(), np.abs(direct - exact).max()
  # F(4, 3)'s transforms (entries up to 4 in magnitude at the points +-1/2) round more than F(4, 2)'s 10x bound
  # allows: measured 13x XLA's error here (3.2e-5 against 2.5e-6), under 1e-5 of the largest output.
  assert winograd_error < 20 * direct_error, (winograd_error, direct_error)
  assert winograd_error < 1e-5 * np.abs(exact).max(), winograd_error / np.abs(exact).max()


def test_narrow_4x4_strided_conv_on_a_large_map_is_a_space_to_depth_conv_and_matches_lax(monkeypatch):
  # pix2pix's 256x256 outer layers in miniature (threshold lowered to an 8x8 input): a stride-1 conv after a
  # space-to-depth, forward and gradients, and the transposed conv's gradients through it.
  monkeypatch.setattr(layers, "SPACE_TO_DEPTH_MIN_OUTPUT_PIXELS", 4 * 4)  # per example
  x = jnp.asarray(_random((2, 8, 8, 3), 80), jnp.float32)
  kernel = jnp.asarray(_random((4, 4, 3, 5), 81, 0.3), jnp.float32)
  strided = lambda fn, *args: str(jax.make_jaxpr(jax.grad(lambda *a: jnp.sum(fn(*a) ** 2), (0, 1)))(*args)).count(
      "window_strides=(2, 2)")
  assert strided(lambda x, k: layers.conv(x, k, 2, 1), x, kernel) == 0
  _assert_conv_matches_lax(x, kernel, 2, 1, 82)
  y = jnp.asarray(_random((2, 4, 4, 5), 83), jnp.float32)
  transposed = jnp.asarray(_random((4, 4, 5, 3), 84, 0.3), jnp.float32)
  assert strided(lambda y, k: layers.conv_transpose(y, k, 2, 1), y, transposed) == 0
  _assert_same_values_and_grads(lambda y, k: layers.conv_transpose(y, k, 2, 1),
                                lambda y, k: layers.conv_transpose_reference(y, k, 2, 1), y, transposed, 85)
  monkeypatch.setattr(layers, "SPACE_TO_DEPTH_MIN_OUTPUT_PIXELS", 4 * 4 + 1)  # one pixel short: XLA's
  assert strided(lambda x, k: layers.conv(x, k, 2, 1), x, kernel) > 0
