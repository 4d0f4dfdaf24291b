"""3D convolutions of the 3D-GAN (kernel 4, stride 2, padding 1) in the forms of gans/layers.py, for voxels.

Layout: inputs NDHWC, kernels DHWIO (kD, kH, kW, C_in, C_out); a transposed conv's kernel is in scatter form,
as `gans.layers.ConvTranspose`'s (PyTorch ConvTranspose3d weight (C_in, C_out, kD, kH, kW) -> transpose(2, 3,
4, 0, 1)). Semantics are PyTorch's Conv3d(k=4, s=2, p=1) and ConvTranspose3d(k=4, s=2, p=1): each halves or
doubles D, H and W.

The fast form ("space_to_depth"), as the 2D Winograd path of gans/layers.py:

  * conv3d: after padding by 1 and a 2x2x2 space-to-depth, the strided 4x4x4 conv is a 2x2x2-tap stride-1
    VALID conv over 8 C_in channels;
  * conv_transpose3d: its adjoint with the kernel's channels swapped, i.e. a 2x2x2-tap stride-1 conv (padding
    1, kernel flipped) to 8 C_out channels, a depth-to-space ("sub-voxel" shuffle) and a crop of one voxel on
    each side.

Both are plain reshapes around one stride-1 convolution, `conv_stride1_3d`, whose input gradient is XLA's own
(for stride 1 an ordinary padded convolution, no input dilation) and whose kernel gradient is one matmul
(`_correlate_weight_grad_3d`; XLA's own lowering of it convolves with the whole feature map as kernel). So no
forward or backward pass needs an input-dilated convolution, which `lax.conv_transpose`'s forward and XLA's
input gradient of a strided conv both use.

The plain forms ("lax": `lax.conv_general_dilated` with stride 2, `lax.conv_transpose`) are kept as the
reference the tests compare with and as the form for GPUs and TPUs, whose libraries run them well.
benchmarks/conv3d.py measures both on the CPU side by side; `CPU_FORM` records its verdict.
"""
import functools
import itertools
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
_NDHWC = ("NDHWC", "DHWIO", "NDHWC")
FORMS = ("space_to_depth", "lax")
# The form used on the CPU when none is asked for: benchmarks/conv3d.py measured the 3D-GAN's layers
# (forward + both gradients) faster in it; see the numbers there and in README's 3D-GAN section.
CPU_FORM = "space_to_depth"


def default_form() -> str:
  return CPU_FORM if jax.default_backend() == "cpu" else "lax"


def _check(x_NDHWC: Array, kernel_DHWIO: Array, form: Optional[str]) -> str:
  if x_NDHWC.ndim != 5 or kernel_DHWIO.ndim != 5:
    raise ValueError(f"expected NDHWC input and a (kD, kH, kW, C_in, C_out) kernel, got shapes {x_NDHWC.shape} "
                     f"and {kernel_DHWIO.shape}")
  if tuple(kernel_DHWIO.shape[:3]) != (4, 4, 4):
    raise ValueError(f"the 3D-GAN layers have 4x4x4 kernels (stride 2, padding 1), got {kernel_DHWIO.shape[:3]}")
  if kernel_DHWIO.shape[3] != x_NDHWC.shape[4]:
    raise ValueError(f"kernel expects {kernel_DHWIO.shape[3]} input channels, input has {x_NDHWC.shape[4]}")
  form = form or default_form()
  if form not in FORMS:
    raise ValueError(f"Unknown 3D conv form {form!r}; valid: {', '.join(FORMS)}.")
  return form


def _correlate_weight_grad_3d(a: Array, b: Array, taps: tuple[int, int, int],
                              precision: Optional[lax.Precision]) -> Array:
  """w[t, ca, cb] = sum_{n, q} a[n, q + t, ca] * b[n, q, cb]: the kernel gradient of a stride-1 VALID conv of
  `a` (the padded input) whose output cotangent is `b`, as one matmul over batch and space.

  The operand with fewer channels is replicated once per tap (im2col of `a`, or shifted copies of `b` on a
  zero canvas of `a`'s size), so the copy stays small. (2D dropped its twin: there XLA's own kernel gradient
  is now faster; in 3D, at the 3D-GAN's transposed layers, XLA's took 2.5 s where this takes 25 ms.)
  """
  n, *a_space, c_a = a.shape
  _, *q_space, c_b = b.shape
  offsets = list(itertools.product(*(range(t) for t in taps)))
  contract_rows = (((0,), (0,)), ((), ()))
  if c_a <= c_b:
    cols = jnp.concatenate([a[:, i:i + q_space[0], j:j + q_space[1], k:k + q_space[2]] for i, j, k in offsets],
                           axis=-1)
    grad = lax.dot_general(b.reshape(-1, c_b), cols.reshape(-1, len(offsets) * c_a), contract_rows,
                           precision=precision)  # (c_b, taps * c_a)
    return grad.reshape(c_b, *taps, c_a).transpose(1, 2, 3, 4, 0)
  # sum_q a[q + t] b[q] = sum_u a[u] b_shifted_t[u] with b_shifted_t[u] = b[u - t].
  shifted = jnp.concatenate(
      [jnp.pad(b, ((0, 0),) + tuple((o, size_a - size_q - o) for o, size_a, size_q in zip(offset, a_space, q_space))
               + ((0, 0),)) for offset in offsets], axis=-1)
  grad = lax.dot_general(a.reshape(-1, c_a), shifted.reshape(-1, len(offsets) * c_b), contract_rows,
                         precision=precision)  # (c_a, taps * c_b)
  return grad.reshape(c_a, *taps, c_b).transpose(1, 2, 3, 0, 4)


def _conv_stride1_plain(x_NDHWC, kernel_DHWIO, padding, precision):
  return lax.conv_general_dilated(x_NDHWC, kernel_DHWIO, (1, 1, 1), padding, dimension_numbers=_NDHWC,
                                  precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_stride1_3d(x_NDHWC: Array, kernel_DHWIO: Array, padding: tuple, precision=None) -> Array:
  """Stride-1 3D convolution (cross-correlation), `padding` ((lo, hi),) * 3 >= 0; kernel gradient as a matmul."""
  return _conv_stride1_plain(x_NDHWC, kernel_DHWIO, padding, precision)


def _conv_stride1_fwd(x_NDHWC, kernel_DHWIO, padding, precision):
  return _conv_stride1_plain(x_NDHWC, kernel_DHWIO, padding, precision), (x_NDHWC, kernel_DHWIO)


def _conv_stride1_bwd(padding, precision, residuals, y_grad):
  x_NDHWC, kernel_DHWIO = residuals
  _, input_vjp = jax.vjp(lambda x: _conv_stride1_plain(x, kernel_DHWIO, padding, precision), x_NDHWC)
  (x_grad,) = input_vjp(y_grad)
  x_padded = jnp.pad(x_NDHWC, ((0, 0),) + tuple(padding) + ((0, 0),))
  kernel_grad = _correlate_weight_grad_3d(x_padded, y_grad, kernel_DHWIO.shape[:3], precision)
  return x_grad, kernel_grad.astype(kernel_DHWIO.dtype)


conv_stride1_3d.defvjp(_conv_stride1_fwd, _conv_stride1_bwd)


def space_to_depth_3d(x_NDHWC: Array) -> Array:
  """(N, 2D, 2H, 2W, C) -> (N, D, H, W, 8C), channels ordered (depth offset, row offset, column offset, c)."""
  n, d, h, w, c = x_NDHWC.shape
  x = x_NDHWC.reshape(n, d // 2, 2, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4, 6, 7)
  return x.reshape(n, d // 2, h // 2, w // 2, 8 * c)


def depth_to_space_3d(x_NDHWC: Array) -> Array:
  """The inverse of `space_to_depth_3d`: (N, D, H, W, 8C) -> (N, 2D, 2H, 2W, C)."""
  n, d, h, w, c8 = x_NDHWC.shape
  x = x_NDHWC.reshape(n, d, h, w, 2, 2, 2, c8 // 8).transpose(0, 1, 4, 2, 5, 3, 6, 7)
  return x.reshape(n, 2 * d, 2 * h, 2 * w, c8 // 8)


def _space_to_depth_kernel(kernel_DHWIO: Array) -> Array:
  """A 4x4x4 kernel of a stride-2 conv -> the (2, 2, 2, 8C, C_out) kernel of the same conv after
  `space_to_depth_3d`: kernel index a = 2m + r becomes tap m, channel block r."""
  c, d = kernel_DHWIO.shape[3:]
  blocks = kernel_DHWIO.reshape(2, 2, 2, 2, 2, 2, c, d).transpose(0, 2, 4, 1, 3, 5, 6, 7)
  return blocks.reshape(2, 2, 2, 8 * c, d)


def _check_even(x_NDHWC: Array) -> None:
  if any(size % 2 for size in x_NDHWC.shape[1:4]):
    raise ValueError(f"conv3d with stride 2 needs even D, H, W, got {x_NDHWC.shape[1:4]}")


def conv3d_lax(x_NDHWC: Array, kernel_DHWIO: Array, precision=None) -> Array:
  """PyTorch's Conv3d(k=4, s=2, p=1) as XLA's strided convolution (the reference)."""
  return lax.conv_general_dilated(x_NDHWC, kernel_DHWIO, (2, 2, 2), [(1, 1)] * 3, dimension_numbers=_NDHWC,
                                  precision=precision)


def conv_transpose3d_lax(x_NDHWC: Array, kernel_DHWIO: Array, precision=None) -> Array:
  """PyTorch's ConvTranspose3d(k=4, s=2, p=1) as `lax.conv_transpose` (an input-dilated conv; the reference)."""
  return lax.conv_transpose(x_NDHWC, kernel_DHWIO[::-1, ::-1, ::-1], (2, 2, 2), [(2, 2)] * 3,
                            dimension_numbers=_NDHWC, precision=precision)


def conv3d(x_NDHWC: Array, kernel_DHWIO: Array, form: Optional[str] = None, precision=None) -> Array:
  """PyTorch's Conv3d(k=4, s=2, p=1): (N, D, H, W, C_in) -> (N, D/2, H/2, W/2, C_out).

  form: "space_to_depth" (pad, space-to-depth, one 2x2x2-tap stride-1 conv) or "lax"; None = the backend's
  default (`default_form`).
  """
  form = _check(x_NDHWC, kernel_DHWIO, form)
  _check_even(x_NDHWC)
  if form == "lax":
    return conv3d_lax(x_NDHWC, kernel_DHWIO, precision)
  x = space_to_depth_3d(jnp.pad(x_NDHWC, ((0, 0), (1, 1), (1, 1), (1, 1), (0, 0))))
  return conv_stride1_3d(x, _space_to_depth_kernel(kernel_DHWIO), ((0, 0),) * 3, precision)


def conv_transpose3d(x_NDHWC: Array, kernel_DHWIO: Array, form: Optional[str] = None, precision=None) -> Array:
  """PyTorch's ConvTranspose3d(k=4, s=2, p=1): (N, D, H, W, C_in) -> (N, 2D, 2H, 2W, C_out).

  The "space_to_depth" form is the adjoint of `conv3d`'s with the kernel's channels swapped: a stride-1 conv
  (padding 1, taps flipped) to 8 C_out channels, depth-to-space, and a crop of the one-voxel border.
  """
  form = _check(x_NDHWC, kernel_DHWIO, form)
  if form == "lax":
    return conv_transpose3d_lax(x_NDHWC, kernel_DHWIO, precision)
  # conv3d's kernel from C_out to C_in after space-to-depth: (2, 2, 2, 8 C_out, C_in); its adjoint in x is the
  # stride-1 conv with taps flipped and channels swapped.
  as_conv = _space_to_depth_kernel(kernel_DHWIO.transpose(0, 1, 2, 4, 3))
  adjoint_kernel = as_conv[::-1, ::-1, ::-1].transpose(0, 1, 2, 4, 3)  # (2, 2, 2, C_in, 8 C_out)
  y = conv_stride1_3d(x_NDHWC, adjoint_kernel, ((1, 1),) * 3, precision)
  return depth_to_space_3d(y)[:, 1:-1, 1:-1, 1:-1]


class _Conv3dBase(nn.Module):
  """Kernel (4, 4, 4, C_in, C_out) and optional bias (C_out,); stride 2, padding 1."""
  features: int  # output channels
  use_bias: bool = True  # adds a per-channel bias
  form: Optional[str] = None  # "space_to_depth" | "lax" | None (the backend's default)
  kernel_init: Callable = nn.initializers.lecun_normal()  # init of the (4, 4, 4, C_in, C_out) kernel
  param_dtype: Any = jnp.float32  # dtype of the stored parameters

  def _convolve(self, x, kernel):
    raise NotImplementedError

  @nn.compact
  def __call__(self, x_NDHWC: Array) -> Array:
    kernel = self.param("kernel", self.kernel_init, (4, 4, 4, x_NDHWC.shape[-1], self.features), self.param_dtype)
    y = self._convolve(x_NDHWC, kernel)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,), self.param_dtype)
    return y


class DownConv3d(_Conv3dBase):
  """PyTorch's Conv3d(k=4, s=2, p=1): halves D, H and W."""

  def _convolve(self, x, kernel):
    return conv3d(x, kernel, self.form)


class UpConv3d(_Conv3dBase):
  """PyTorch's ConvTranspose3d(k=4, s=2, p=1): doubles D, H and W; the kernel is in scatter form."""

  def _convolve(self, x, kernel):
    return conv_transpose3d(x, kernel, self.form)
