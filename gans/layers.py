"""Shared Linen layers: ConvTranspose and Conv with PyTorch semantics, fast on XLA:CPU.

ConvTranspose
-------------
`ConvTranspose` is a transposed convolution with PyTorch's semantics
(`torch.nn.ConvTranspose2d`: `padding` crops the full transposed output,
`output_padding` extends it on the high side), NHWC, computed in the form that
is fastest on XLA:CPU for both the forward and the backward pass.

Definition (the scatter form; `x` is NHWC, `kernel` is (kH, kW, C_in, C_out)):

    y[n, i*s_h - p_h + a, j*s_w - p_w + b, co] += x[n, i, j, ci] * kernel[a, b, ci, co]

for every input pixel (i, j) and kernel tap (a, b), keeping output rows in
[0, (H-1)*s_h - 2*p_h + kH + output_padding_h) (likewise for columns).

Why not `lax.conv_transpose`: XLA lowers it to a convolution over the input
dilated by the stride (lhs dilation); on XLA:CPU its gradients run 10-20x
slower than PyTorch's (benchmarks/conv_transpose.py layers). Here:

  * forward: one stride-1 convolution producing s_h*s_w*C_out channels
    ("sub-pixel" form), a depth-to-space shuffle and a crop (one matmul for a
    1x1 input);
  * input gradient: the ordinary strided conv `conv` of the output gradient
    (a transposed conv is the adjoint of a strided conv with the same kernel);
  * kernel gradient: XLA's kernel gradient of that strided conv.

`conv` (PyTorch Conv2d semantics) is built the same way the other way round,
so no gradient of either ever needs an input-dilated convolution. Compile the
training step with `xla_cpu_compiler_options()` on CPU for the fastest convs.

On the CPU, the 4x4 stride-2 padding-1 layers of DCGAN-like networks with at
least WINOGRAD_MIN_CHANNELS channels on both sides go one step further: after
a space-to-depth they are 2x2-tap stride-1 convs, which Winograd's F(4, 2)
(gans/winograd.py) computes with 2.56x fewer multiplications, forward and
backward; equal to the direct forms up to float rounding (~1e-5 relative). float32 inputs only:
bfloat16 ones take the direct forms (see `_winograd_applies`).

The stored parameter is the plain transposed-convolution kernel above; the
sub-pixel rearrangement is a cheap reshape of the parameter inside the forward
pass, so checkpoints are independent of how the operator is computed.
Relation to other conventions (K = our kernel):

  * PyTorch ConvTranspose2d weight w (C_in, C_out, kH, kW):
      K = w.transpose(2, 3, 0, 1)          (`torch_conv_transpose_kernel_to_flax`)
  * flax.linen.ConvTranspose(transpose_kernel=False), kernel (kH, kW, C_in, C_out):
      K[::-1, ::-1] with padding ((kH-1-p_h, kH-1-p_h+op_h), (kW-1-p_w, kW-1-p_w+op_w))
  * flax.linen.ConvTranspose(transpose_kernel=True), kernel (kH, kW, C_out, C_in):
      K.transpose(0, 1, 3, 2) with the same padding.
"""
import functools
import math
from typing import Any, Callable, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gans import winograd

Array = jax.Array
IntPair = Union[int, Sequence[int]]


def _pair(value: IntPair, name: str) -> tuple[int, int]:
  if isinstance(value, int):
    return (value, value)
  value = tuple(int(v) for v in value)
  if len(value) != 2:
    raise ValueError(f"{name} must be an int or a pair of ints, got {value}")
  return value


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int,
                               output_padding: int = 0) -> int:
  """Output length of a transposed convolution along one axis (PyTorch's formula)."""
  return (size - 1) * stride - 2 * padding + kernel + output_padding


def torch_conv_transpose_kernel_to_flax(weight) -> Any:
  """PyTorch ConvTranspose2d weight (C_in, C_out, kH, kW) -> our kernel (kH, kW, C_in, C_out).

  Works on numpy arrays, jax arrays and torch tensors alike (`.transpose` with
  axes is replaced by `permute` on torch tensors).
  """
  if hasattr(weight, "permute"):
    return weight.permute(2, 3, 0, 1)
  return weight.transpose(2, 3, 0, 1)


def flax_conv_transpose_kernel_to_torch(kernel) -> Any:
  """Inverse of `torch_conv_transpose_kernel_to_flax`: (kH, kW, C_in, C_out) -> (C_in, C_out, kH, kW)."""
  if hasattr(kernel, "permute"):
    return kernel.permute(2, 3, 0, 1)
  return kernel.transpose(2, 3, 0, 1)


class _AxisPlan:
  """How one spatial axis of a transposed conv maps onto the sub-pixel form.

  Output position o is written o = o0 + q*s + r with phase r in [0, s) and
  q in [0, num_blocks). Choosing o0 = -(p mod s) makes every phase use the same
  taps (kernel index a = r + s*m, input index i = q + p//s - m, m in
  [0, taps)), so the rearranged kernel has no structural zeros (when s divides
  k) and one stride-1 conv of `taps` taps computes all phases at once. The price
  is up to one extra block at the border, cropped away afterwards.
  """

  def __init__(self, size, kernel, stride, padding, output_padding):
    if stride < 1 or kernel < 1:
      raise ValueError(f"kernel and stride must be >= 1, got kernel={kernel} stride={stride}")
    if padding < 0:
      raise ValueError(f"padding and output_padding must be >= 0, got {padding}, {output_padding}")
    # Internally output_padding may be negative: rows cropped from the high side as well (TensorFlow's "same"
    # transposed convs, see conv_transpose_same); conv_transpose itself refuses it.
    self.kernel = kernel
    self.stride = stride
    self.out_size = conv_transpose_output_size(size, kernel, stride, padding, output_padding)
    if self.out_size < 1:
      raise ValueError(f"transposed conv output would be empty: size={size} kernel={kernel} "
                       f"stride={stride} padding={padding} output_padding={output_padding}")
    self.taps = -(-kernel // stride)
    block_shift = padding // stride
    self.crop_start = padding % stride  # = -o0
    self.num_blocks = -(-(self.out_size + self.crop_start) // stride)
    # The conv reads padded input index q + t for tap t = taps-1-m, i.e. input
    # index q + block_shift - m, so the padded input starts at -(taps-1-block_shift).
    self.pad_low = self.taps - 1 - block_shift
    self.pad_high = self.num_blocks - size + block_shift


_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv_stride1_im2col(x_NHWC, kernel_HWIO, padding, precision):
  """The stride-1 conv as one matmul over the taps' shifted copies of the padded input."""
  t_h, t_w, _, c_out = kernel_HWIO.shape
  x = lax.pad(x_NHWC, jnp.zeros((), x_NHWC.dtype), ((0, 0, 0), (*padding[0], 0), (*padding[1], 0), (0, 0, 0)))
  out_h, out_w = x.shape[1] - t_h + 1, x.shape[2] - t_w + 1
  cols = jnp.concatenate([x[:, i:i + out_h, j:j + out_w] for i in range(t_h) for j in range(t_w)], axis=-1)
  return jnp.dot(cols, kernel_HWIO.reshape(-1, c_out), precision=precision)


def _conv_stride1_plain(x_NHWC, kernel_HWIO, padding, precision):
  # A kernel wider or taller than the input (SpecGAN-at-8-kHz's 4x2 maps under a 3x3 sub-pixel kernel)
  # sends XLA:CPU down a slow generic loop: 3.2 s where the matmul form takes 48 ms (batch 64, 256 -> 512
  # channels; 4x4 maps run XLA's own conv fast). An explicit pad does not help: XLA folds it into the conv.
  if kernel_HWIO.shape[0] > x_NHWC.shape[1] or kernel_HWIO.shape[1] > x_NHWC.shape[2]:
    return _conv_stride1_im2col(x_NHWC, kernel_HWIO, padding, precision)
  return lax.conv_general_dilated(x_NHWC, kernel_HWIO, (1, 1), padding, dimension_numbers=_NHWC,
                                  precision=precision)


# Output blocking: a stride-1 conv with few output channels and a large kernel (SRGAN's last layer: 9x9, 32 -> 3
# channels at 48x48) as a conv between s x s blocks of pixels (space-to-depth on both sides). XLA:CPU's conv
# contracts 81 * 32 inputs into 3 outputs at a time, a skinny matmul; blocked by 4 it is a 3x3-tap conv from
# 16 * 32 to 16 * 3 channels, with 1.77x the multiplications (the blocked kernel's structural zeros) but 3.7x
# faster (forward, batch 16, one core's CPU time: 14.9 ms against 55 ms; PyTorch's conv2d took 0.45x XLA's
# time, loaded wall time). srgan_photos' whole step, one core, CPU time: 1.10x (430 against 473 ms). Not the
# input gradient: it has 3 input channels and 32 outputs, which XLA's conv runs well. The kernel gradient takes
# the blocked form too (`_conv_stride1_kernel_grad`): the step 1.075x more (385 against 414 ms, one core's CPU
# time, interleaved, load 6; an earlier wall-time A/B of the whole VJP saw no gain). Output-side tap sums
# (one matmul to 81 * 3 channels, then 81 shifted adds) were slower than XLA's conv. The only other user,
# CycleGAN's last 7x7 -> RGB: forward 2x faster, forward with VJP equal (263.8 against 264.7 ms CPU time at
# 256 px, batch 1).
OUTPUT_BLOCK_MAX_CHANNELS = 4
# 81 taps: SRGAN's 9x9, where it was measured to win. Not CycleGAN's 7x7 (49 taps): its step gained nothing
# (0.999x), and the blocked sums, rounded differently in the 1- and 4-device programs, were amplified by the
# instance norms of its tiny test maps past the 4-device test's tolerance (first-layer kernel gradients 1e-3
# apart, 6e-6 with XLA's conv).
OUTPUT_BLOCK_MIN_TAPS = 81


def _block_taps(size: int, low: int, block: int) -> tuple[np.ndarray, int, int]:
  """(taps[d, t, r, a], padding, count) along one axis of the blocked form: taps is 1 where output phase r
  and kernel tap a read input phase t of block offset d, for an input padded by `padding` (low `low` rounded
  up to a multiple of `block`) and `count` block taps."""
  padding = block * -(-low // block)
  count = (block - 1 + size - 1 - low + padding) // block + 1
  taps = np.zeros((count, block, block, size), np.float32)
  for r in range(block):
    for a in range(size):
      d, t = divmod(r + a - low + padding, block)
      taps[d, t, r, a] = 1
  return taps, padding, count


def _stride1_output_size(x_NHWC, kernel_HWIO, padding) -> tuple[int, int]:
  """(H_out, W_out) of the stride-1 conv with `padding` as ((low_h, high_h), (low_w, high_w))."""
  return tuple(x_NHWC.shape[1 + axis] + sum(padding[axis]) - kernel_HWIO.shape[axis] + 1 for axis in range(2))


def _output_block(x_NHWC, kernel_HWIO, padding) -> int:
  """The block size of `_conv_stride1_blocked` for this conv, or 0 where XLA's conv is used."""
  k_h, k_w, _, c_out = kernel_HWIO.shape
  if c_out > OUTPUT_BLOCK_MAX_CHANNELS or k_h * k_w < OUTPUT_BLOCK_MIN_TAPS or min(sum(padding, ())) < 0:
    return 0
  out_h, out_w = _stride1_output_size(x_NHWC, kernel_HWIO, padding)
  return next((block for block in (4, 2) if out_h % block == 0 and out_w % block == 0), 0)


def _conv_stride1_blocked(x_NHWC, kernel_HWIO, padding, precision, block: int):
  """The stride-1 conv as a stride-1 conv between block x block pixel blocks (`_output_block`)."""
  n, h, w, c_in = x_NHWC.shape
  k_h, k_w, _, c_out = kernel_HWIO.shape
  taps_h, pad_h, count_h = _block_taps(k_h, padding[0][0], block)
  taps_w, pad_w, count_w = _block_taps(k_w, padding[1][0], block)
  blocks_h, blocks_w = (size // block for size in _stride1_output_size(x_NHWC, kernel_HWIO, padding))
  # Blocked kernel (d_h, d_w, (t_h, t_w, c_in), (r_h, r_w, c_out)): a gather of the taps, zero where none.
  kernel = jnp.einsum("dtra,eusb,abio->detuirso", taps_h, taps_w, kernel_HWIO, precision=lax.Precision.HIGHEST)
  kernel = kernel.reshape(count_h, count_w, block * block * c_in, block * block * c_out)
  padded_h, padded_w = (blocks_h + count_h - 1) * block, (blocks_w + count_w - 1) * block
  x = lax.pad(x_NHWC, jnp.zeros((), x_NHWC.dtype),
              ((0, 0, 0), (pad_h, padded_h - h - pad_h, 0), (pad_w, padded_w - w - pad_w, 0), (0, 0, 0)))
  x = x.reshape(n, padded_h // block, block, padded_w // block, block, c_in).transpose(0, 1, 3, 2, 4, 5)
  y = lax.conv_general_dilated(x.reshape(n, padded_h // block, padded_w // block, block * block * c_in),
                               kernel.astype(x.dtype), (1, 1), "VALID", dimension_numbers=_NHWC,
                               precision=precision)
  y = y.reshape(n, blocks_h, blocks_w, block, block, c_out).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(n, blocks_h * block, blocks_w * block, c_out)


# Input blocking: a stride-1 conv with few input channels and a large kernel (SRGAN's first layer, 9x9, 3 -> 32
# channels at 12x12, and its last layer's input gradient, 9x9, 3 -> 32 at 48x48) as the conv between 2x2 pixel
# blocks: XLA:CPU's conv contracts 3 channels per tap, a matmul with K = 3; blocked by 2 it is a 5x5-tap conv from
# 12 to 128 channels (1.23x the multiplications). One core's CPU time, batch 16, loaded machine: the input gradient
# 20.6 -> 11.5 ms (PyTorch's channels_last conv 9.8), the first layer's forward 1.96 -> 0.86 ms (PyTorch 0.56). Not
# by 4 (22.6 ms: 1.78x the multiplications) nor for the kernel gradient (the first layer's: 0.75 ms either way).
INPUT_BLOCK_MAX_CHANNELS = 4
INPUT_BLOCK_MIN_TAPS = 81


def _input_block(x_NHWC, kernel_HWIO, padding) -> int:
  """The block size of `_conv_stride1_blocked` for a conv with few input channels, or 0 for XLA's conv."""
  k_h, k_w, c_in, _ = kernel_HWIO.shape
  if c_in > INPUT_BLOCK_MAX_CHANNELS or k_h * k_w < INPUT_BLOCK_MIN_TAPS or min(sum(padding, ())) < 0:
    return 0
  out_h, out_w = _stride1_output_size(x_NHWC, kernel_HWIO, padding)
  return 2 if out_h % 2 == 0 and out_w % 2 == 0 else 0


def _conv_stride1_input_side(x_NHWC, kernel_HWIO, padding, precision):
  """The stride-1 conv blocked by `_input_block` where that applies, else `_conv_stride1_plain`."""
  block = _input_block(x_NHWC, kernel_HWIO, padding)
  if block:
    return _conv_stride1_blocked(x_NHWC, kernel_HWIO, padding, precision, block)
  return _conv_stride1_plain(x_NHWC, kernel_HWIO, padding, precision)


# The input gradient of a stride-1 conv from few channels with a small kernel (SRGAN's D's first layer, 3x3, 3 -> 32
# channels at 48x48) is a conv to those few channels, a skinny matmul per tap in XLA:CPU's conv; as tap sums
# (`_conv_tap_sums`: one matmul to 9 * 3 columns, then 9 shifted adds) 10.2 -> 5.0 ms (one core's CPU time, batch
# 16, loaded machine; PyTorch's channels_last conv 5.7).
INPUT_GRAD_TAP_SUMS_MAX_CHANNELS = 4


def _input_grad_tap_sums_apply(y_grad, grad_kernel_HWIO, padding) -> bool:
  k_h, k_w, _, c_out = grad_kernel_HWIO.shape
  return (c_out <= INPUT_GRAD_TAP_SUMS_MAX_CHANNELS and 1 < k_h * k_w <= TAP_SUMS_MAX_TAPS
          and min(sum(padding, ())) >= 0 and y_grad.shape[1] >= k_h and y_grad.shape[2] >= k_w)


# A stride-1 conv from few channels with a small kernel (SRGAN's D's first layer, 3x3, 3 -> 32 channels at 48x48,
# run three times per step): XLA:CPU's conv contracts 3 channels per tap. As one matmul over the taps' columns
# (27 here), built channel-major so that each column is a contiguous shifted copy of one input plane: 4.1 -> 3.2 ms
# (one core's CPU time, batch 16, loaded machine; PyTorch's channels_last conv 1.1, XLA's NHWC im2col 4.0). The
# forward only; the gradients keep their forms.
PLANAR_IM2COL_MAX_CHANNELS = 4


def _planar_im2col_applies(x_NHWC, kernel_HWIO, padding) -> bool:
  k_h, k_w, c_in, _ = kernel_HWIO.shape
  return (c_in <= PLANAR_IM2COL_MAX_CHANNELS and 1 < k_h * k_w <= TAP_SUMS_MAX_TAPS and min(sum(padding, ())) >= 0
          and x_NHWC.shape[1] >= k_h and x_NHWC.shape[2] >= k_w)


def _conv_stride1_planar_im2col(x_NHWC, kernel_HWIO, padding, precision):
  """The stride-1 conv as (taps * C_in, N, H', W') columns contracted with the kernel's rows in one matmul."""
  k_h, k_w, c_in, c_out = kernel_HWIO.shape
  x = jnp.pad(x_NHWC, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0))).transpose(3, 0, 1, 2)
  out_h, out_w = x.shape[2] - k_h + 1, x.shape[3] - k_w + 1
  cols = jnp.concatenate([x[:, :, a:a + out_h, b:b + out_w] for a in range(k_h) for b in range(k_w)], axis=0)
  return lax.dot_general(cols, kernel_HWIO.reshape(k_h * k_w * c_in, c_out).astype(cols.dtype),
                         (((0,), (0,)), ((), ())), precision=precision)


def _conv_stride1_forward(x_NHWC, kernel_HWIO, padding, precision):
  block = _output_block(x_NHWC, kernel_HWIO, padding)
  if block:
    return _conv_stride1_blocked(x_NHWC, kernel_HWIO, padding, precision, block)
  if _planar_im2col_applies(x_NHWC, kernel_HWIO, padding):
    return _conv_stride1_planar_im2col(x_NHWC, kernel_HWIO, padding, precision)
  return _conv_stride1_input_side(x_NHWC, kernel_HWIO, padding, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_stride1(x_NHWC: Array, kernel_HWIO: Array, padding: tuple[tuple[int, int], tuple[int, int]],
                 precision: Optional[lax.Precision] = None) -> Array:
  """Stride-1 NHWC/HWIO convolution (cross-correlation) whose input gradient is fast on XLA:CPU.

  Forward and input gradient are each a stride-1 conv in `_conv_stride1_plain`'s form (XLA's own, or a
  matmul where the kernel exceeds the map), the forward blocked where it has few output channels and a large
  kernel (`_output_block`), forward and input gradient blocked by 2 where they have few input channels and a
  large kernel (`_input_block`); the kernel gradient is XLA's own, of the forward's form (the plain one for
  input blocking).
  `padding` is ((low_h, high_h), (low_w, high_w)); negative values crop.
  """
  return _conv_stride1_forward(x_NHWC, kernel_HWIO, padding, precision)


def _conv_stride1_fwd(x_NHWC, kernel_HWIO, padding, precision):
  return _conv_stride1_forward(x_NHWC, kernel_HWIO, padding, precision), (x_NHWC, kernel_HWIO)


def _conv_stride1_bwd(padding, precision, residuals, y_grad):
  x_NHWC, kernel_HWIO = residuals
  # The input gradient is the stride-1 conv of y_grad with the flipped, transposed kernel and the
  # complementary padding, so it takes the same fast form as a forward conv: XLA's own gradient keeps the
  # kernel even where it exceeds y_grad's map (pix2pix's PatchGAN, 4x4 kernel on a 3x3 map: 38 ms vs 1.7 ms).
  t_h, t_w = kernel_HWIO.shape[:2]
  grad_kernel = kernel_HWIO[::-1, ::-1].transpose(0, 1, 3, 2)
  grad_padding = ((t_h - 1 - padding[0][0], x_NHWC.shape[1] - y_grad.shape[1] + padding[0][0]),
                  (t_w - 1 - padding[1][0], x_NHWC.shape[2] - y_grad.shape[2] + padding[1][0]))
  if _input_grad_tap_sums_apply(y_grad, grad_kernel, grad_padding):
    x_grad = _conv_tap_sums(y_grad, grad_kernel, grad_padding, precision)
  else:
    x_grad = _conv_stride1_input_side(y_grad, grad_kernel, grad_padding, precision)
  return x_grad, _conv_stride1_kernel_grad(x_NHWC, y_grad, kernel_HWIO, padding, precision)


def _conv_stride1_kernel_grad(x_NHWC, y_grad, kernel_HWIO, padding, precision):
  """XLA's kernel gradient of the forward's form: the plain conv's, or the blocked conv's (`_output_block`).

  XLA's kernel gradient of a plain conv with few output channels and a large kernel is as skinny a matmul as
  its forward (SRGAN's last layer, 9x9, 32 -> 3 channels at 48x48, batch 16: 81 * 32 outputs per 3-column
  row); through the blocked forward it is a 3x3-tap kernel gradient from 16 * 32 to 16 * 3 channels, then the
  taps' gather transposed (a sum): 15.0 against 56.3 ms (one core's CPU time, loaded machine). The input
  gradient (3 -> 32 channels, which XLA's conv runs well) through the blocked form was no faster (28.5 ms for
  both gradients against 28.0).
  """
  # XLA's kernel gradient (a matmul for a matmul-form forward). A hand-made matmul over the taps' shifted
  # copies was faster under an older XLA; under xla_cpu_compiler_options it was 1.4-7x slower at SRGAN's and
  # CycleGAN's layers (3x3, 64 channels, 24x24, batch 16: 22 ms vs 4.4 ms). The kernel itself as the vjp
  # point: see _strided_conv_kernel_grad.
  block = _output_block(x_NHWC, kernel_HWIO, padding)
  if block:
    form = lambda k: _conv_stride1_blocked(x_NHWC, k, padding, precision, block)
  else:
    form = lambda k: _conv_stride1_plain(x_NHWC, k, padding, precision)
  _, kernel_vjp = jax.vjp(form, kernel_HWIO.astype(y_grad.dtype))
  return kernel_vjp(y_grad)[0].astype(kernel_HWIO.dtype)


conv_stride1.defvjp(_conv_stride1_fwd, _conv_stride1_bwd)


def _subpixel_kernel(kernel_HWIO: Array, plan_h: _AxisPlan, plan_w: _AxisPlan) -> Array:
  """(kH, kW, C_in, C_out) -> (taps_h, taps_w, C_in, s_h*s_w*C_out), output channels ordered (r_h, r_w, c)."""
  k_h, k_w, c_in, c_out = kernel_HWIO.shape
  t_h, s_h, t_w, s_w = plan_h.taps, plan_h.stride, plan_w.taps, plan_w.stride
  padded = jnp.pad(kernel_HWIO, ((0, t_h * s_h - k_h), (0, t_w * s_w - k_w), (0, 0), (0, 0)))
  # Kernel index a = m*s + r; tap t = taps-1-m reads the input at offset -m.
  blocks = padded.reshape(t_h, s_h, t_w, s_w, c_in, c_out)[::-1, :, ::-1]
  return blocks.transpose(0, 2, 4, 1, 3, 5).reshape(t_h, t_w, c_in, s_h * s_w * c_out)


def _aligned_plan(size: int, kernel: int, stride: int, padding: int, output_padding: int) -> tuple[int, _AxisPlan]:
  """(lead, plan): the axis plan of the same transposed conv with `lead` zero taps put before the kernel, chosen so
  that the crop starts on a block boundary without adding a tap (0 and the plain plan where none does).

  A crop that starts inside a block (padding not a multiple of the stride) costs a whole extra block row: SpecGAN's
  5x5 stride-2 "same" layers (crop 1) computed 9x5 blocks for an 8x4 map, 1.41x the output. The zero tap shifts
  the full output by `lead`, so cropping `lead` more gives the same result; with 5 taps padded to 6 the zero
  was there anyway (3 taps per phase either way).
  """
  lead = -padding % stride
  if lead and -(-(kernel + lead) // stride) == -(-kernel // stride):
    return lead, _AxisPlan(size, kernel + lead, stride, padding + lead, output_padding + lead)
  return 0, _AxisPlan(size, kernel, stride, padding, output_padding)


def _conv_transpose_subpixel(x_NHWC: Array, kernel_HWIO: Array, strides: tuple[int, int],
                             padding: tuple[int, int], output_padding: tuple[int, int],
                             precision: Optional[lax.Precision]) -> Array:
  """The transposed conv as one stride-1 conv to s_h*s_w*C_out channels + depth-to-space + crop.

  Differentiable on its own (through `conv_stride1`), which `conv_transpose`'s
  custom gradient does not rely on.
  """
  (s_h, s_w), (p_h, p_w), (op_h, op_w) = strides, padding, output_padding
  n, h, w, c_in = x_NHWC.shape
  k_h, k_w, _, c_out = kernel_HWIO.shape
  plan_h = _AxisPlan(h, k_h, s_h, p_h, op_h)
  plan_w = _AxisPlan(w, k_w, s_w, p_w, op_w)

  if _col2im_applies(x_NHWC, c_out, plan_h, plan_w):  # no conv over a mostly-zero padded input, or to 4 channels
    return _conv_transpose_col2im(x_NHWC, kernel_HWIO, strides, padding, output_padding, precision)
  if k_h * k_w >= LARGE_KERNEL_TAPS:
    (lead_h, plan_h), (lead_w, plan_w) = (_aligned_plan(h, k_h, s_h, p_h, op_h),
                                          _aligned_plan(w, k_w, s_w, p_w, op_w))
    kernel_HWIO = jnp.pad(kernel_HWIO, ((lead_h, 0), (lead_w, 0), (0, 0), (0, 0)))

  # Negative padding (padding larger than the kernel reach) is a crop of the input.
  x = x_NHWC
  if min(plan_h.pad_low, plan_h.pad_high, plan_w.pad_low, plan_w.pad_high) < 0:
    x = lax.pad(x, jnp.zeros((), x.dtype),
                ((0, 0, 0), (min(plan_h.pad_low, 0), min(plan_h.pad_high, 0), 0),
                 (min(plan_w.pad_low, 0), min(plan_w.pad_high, 0), 0), (0, 0, 0)))
  conv_padding = ((max(plan_h.pad_low, 0), max(plan_h.pad_high, 0)),
                  (max(plan_w.pad_low, 0), max(plan_w.pad_high, 0)))
  y = conv_stride1(x, _subpixel_kernel(kernel_HWIO, plan_h, plan_w), conv_padding, precision)
  # Depth to space: channel (r_h, r_w, c) of block (q_h, q_w) is pixel (q_h*s_h + r_h, q_w*s_w + r_w).
  q_h, q_w = plan_h.num_blocks, plan_w.num_blocks
  y = y.reshape(n, q_h, q_w, s_h, s_w, c_out).transpose(0, 1, 3, 2, 4, 5)
  y = y.reshape(n, q_h * s_h, q_w * s_w, c_out)
  return y[:, plan_h.crop_start:plan_h.crop_start + plan_h.out_size,
           plan_w.crop_start:plan_w.crop_start + plan_w.out_size]


def conv_transpose_reference(x_NHWC: Array, kernel_HWIO: Array, strides: IntPair = 1,
                             padding: IntPair = 0, output_padding: IntPair = 0,
                             precision: Optional[lax.Precision] = None) -> Array:
  """The same operator through `lax.conv_transpose` (XLA's input-dilated conv); slow on CPU."""
  s_h, s_w = _pair(strides, "strides")
  p_h, p_w = _pair(padding, "padding")
  op_h, op_w = _pair(output_padding, "output_padding")
  k_h, k_w = kernel_HWIO.shape[:2]
  return lax.conv_transpose(
      x_NHWC, kernel_HWIO[::-1, ::-1], (s_h, s_w),
      ((k_h - 1 - p_h, k_h - 1 - p_h + op_h), (k_w - 1 - p_w, k_w - 1 - p_w + op_w)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)


def _check_channels(x_NHWC: Array, kernel_HWIO: Array) -> None:
  if kernel_HWIO.ndim != 4 or x_NHWC.ndim != 4:
    raise ValueError(f"expected NHWC input and (kH, kW, C_in, C_out) kernel, got shapes "
                     f"{x_NHWC.shape} and {kernel_HWIO.shape}")
  if kernel_HWIO.shape[2] != x_NHWC.shape[3]:
    raise ValueError(f"kernel expects {kernel_HWIO.shape[2]} input channels, input has {x_NHWC.shape[3]}")


def _padding_pairs(padding) -> tuple[tuple[int, int], tuple[int, int]]:
  """Per-axis padding as (low, high) pairs; an int p is (p, p)."""
  return tuple((int(p), int(p)) if np.ndim(p) == 0 else tuple(p) for p in padding)


def _strided_conv_xla(x_NHWC, kernel_HWIO, strides, padding, precision):
  return lax.conv_general_dilated(x_NHWC, kernel_HWIO, strides, _padding_pairs(padding),
                                  dimension_numbers=_NHWC, precision=precision)


def _strided_conv_kernel_grad(x_NHWC, y_grad, kernel_HWIO, strides, padding, precision):
  """Kernel gradient of the strided conv y = conv(x, kernel): XLA's own (an undilated-input conv).

  The conv is linear in the kernel, so the point of the vjp does not matter; it is the kernel itself
  because under vmap (vectorised sweeps) an unbatched zero kernel beside a batched x hits a JAX batching
  rule that builds an invalid grouped convolution.
  """
  _, kernel_vjp = jax.vjp(lambda k: _strided_conv_xla(x_NHWC, k, strides, padding, precision),
                          kernel_HWIO.astype(y_grad.dtype))
  return kernel_vjp(y_grad)[0]


# conv_transpose and conv are each other's adjoints: the input gradient of one
# is the forward of the other, with the same kernel (input and output channels
# swapped). Both are given custom gradients built from the two fast forward
# forms, so no gradient ever goes through an input-dilated conv, which
# XLA:CPU runs slowly (lax.conv_transpose's forward has one, and so does
# XLA's input gradient of a strided conv).


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv_transpose(x_NHWC, kernel_HWIO, strides, padding, output_padding, precision):
  return _conv_transpose_subpixel(x_NHWC, kernel_HWIO, strides, padding, output_padding, precision)


def _conv_transpose_fwd(x_NHWC, kernel_HWIO, strides, padding, output_padding, precision):
  y = _conv_transpose(x_NHWC, kernel_HWIO, strides, padding, output_padding, precision)
  return y, (x_NHWC, kernel_HWIO)


def _conv_transpose_bwd(strides, padding, output_padding, precision, residuals, y_grad):
  x_NHWC, kernel_HWIO = residuals
  kernel_as_conv = kernel_HWIO.transpose(0, 1, 3, 2)  # the conv from C_out back to C_in
  # A negative output_padding cropped rows off the high side: the conv pads them back as zeros.
  conv_padding = tuple((p, p + max(-op, 0)) for p, op in zip(padding, output_padding))
  if _space_to_depth_applies(y_grad, kernel_as_conv, strides, conv_padding) and x_NHWC.shape[1:3] == (
      y_grad.shape[1] // 2, y_grad.shape[2] // 2):
    x_grad, kernel_vjp = jax.vjp(lambda k: _space_to_depth_conv(y_grad, k, precision), kernel_as_conv)
    return x_grad, kernel_vjp(x_NHWC)[0].transpose(0, 1, 3, 2).astype(kernel_HWIO.dtype)
  x_grad = _conv(y_grad, kernel_as_conv, strides, conv_padding, precision)
  # The strided conv may reach fewer rows than x has only when output_padding >= stride.
  x_grad = x_grad[:, :x_NHWC.shape[1], :x_NHWC.shape[2]]
  kernel_grad = _strided_conv_kernel_grad(y_grad, x_NHWC, kernel_as_conv, strides, conv_padding, precision)
  return x_grad, kernel_grad.transpose(0, 1, 3, 2).astype(kernel_HWIO.dtype)


_conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x_NHWC, kernel_HWIO, strides, padding, precision):
  return _strided_conv_xla(x_NHWC, kernel_HWIO, strides, padding, precision)


def _conv_fwd(x_NHWC, kernel_HWIO, strides, padding, precision):
  return _conv(x_NHWC, kernel_HWIO, strides, padding, precision), (x_NHWC, kernel_HWIO)


# The input gradient of a 3x3 stride-2 padding-1 conv (SRGAN's D, CycleGAN's downsampling) as `_conv_im2col`'s
# adjoint: one matmul of y_grad with the transposed kernel to the 9 taps' columns, then their strided sum (pads
# with interior zeros, added in one fusion). Its multiplications are exact, where the sub-pixel transposed conv's
# 2x2 taps to 4 phases hold 7 structural zeros in 16 and its border blocks more (4x the work at 3x3 -> 6x6).
# SRGAN's D layers at batch 16 (input gradient alone, one core's CPU time, loaded machine), sub-pixel -> this:
# 48x48 32 -> 32 channels 4.17 -> 3.23 ms, 24x24 64 -> 64 4.11 -> 2.68, 12x12 128 -> 128 4.46 -> 2.17, 6x6
# 256 -> 256 6.62 -> 2.21 (XLA's own input-dilated gradient: 4.52, 2.55, 2.30, 2.97). CycleGAN at batch 1:
# 128x128 128 -> 256 43.2 -> 28.5, but 256x256 64 -> 128 45.9 -> 52.9, whose 9.4M-float columns no longer fit
# this machine's 32 MB L3: hence the size limit on the columns (N * H_out * W_out * 9 * C_in elements).
IM2COL_INPUT_GRAD_MAX_COLUMNS = 6_000_000


def _im2col_input_grad_applies(x_NHWC, kernel_HWIO, y_grad, strides, padding) -> bool:
  return (tuple(kernel_HWIO.shape[:2]) == (3, 3) and tuple(strides) == (2, 2)
          and tuple(map(tuple, _padding_pairs(padding))) == ((1, 1), (1, 1)) and math.prod(y_grad.shape[:3]) * 9 * x_NHWC.shape[3] <= IM2COL_INPUT_GRAD_MAX_COLUMNS)


def _conv_bwd(strides, padding, precision, residuals, y_grad):
  x_NHWC, kernel_HWIO = residuals
  if _im2col_input_grad_applies(x_NHWC, kernel_HWIO, y_grad, strides, padding):
    _, x_vjp = jax.vjp(lambda x: _conv_im2col(x, kernel_HWIO.astype(x.dtype), strides, padding, precision), x_NHWC)
    x_grad, = x_vjp(y_grad.astype(x_NHWC.dtype))
  else:
    # output_padding restores x's size: rows of x past the last window get no gradient (positive), a high padding
    # larger than the low one crops the transposed conv's output (negative).
    lows = tuple(low for low, _ in _padding_pairs(padding))
    output_padding = tuple(size - (out - 1) * s + 2 * low - k for size, out, low, k, s in
                           zip(x_NHWC.shape[1:3], y_grad.shape[1:3], lows, kernel_HWIO.shape[:2], strides))
    x_grad = _conv_transpose(y_grad, kernel_HWIO.transpose(0, 1, 3, 2), strides, lows, output_padding,
                             precision)
  kernel_grad = _strided_conv_kernel_grad(x_NHWC, y_grad, kernel_HWIO, strides, padding, precision)
  return x_grad, kernel_grad.astype(kernel_HWIO.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def _conv_transpose_col2im(x_NHWC, kernel_HWIO, strides, padding, output_padding, precision):
  """The scatter form itself: one matmul of every input pixel with every tap, then the taps' shifted sum.

  For input maps smaller than the sub-pixel kernel, where the sub-pixel form computes blocks and taps that
  the crop throws away (SpecGAN-at-8-kHz's 4x2 -> 8x4 layers, kernel 5, stride 2: 2.7x the multiplications
  of this form), and for a single input pixel (DCGAN's z -> 4x4), where the sum is a reshape.
  """
  return _conv_transpose_col2im_ihwo(x_NHWC, kernel_HWIO.transpose(2, 0, 1, 3), strides, padding, output_padding,
                                     precision)


def _conv_transpose_col2im_ihwo(x_NHWC, kernel_IHWO, strides, padding, output_padding, precision):
  """`_conv_transpose_col2im` with the kernel laid out (C_in, kH, kW, C_out): its matmul's own layout."""
  n, h, w, c_in = x_NHWC.shape
  _, k_h, k_w, c_out = kernel_IHWO.shape
  (s_h, s_w), (p_h, p_w), (op_h, op_w) = strides, padding, output_padding
  cols = jnp.dot(x_NHWC.reshape(n * h * w, c_in), kernel_IHWO.reshape(c_in, -1),
                 precision=precision).reshape(n, h, w, k_h, k_w, c_out)
  if h == w == 1:
    y = cols.reshape(n, k_h, k_w, c_out)
  else:
    # Tap a = m*s + r of input pixel i lands on output (i + m)*s + r: phase r of block i + m. So each phase's
    # blocks are the sum of the taps' block maps shifted by m, and depth-to-space interleaves the phases
    # (adds on the blocks: s_h*s_w times fewer than shifting the taps over the full output).
    t_h, t_w = -(-k_h // s_h), -(-k_w // s_w)
    cols = jnp.pad(cols, ((0, 0),) * 3 + ((0, t_h * s_h - k_h), (0, t_w * s_w - k_w), (0, 0)))
    cols = cols.reshape(n, h, w, t_h, s_h, t_w, s_w, c_out)
    zero = jnp.zeros((), cols.dtype)
    blocks = sum(lax.pad(cols[:, :, :, m_h, :, m_w], zero, ((0, 0, 0), (m_h, t_h - 1 - m_h, 0),
                                                             (m_w, t_w - 1 - m_w, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0)))
                 for m_h in range(t_h) for m_w in range(t_w))  # (n, h + t_h - 1, w + t_w - 1, s_h, s_w, c_out)
    q_h, q_w = blocks.shape[1:3]
    y = blocks.transpose(0, 1, 3, 2, 4, 5).reshape(n, q_h * s_h, q_w * s_w, c_out)
    y = y[:, :(h - 1) * s_h + k_h, :(w - 1) * s_w + k_w]  # the uncropped scatter output
  return lax.pad(y, jnp.zeros((), y.dtype), ((0, 0, 0), (-p_h, op_h - p_h, 0), (-p_w, op_w - p_w, 0), (0, 0, 0)))


# The two dispatches below were measured on SpecGAN's 5x5 and WaveGAN's 1x25 kernels only; smaller kernels
# (DCGAN's and pix2pix's 4x4, SRGAN's 3x3) keep their forms until measured.
LARGE_KERNEL_TAPS = 25

# The sub-pixel conv's output channels (s_h * s_w * C_out) at or below which col2im wins (large kernels).
# XLA:CPU's conv to so few channels runs at a few GFLOP/s, while col2im's matmul to the taps (K = C_in) and its
# shifted sums stream the data once. The single-channel outputs of SpecGAN's G and of its D's first-conv input gradient
# (5x5, stride 2: 4 channels), forward and as an input gradient, loaded machine: 64x32x16 -> 128x64x1 at
# batch 64 44 -> 27 ms and 60 -> 27 ms; 64x64x64 -> 128x128x1 at batch 16 82 -> 25 ms and 78 -> 20 ms.
# WaveGAN's (1D, kernel 25, stride 4, 4096x64 -> 16384x1, batch 64): 255 -> 195 ms and 246 -> 163 ms. At 16
# output channels (SpecGAN's 32x16x32 -> 64x32x16, 64 sub-pixel channels) col2im lost 3.5x.
COL2IM_MAX_SUBPIXEL_CHANNELS = 4


def _col2im_applies(x_NHWC: Array, c_out: int, plan_h: _AxisPlan, plan_w: _AxisPlan) -> bool:
  # Where the sub-pixel kernel exceeds the input map, its stride-1 conv is a matmul anyway (see
  # `_conv_stride1_plain`), over more blocks and taps than the output needs.
  h, w = x_NHWC.shape[1:3]
  few_channels = (plan_h.kernel * plan_w.kernel >= LARGE_KERNEL_TAPS
                  and plan_h.stride * plan_w.stride * c_out <= COL2IM_MAX_SUBPIXEL_CHANNELS)
  return (h, w) == (1, 1) or plan_h.taps > h or plan_w.taps > w or few_channels


# The 4x4 stride-2 padding-1 conv of DCGAN-like networks is, after a space-to-depth of its padded input, a
# 2x2-tap stride-1 conv over 4x the channels; Winograd's F(4, 2) (gans/winograd.py) does that with 2.56x fewer
# multiplications, forward and backward. The transposed conv is its adjoint. The transforms cost memory
# traffic in proportion to the channels, the saving grows with their product, so narrow layers lose. Whole
# DCGAN training steps, Winograd against the direct forms in one process (batch 64): at 64x64, thresholds of
# 16 / 64 / 128 channels gave 1.26x / 1.24x / 1.27x; dcgan_digits (32x32, widths 32-128) ran 0.85x / 0.96x
# with 16 / 64 (at 128 none of its layers qualify). CPU only: on GPUs and TPUs the vendor libraries' own
# convolutions are the fast form.
WINOGRAD_MIN_CHANNELS = 128
# The kernel's transform costs in proportion to C_in * C_out whatever the batch, so a small tile grid (the
# conv's output, the transposed conv's input: N * H * W pixels) does not pay it back. pix2pix at 256x256,
# batch 1 (forward + gradients, Winograd vs direct): 16x16 -> 8x8 conv 512 -> 512 channels 57 vs 18 ms,
# 2x2 -> 4x4 transposed 1024 -> 512 149 vs 20 ms, 16x16 -> 32x32 transposed 1024 -> 256 90 vs 33 ms, but
# 64x64 -> 32x32 conv 128 -> 256 10 vs 24 ms and 32x32 -> 64x64 transposed 512 -> 128 20 vs 29 ms. DCGAN's
# Winograd layers at batch 64 have grids of 1,024 pixels or more.
WINOGRAD_MIN_GRID_PIXELS = 1024


def winograd_numerics_apply(x: Array, kernel: Array, precision) -> bool:
  """Whether any Winograd form may replace a direct conv of these operands: float32 on the CPU, no precision."""
  # An explicit `precision` asks for the direct convolution's rounding. float32 only: in bfloat16 the
  # transforms' extra roundings doubled the error of the direct bfloat16 conv (relative to a float32 one,
  # 128 channels: 0.0059 vs 0.0029 forward, 0.0070 vs 0.0029 transposed), and Winograd is a CPU speed-up
  # while bfloat16 pays where accelerators have bfloat16 units, whose own convolutions are the fast form.
  return (jax.default_backend() == "cpu" and precision is None and x.dtype == jnp.float32
          and kernel.dtype == jnp.float32)


def _winograd_applies(x_NHWC: Array, kernel_HWIO: Array, strides, padding, precision,
                      output_padding=(0, 0), transposed: bool = False) -> bool:
  return (winograd_numerics_apply(x_NHWC, kernel_HWIO, precision) and tuple(kernel_HWIO.shape[:2]) == (4, 4)
          and tuple(strides) == (2, 2) and tuple(padding) == (1, 1) and tuple(output_padding) == (0, 0)
          and min(kernel_HWIO.shape[2:]) >= WINOGRAD_MIN_CHANNELS
          and math.prod(x_NHWC.shape[:3]) // (1 if transposed else 4) >= WINOGRAD_MIN_GRID_PIXELS)


def _space_to_depth(x_NHWC: Array) -> Array:
  """(N, 2H, 2W, C) -> (N, H, W, 4C), channels ordered (row offset, column offset, c)."""
  n, h, w, c = x_NHWC.shape
  return x_NHWC.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // 2, w // 2, 4 * c)


def _depth_to_space(x_NHWC: Array) -> Array:
  """The inverse of `_space_to_depth`: (N, H, W, 4C) -> (N, 2H, 2W, C)."""
  n, h, w, c4 = x_NHWC.shape
  return x_NHWC.reshape(n, h, w, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, c4 // 4)


def _space_to_depth_kernel(kernel_HWIO: Array) -> Array:
  """A 4x4 kernel of a stride-2 conv -> the 2x2 kernel of the same conv after `_space_to_depth`: (2, 2, 4C, D)."""
  c, d = kernel_HWIO.shape[2:]
  return kernel_HWIO.reshape(2, 2, 2, 2, c, d).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, d)


def _winograd_conv(x_NHWC: Array, kernel_HWIO: Array) -> Array:
  """conv(x, kernel, strides=2, padding=1) for a 4x4 kernel and even H, W."""
  x = jnp.pad(x_NHWC, ((0, 0), (1, 1), (1, 1), (0, 0)))
  plan = winograd.plan_for(max(x_NHWC.shape[1:3]) // 2)
  return winograd.correlate(_space_to_depth(x), _space_to_depth_kernel(kernel_HWIO), plan)


def _winograd_conv_transpose(x_NHWC: Array, kernel_HWIO: Array) -> Array:
  """conv_transpose(x, kernel, strides=2, padding=1): the adjoint of `_winograd_conv` with the kernel's
  channels swapped (the full (2H+2)-pixel output of the space-to-depth form, cropped by the padding)."""
  y = winograd.correlate_transpose(x_NHWC, _space_to_depth_kernel(kernel_HWIO.transpose(0, 1, 3, 2)),
                                   winograd.plan_for(max(x_NHWC.shape[1:3])))
  return _depth_to_space(y)[:, 1:-1, 1:-1]


def conv_transpose(x_NHWC: Array, kernel_HWIO: Array, strides: IntPair = 1, padding: IntPair = 0,
                   output_padding: IntPair = 0, precision: Optional[lax.Precision] = None) -> Array:
  """Transposed 2D convolution with PyTorch semantics, fast forward and backward on XLA:CPU.

  Forward: sub-pixel form (one stride-1 conv + depth-to-space), or one matmul
  for a 1x1 input. Backward: the input gradient is the strided conv `conv`
  of the output gradient, the kernel gradient XLA's kernel gradient of that
  strided conv. On the CPU, kernel 4, stride 2, padding 1 and >=
  WINOGRAD_MIN_CHANNELS channels each side: Winograd F(4, 2), forward and backward.

  Args:
    x_NHWC: input, (N, H, W, C_in).
    kernel_HWIO: (kH, kW, C_in, C_out), the scatter-form kernel of the module docstring.
    strides: stride per spatial axis.
    padding: PyTorch's `padding`, cropped from both sides of the full output.
    output_padding: PyTorch's `output_padding`, extra rows/columns on the high side.
    precision: passed to the convolutions.
  Returns:
    (N, H_out, W_out, C_out) with H_out = (H-1)*s_h - 2*p_h + kH + output_padding_h.
  """
  strides, padding, output_padding = _transpose_arguments(strides, padding, output_padding)
  return _conv_transpose_any(x_NHWC, kernel_HWIO, strides, padding, output_padding, precision)


def _transpose_arguments(strides, padding, output_padding) -> tuple[tuple[int, int], ...]:
  """`conv_transpose`'s strides, padding and output_padding as checked pairs."""
  strides, padding = _pair(strides, "strides"), _pair(padding, "padding")
  output_padding = _pair(output_padding, "output_padding")
  if min(output_padding) < 0:
    raise ValueError(f"padding and output_padding must be >= 0, got {padding}, {output_padding}")
  return strides, padding, output_padding


def _check_transpose_shapes(x_NHWC, kernel_HWIO, strides, padding, output_padding) -> None:
  """Raises on mismatched channels or an empty output (kernel_HWIO may be a jax.ShapeDtypeStruct)."""
  _check_channels(x_NHWC, kernel_HWIO)
  for axis in range(2):
    _AxisPlan(x_NHWC.shape[1 + axis], kernel_HWIO.shape[axis], strides[axis], padding[axis], output_padding[axis])


def _conv_transpose_any(x_NHWC, kernel_HWIO, strides, padding, output_padding, precision):
  """`conv_transpose` after its argument checks; output_padding may be negative (a crop on the high side)."""
  _check_transpose_shapes(x_NHWC, kernel_HWIO, strides, padding, output_padding)
  if x_NHWC.shape[1:3] == (1, 1):  # one matmul, differentiated as such
    return _conv_transpose_col2im(x_NHWC, kernel_HWIO, strides, padding, output_padding, precision)
  if _winograd_applies(x_NHWC, kernel_HWIO, strides, padding, precision, output_padding, transposed=True):
    return _winograd_conv_transpose(x_NHWC, kernel_HWIO)
  return _conv_transpose(x_NHWC, kernel_HWIO, strides, padding, output_padding, precision)


# A transposed conv whose input has no more pixels (N * H * W) than input channels is kernel-bound: pix2pix's U-Net
# at 256x256, batch 1, from 2x2 -> 4x4 to 16x16 -> 32x32 at 1024 input channels, with 8-32 MB kernels. There the
# col2im form (one matmul of the input pixels with every tap, then the taps' shifted sum) wins if the kernel is
# stored (C_in, kH, kW, C_out) (`conv_transpose_ihwo`, `ConvTransposeIHWO`): its forward reads that as the
# (C_in, kH*kW*C_out) matrix it needs, its input gradient reads it transposed and its kernel gradient comes out in
# it, so no derivative copies the kernel into another layout (the sub-pixel forward, the strided-conv input
# gradient and XLA's kernel gradient each did, 50-135 ms per copy in the loaded step's profile). Forward + both
# gradients, batch 1, one core, loaded machine, current forms -> col2im on an IHWO kernel (-> col2im on an HWIO
# kernel, copies included; PyTorch 1 thread): 2x2 1024 -> 512 105 -> 23 (72; 91) ms, 4x4 1024 -> 512 129 -> 38
# (96; 118), 8x8 1024 -> 512 203 -> 90 (138; 220), 16x16 1024 -> 256 274 -> 144 (164; 256); but 32x32 512 -> 128
# 157 -> 220 and 64x64 256 -> 64 164 -> 234 (Winograd, sub-pixel). With the rule at N * H * W <= C_in,
# pix2pix_facades' step ran 1.177x, pix2pix_edges2fashion's (batch 32) 0.971x (its 4x4 -> 8x8 512 -> 128 at one
# pixel per channel took it; load ~12): hence at least 4 input channels per input pixel (facades' layers have 4+).
COL2IM_IHWO_MIN_CHANNELS_PER_PIXEL = 4


def conv_transpose_ihwo(x_NHWC: Array, kernel_IHWO: Array, strides: IntPair = 1, padding: IntPair = 0,
                        output_padding: IntPair = 0, precision: Optional[lax.Precision] = None) -> Array:
  """`conv_transpose` with the kernel stored (C_in, kH, kW, C_out) (= kernel_HWIO.transpose(2, 0, 1, 3)).

  Kernel-bound layers (C_in >= COL2IM_IHWO_MIN_CHANNELS_PER_PIXEL * N * H * W) take the col2im form on the kernel
  as stored, differentiated by JAX (matmuls and pads only); the others transpose it to (kH, kW, C_in, C_out) for
  `conv_transpose`'s forms.
  """
  if kernel_IHWO.ndim != 4:
    raise ValueError(f"expected a (C_in, kH, kW, C_out) kernel, got shape {kernel_IHWO.shape}")
  kernel_HWIO_shape = kernel_IHWO.shape[1:3] + kernel_IHWO.shape[:1] + kernel_IHWO.shape[3:]
  strides, padding, output_padding = _transpose_arguments(strides, padding, output_padding)
  _check_transpose_shapes(x_NHWC, jax.ShapeDtypeStruct(kernel_HWIO_shape, kernel_IHWO.dtype), strides, padding,
                          output_padding)
  if x_NHWC.shape[3] >= COL2IM_IHWO_MIN_CHANNELS_PER_PIXEL * math.prod(x_NHWC.shape[:3]):
    return _conv_transpose_col2im_ihwo(x_NHWC, kernel_IHWO, strides, padding, output_padding, precision)
  return _conv_transpose_any(x_NHWC, kernel_IHWO.transpose(1, 2, 0, 3), strides, padding, output_padding,
                             precision)


def conv(x_NHWC: Array, kernel_HWIO: Array, strides: IntPair = 1, padding: IntPair = 0,
         precision: Optional[lax.Precision] = None) -> Array:
  """2D convolution with PyTorch's Conv2d semantics (symmetric zero `padding`), fast backward on XLA:CPU.

  Forward: XLA's strided conv. Backward: the input gradient is
  `conv_transpose` of the output gradient (XLA's own needs an input-dilated
  conv, slow on XLA:CPU), the kernel gradient XLA's. Stride 1 uses
  `conv_stride1` (a matmul where the kernel exceeds the map). A large kernel (25 taps or more) with fewer
  output pixels than output channels: one matmul of the patches (`_conv_im2col`). A kernel that covers the
  whole padded input is one matmul (DCGAN's last 4x4 -> 1x1 layer). On the
  CPU, kernel 4, stride 2, padding 1, even H and W and >= WINOGRAD_MIN_CHANNELS
  channels each side: Winograd F(4, 2) after a space-to-depth, forward and backward.

  Args:
    x_NHWC: (N, H, W, C_in).
    kernel_HWIO: (kH, kW, C_in, C_out), as in flax.linen.Conv.
    strides: stride per spatial axis.
    padding: zeros added on both sides of each spatial axis.
    precision: passed to the convolutions.
  Returns:
    (N, (H + 2*p_h - kH)//s_h + 1, (W + 2*p_w - kW)//s_w + 1, C_out).
  """
  strides, padding = _pair(strides, "strides"), _pair(padding, "padding")
  if min(padding) < 0:
    raise ValueError(f"strides must be >= 1 and padding >= 0, got {strides} and {padding}")
  return _conv_padded(x_NHWC, kernel_HWIO, strides, _padding_pairs(padding), precision)


def _conv_padded(x_NHWC, kernel_HWIO, strides, padding, precision):
  """`conv` with `padding` as ((low_h, high_h), (low_w, high_w)), each >= 0 (`conv_same` pads unequally)."""
  if min(strides) < 1:
    raise ValueError(f"strides must be >= 1 and padding >= 0, got {strides} and {padding}")
  _check_channels(x_NHWC, kernel_HWIO)
  n, h, w, c_in = x_NHWC.shape
  k_h, k_w, _, c_out = kernel_HWIO.shape
  padded_h, padded_w = h + sum(padding[0]), w + sum(padding[1])
  out_h, out_w = (padded_h - k_h) // strides[0] + 1, (padded_w - k_w) // strides[1] + 1
  if out_h < 1 or out_w < 1:
    raise ValueError(f"conv output would be empty for input {h}x{w}, kernel {k_h}x{k_w}, padding {padding}")
  if (padded_h, padded_w) == (k_h, k_w):
    # One window: a matmul with the taps that meet the input (the rest meet zero padding). XLA:CPU's conv of
    # pix2pix's innermost 2x2 map padded to the 4x4 kernel, with its gradients: 4.7 ms; the matmul 1.1 ms
    # (batch 32, 256 channels).
    taps = kernel_HWIO[padding[0][0]:padding[0][0] + h, padding[1][0]:padding[1][0] + w]
    return jnp.dot(x_NHWC.reshape(n, -1), taps.reshape(-1, c_out), precision=precision).reshape(n, 1, 1, c_out)
  if strides == (1, 1) and _tap_sums_apply(x_NHWC, kernel_HWIO, precision):
    return _conv_tap_sums(x_NHWC, kernel_HWIO, padding, precision)
  if strides == (1, 1) and _winograd_3x3_applies(x_NHWC, kernel_HWIO, padding, precision):
    return winograd.correlate(x_NHWC, kernel_HWIO, winograd.F4_3)
  if strides == (1, 1):
    return conv_stride1(x_NHWC, kernel_HWIO, padding, precision)
  kernel_bound = n * out_h * out_w <= c_out * IM2COL_MAX_PIXELS_PER_CHANNEL
  if k_h * k_w >= LARGE_KERNEL_TAPS and kernel_bound:
    return _conv_im2col(x_NHWC, kernel_HWIO, strides, padding, precision)
  symmetric = tuple(low for low, high in padding if low == high)
  if (len(symmetric) == 2 and _winograd_applies(x_NHWC, kernel_HWIO, strides, symmetric, precision)
      and h % 2 == 0 and w % 2 == 0):
    return _winograd_conv(x_NHWC, kernel_HWIO)
  if k_h * k_w >= IM2COL_MIN_TAPS and kernel_bound:
    return _conv_im2col(x_NHWC, kernel_HWIO, strides, padding, precision)
  if _space_to_depth_applies(x_NHWC, kernel_HWIO, strides, padding):
    return _space_to_depth_conv(x_NHWC, kernel_HWIO, precision)
  return _conv(x_NHWC, kernel_HWIO, strides, padding, precision)


# A 4x4 stride-2 padding-1 conv is, after a space-to-depth of its padded input, a 2x2-tap stride-1 conv over 4x
# the channels (as for Winograd above, without the transforms). Where few channels meet large maps (pix2pix at
# 256x256, batch 1: 128x128x64 -> 64x64x128, 256x256x6 -> 128x128x64), XLA's kernel gradient of the strided
# conv (an rhs-dilated conv) runs at a few GFLOP/s; that of the stride-1 conv does not. Forward + both
# gradients, one core, loaded machine, XLA's strided forms -> this: 172 -> 29 ms, 78 -> 24 ms, 42 -> 18 ms
# (PyTorch 83, 64, 42 ms); pix2pix_facades' step 1.11x. Transposed convs take it for their gradients (the adjoint
# conv's). Per-example output maps of 64x64 or more only: DCGAN's 64x64 step at batch 64 (outputs 32x32 and 16x16,
# 64-128 channels) ran 0.98x with it (one A/B, load ~12), so its layers keep XLA's strided forms.
SPACE_TO_DEPTH_MIN_OUTPUT_PIXELS = 4096  # per example
SPACE_TO_DEPTH_MAX_CHANNELS = 64


def _space_to_depth_applies(x_NHWC: Array, kernel_HWIO: Array, strides, padding) -> bool:
  _, h, w, _ = x_NHWC.shape
  return (tuple(kernel_HWIO.shape[:2]) == (4, 4) and tuple(strides) == (2, 2)
          and tuple(map(tuple, padding)) == ((1, 1), (1, 1))
          and h % 2 == 0 and w % 2 == 0 and min(kernel_HWIO.shape[2:]) <= SPACE_TO_DEPTH_MAX_CHANNELS
          and (h // 2) * (w // 2) >= SPACE_TO_DEPTH_MIN_OUTPUT_PIXELS)


def _space_to_depth_conv(x_NHWC: Array, kernel_HWIO: Array, precision) -> Array:
  """conv(x, kernel, strides=2, padding=1) for a 4x4 kernel and even H, W, as a 2x2-tap stride-1 conv."""
  x = _space_to_depth(jnp.pad(x_NHWC, ((0, 0), (1, 1), (1, 1), (0, 0))))
  return conv_stride1(x, _space_to_depth_kernel(kernel_HWIO), ((0, 0), (0, 0)), precision)


# A strided conv with a large kernel whose output has no more pixels (N * H_out * W_out) than channels is
# kernel-bound: its patches are smaller than its kernel. Then `_conv_im2col` (patches @ kernel) wins, because it
# reads the kernel in its stored (kH, kW, C_in, C_out) layout in every derivative to any order (the forward's
# and the input gradient's matmuls take it as it is or transposed, the kernel gradient comes out in it), where
# the sub-pixel input gradient and XLA's kernel gradient each copy the kernel into another layout: a 52 MB
# transposing copy per use for SpecGAN's 8x8x512 -> 4x4x1024 at batch 16, used three times per D update with
# WGAN-GP's double backward. That step, im2col against the old forms interleaved in one process: 1.11x
# (loaded machine). Not at 2 pixels per channel: SpecGAN's digits step (8x4x128 -> 4x2x256, batch 64) 0.96x.
IM2COL_MAX_PIXELS_PER_CHANNEL = 1
# The same holds for pix2pix's 4x4 stride-2 convs at batch 1 on the U-Net's small, wide maps (32x32 -> 16x16 to
# 4x4 -> 2x2, 256-512 -> 512 channels: 256 output pixels or fewer), where XLA's conv and its gradients copy the
# 4 MB-16 MB kernel into other layouts. Forward + both gradients, one core, loaded machine, XLA's forms -> im2col:
# 46 -> 25, 36 -> 15, 25 -> 5, 48 -> 7 ms (PyTorch 40, 28, 17, 29 ms). After Winograd, which keeps its layers.
IM2COL_MIN_TAPS = 16


def _conv_tap_sums(x_NHWC: Array, kernel_HWIO: Array, padding, precision) -> Array:
  """A stride-1 conv to few channels as one matmul to the taps' outputs, then the taps' shifted sum (plain jnp
  ops, differentiated by JAX: the gradients are the shifts' pads and two more matmuls)."""
  k_h, k_w, c_in, c_out = kernel_HWIO.shape
  x = jnp.pad(x_NHWC, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  out_h, out_w = x.shape[1] - k_h + 1, x.shape[2] - k_w + 1
  # (N, H', W', kH * kW * C_out): tap (a, b)'s output channels at columns (a * kW + b) * C_out onwards.
  taps = jnp.dot(x, kernel_HWIO.transpose(2, 0, 1, 3).reshape(c_in, k_h * k_w * c_out), precision=precision)
  return sum(taps[:, a:a + out_h, b:b + out_w, (a * k_w + b) * c_out:(a * k_w + b + 1) * c_out]
             for a in range(k_h) for b in range(k_w))


# XLA:CPU's conv to one channel is a matrix-vector product per tap, and its kernel gradient a 1-channel
# "batch" conv, both slow. pix2pix's PatchGAN output layer (31x31x512 -> 30x30x1, 4x4), forward + both
# gradients, one core, loaded machine: XLA's 87 ms (PyTorch 29 ms) -> tap sums 12 ms. Kernels up to 16 taps
# (SRGAN's 9x9 -> RGB, 81 taps into 3 channels, was faster with XLA's conv).
TAP_SUMS_MAX_TAPS = 16


def _tap_sums_apply(x_NHWC: Array, kernel_HWIO: Array, precision) -> bool:
  k_h, k_w, _, c_out = kernel_HWIO.shape
  return c_out == 1 and 1 < k_h * k_w <= TAP_SUMS_MAX_TAPS and x_NHWC.shape[1] >= k_h and x_NHWC.shape[2] >= k_w


# CycleGAN's residual blocks (reflection-padded, so VALID 3x3 convs) at 256 channels on 64x64 maps hold most of
# its arithmetic; Winograd F(4, 3) does it with 4x fewer multiplications. Forward + both gradients, 66x66x256 ->
# 64x64x256, batch 1, one core, loaded machine: XLA's 379 ms, F(4, 3) 206 ms, F(2, 3) 299 ms (PyTorch 555 ms).
# Only VALID convs with 256 channels or more each side on at least 64x64 outputs: the one layer measured.
WINOGRAD_3X3_MIN_CHANNELS = 256
WINOGRAD_3X3_MIN_OUTPUT_PIXELS = 4096


def _winograd_3x3_applies(x_NHWC: Array, kernel_HWIO: Array, padding, precision) -> bool:
  n, h, w, _ = x_NHWC.shape
  return (winograd_numerics_apply(x_NHWC, kernel_HWIO, precision) and tuple(kernel_HWIO.shape[:2]) == (3, 3)
          and tuple(map(tuple, padding)) == ((0, 0), (0, 0)) and min(kernel_HWIO.shape[2:]) >= WINOGRAD_3X3_MIN_CHANNELS
          and (h - 2) % 4 == 0 and (w - 2) % 4 == 0 and n * (h - 2) * (w - 2) >= WINOGRAD_3X3_MIN_OUTPUT_PIXELS)


def _conv_im2col(x_NHWC: Array, kernel_HWIO: Array, strides, padding, precision) -> Array:
  """The strided conv as one matmul of its patches (taps ordered as the kernel's rows) with the kernel.

  Plain jnp operations, differentiated by JAX: the input gradient is the matmul with the transposed kernel and
  the patches' adjoint (strided pads and adds), the kernel gradient patches^T @ y_grad.
  """
  n, h, w, c_in = x_NHWC.shape
  k_h, k_w, _, c_out = kernel_HWIO.shape
  (s_h, s_w), (pad_h, pad_w) = strides, _padding_pairs(padding)
  out_h, out_w = (h + sum(pad_h) - k_h) // s_h + 1, (w + sum(pad_w) - k_w) // s_w + 1
  x = jnp.pad(x_NHWC, ((0, 0), pad_h, pad_w, (0, 0)))
  patches = jnp.concatenate([x[:, a:a + s_h * (out_h - 1) + 1:s_h, b:b + s_w * (out_w - 1) + 1:s_w]
                             for a in range(k_h) for b in range(k_w)], axis=-1)
  y = jnp.dot(patches.reshape(n * out_h * out_w, -1), kernel_HWIO.reshape(-1, c_out), precision=precision)
  return y.reshape(n, out_h, out_w, c_out)


def xla_cpu_compiler_options() -> dict:
  """Compiler options for `jax.jit(..., compiler_options=...)` that make these convs faster on XLA:CPU.

  XLA:CPU (jax 0.10) hands convolutions and matmuls to YNNPACK by default,
  and splits large reductions into trees of reduce-windows. For the strided
  convs and kernel gradients of DCGAN-like networks XLA's own Eigen
  convolutions are faster, and YNNPACK's reductions are faster than the
  reduce-window trees (BatchNorm statistics); benchmarks/conv_transpose.py
  measures both. This keeps YNNPACK for matmuls and reductions and sends
  convolutions to Eigen, for one jitted function only, without touching
  XLA_FLAGS. Empty on other backends, where the option means nothing.
  """
  if jax.default_backend() != "cpu":
    return {}
  return {"xla_cpu_experimental_ynn_fusion_type":
          "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


default_kernel_init = nn.initializers.lecun_normal()


class _Convolution(nn.Module):
  """The fields, parameters and bias shared by Conv and ConvTranspose; each defines `_convolve`.

  The parameter "kernel" has shape (kH, kW, C_in, C_out), "bias" (C_out,).
  """
  features: int  # output channels
  kernel_size: IntPair  # (kH, kW) or one int for both
  strides: IntPair = 1  # Conv: downsampling factor per spatial axis; ConvTranspose: upsampling factor
  padding: IntPair = 0  # Conv: zeros added on both sides; ConvTranspose: PyTorch's rows/columns cropped
  use_bias: bool = True  # adds a per-channel bias
  dtype: Optional[Any] = None  # computation dtype; None: inferred from the input and parameters
  param_dtype: Any = jnp.float32  # dtype of the stored parameters
  precision: Optional[lax.Precision] = None  # passed to the convolution
  kernel_init: Callable = default_kernel_init  # init of the (kH, kW, C_in, C_out) kernel
  bias_init: Callable = nn.initializers.zeros_init()  # init of the (C_out,) bias

  def _convolve(self, x_NHWC: Array, kernel: Array) -> Array:
    raise NotImplementedError

  @nn.compact
  def __call__(self, x_NHWC: Array) -> Array:
    kernel_size = _pair(self.kernel_size, "kernel_size")
    kernel = self.param("kernel", self.kernel_init, kernel_size + (x_NHWC.shape[-1], self.features),
                        self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
    x_NHWC, kernel, bias = nn.dtypes.promote_dtype(x_NHWC, kernel, bias, dtype=self.dtype)
    y = self._convolve(x_NHWC, kernel)
    return y if bias is None else y + bias


class ConvTranspose(_Convolution):
  """Transposed convolution with PyTorch ConvTranspose2d semantics, NHWC (see the module docstring).

  The kernel is in scatter form: `torch_conv_transpose_kernel_to_flax` converts a PyTorch weight to it.
  """
  output_padding: IntPair = 0  # PyTorch's `output_padding`: extra rows/columns on the high side

  def _convolve(self, x_NHWC: Array, kernel: Array) -> Array:
    return conv_transpose(x_NHWC, kernel, self.strides, self.padding, self.output_padding, self.precision)


class ConvTransposeIHWO(ConvTranspose):
  """`ConvTranspose` whose "kernel" parameter is stored (C_in, kH, kW, C_out): `conv_transpose_ihwo`.

  For layers whose fast form reads the kernel so (see COL2IM_IHWO_MIN_CHANNELS_PER_PIXEL). `kernel_init` draws the
  (kH, kW, C_in, C_out) kernel as for ConvTranspose (the same values from the same key), stored transposed. A
  PyTorch ConvTranspose2d weight (C_in, C_out, kH, kW) converts by `.transpose(0, 2, 3, 1)`.
  """

  @nn.compact
  def __call__(self, x_NHWC: Array) -> Array:
    k_h, k_w = _pair(self.kernel_size, "kernel_size")
    init = lambda key, shape, dtype: self.kernel_init(key, (k_h, k_w, shape[0], shape[3]), dtype).transpose(2, 0, 1, 3)
    kernel = self.param("kernel", init, (x_NHWC.shape[-1], k_h, k_w, self.features), self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
    x_NHWC, kernel, bias = nn.dtypes.promote_dtype(x_NHWC, kernel, bias, dtype=self.dtype)
    y = conv_transpose_ihwo(x_NHWC, kernel, self.strides, self.padding, self.output_padding, self.precision)
    return y if bias is None else y + bias


class Conv(_Convolution):
  """Convolution with PyTorch Conv2d semantics (symmetric zero padding), NHWC, fast backward on CPU.

  The kernel is laid out as in flax.linen.Conv; a PyTorch Conv2d weight (C_out, C_in, kH, kW) converts
  by `.transpose(2, 3, 1, 0)`.
  """

  def _convolve(self, x_NHWC: Array, kernel: Array) -> Array:
    return conv(x_NHWC, kernel, self.strides, self.padding, self.precision)


# ----------------------------------------------------------------------------- nearest 2x upsampling + conv

def upsample_nearest(x_NHWC: Array, factor: int = 2) -> Array:
  """Nearest upsampling (torch's nn.Upsample(mode='nearest')): every pixel becomes a factor x factor block."""
  return jnp.repeat(jnp.repeat(x_NHWC, factor, axis=1), factor, axis=2)


def downsample_box(x_NHWC: Array, factor: int = 2) -> Array:
  """The mean over factor x factor blocks (StyleGAN's and StackGAN's image pyramid)."""
  if factor == 1:
    return x_NHWC
  n, h, w, c = x_NHWC.shape
  return x_NHWC.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


# StackGAN's upBlock (and other generators) upsample by 2, nearest, then convolve (stride 1). Every output pixel of
# that conv reads each input pixel through one or two kernel taps that meet the same upsampled copy, so the pair is
# a stride-2 transposed conv of the input itself with a (k + 1)-tap kernel of summed taps: no upsampled
# intermediate, and the fast transposed-conv form above (sub-pixel forward, strided-conv input gradient, kernel
# gradient over the small input): 4 phases of 2x2 taps for a 3x3 kernel, 16 multiplications per input pixel and
# channel pair instead of 36. StackGAN-sized upBlocks at batch 64, upsampling + conv -> this form, in ms (loaded
# 2-core machine, load ~6: rough), forward: 4x4 -> 8x8 128 -> 64 channels 36 -> 24, 16x16 -> 32x32 32 -> 16
# 40 -> 16, 32x32 -> 64x64 16 -> 8 45 -> 24; input + kernel gradients: 97 -> 20, 255 -> 24, 183 -> 46
# (benchmarks/stackgan_layers.py times them against PyTorch).


def _nearest_upsample_fold(kernel_size: int) -> jax.Array:
  """(k + 1, k) 0/1 matrix: tap b of the transposed conv's kernel sums the conv's taps a in {k - 1 - b, k - b}."""
  fold = [[1.0 if a in (kernel_size - 1 - b, kernel_size - b) else 0.0 for a in range(kernel_size)]
          for b in range(kernel_size + 1)]
  return jnp.asarray(fold, jnp.float32)


def nearest_upsample_conv_kernel(kernel_HWIO: Array, padding: IntPair) -> tuple[Array, tuple[int, int]]:
  """(the (kH + 1, kW + 1) scatter-form kernel, the transposed conv's padding) with
  conv_transpose(x, kernel', 2, padding') == conv(upsample_nearest(x), kernel, 1, padding)."""
  (k_h, k_w), (p_h, p_w) = kernel_HWIO.shape[:2], _pair(padding, "padding")
  if not (0 <= p_h <= k_h - 1 and 0 <= p_w <= k_w - 1):
    raise ValueError(f"nearest_upsample_conv takes padding in [0, kernel - 1] per axis; got padding {(p_h, p_w)} for "
                     f"a {k_h}x{k_w} kernel (upsample and pad explicitly for more).")
  fold_h, fold_w = _nearest_upsample_fold(k_h), _nearest_upsample_fold(k_w)
  folded = jnp.einsum("ap,bq,pqio->abio", fold_h.astype(kernel_HWIO.dtype), fold_w.astype(kernel_HWIO.dtype),
                      kernel_HWIO)
  return folded, (k_h - 1 - p_h, k_w - 1 - p_w)


def nearest_upsample_conv(x_NHWC: Array, kernel_HWIO: Array, padding: IntPair = 0,
                          precision: Optional[lax.Precision] = None) -> Array:
  """conv(x upsampled 2x by nearest neighbour, kernel, stride 1, padding) without the upsampled intermediate.

  Output (N, 2H + 2p_h - kH + 1, 2W + 2p_w - kW + 1, C_out), PyTorch's nn.Upsample(scale_factor=2) followed by
  Conv2d(kernel, padding); equal to that pair up to float rounding (summed taps), values and gradients.
  """
  _check_channels(x_NHWC, kernel_HWIO)
  folded, transposed_padding = nearest_upsample_conv_kernel(kernel_HWIO, padding)
  return conv_transpose(x_NHWC, folded, 2, transposed_padding, 0, precision)


class NearestUpsampleConv(_Convolution):
  """Nearest 2x upsampling then a stride-1 conv (PyTorch Conv2d semantics, `strides` must stay 1), NHWC, as one
  transposed conv (`nearest_upsample_conv`). The parameter is the plain conv's kernel, laid out as in `Conv`."""

  def _convolve(self, x_NHWC: Array, kernel: Array) -> Array:
    if _pair(self.strides, "strides") != (1, 1):
      raise ValueError(f"NearestUpsampleConv convolves with stride 1 after upsampling; got strides {self.strides}.")
    return nearest_upsample_conv(x_NHWC, kernel, self.padding, self.precision)


# ----------------------------------------------------------------------------- TensorFlow's "same" padding, 1D

# WaveGAN and SpecGAN (Donahue et al. 2019) were written with TensorFlow's padding="same": a stride-s conv maps
# n samples to ceil(n / s), padding (k - s) // 2-ish zeros low and the rest high, and the transposed conv (its
# adjoint, tf.nn.conv2d_transpose) maps n to n * s. The fast forms above take PyTorch's symmetric padding, so
# "same" is one of them plus a zero sample or two on the high side (conv), or a crop (transposed conv).


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TensorFlow's padding="same" of a conv along one axis: (low, high) zeros for ceil(size / stride) outputs."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def conv_same(x_NHWC: Array, kernel_HWIO: Array, strides: IntPair = 1,
              precision: Optional[lax.Precision] = None) -> Array:
  """`conv` with TensorFlow's padding="same": (N, ceil(H / s_h), ceil(W / s_w), C_out)."""
  strides = _pair(strides, "strides")
  _check_channels(x_NHWC, kernel_HWIO)
  pads = tuple(same_padding(size, k, s) for size, k, s in zip(x_NHWC.shape[1:3], kernel_HWIO.shape[:2], strides))
  # The high side may need one zero more than the low. Passed on as such (not as an explicit pad before a
  # symmetric conv), so the input gradient, a transposed conv, computes exactly x's rows: with the padded row
  # SpecGAN's sub-pixel input gradients computed (h + 1) x (w + 1) blocks for h x w (see `_aligned_plan`).
  return _conv_padded(x_NHWC, kernel_HWIO, strides, pads, precision)


def conv_transpose_same(x_NHWC: Array, kernel_HWIO: Array, strides: IntPair = 1,
                        precision: Optional[lax.Precision] = None) -> Array:
  """`conv_transpose` with TensorFlow's padding="same" (the adjoint of `conv_same` on an (H*s_h, W*s_w) input,
  with the kernel's channels swapped): (N, H * s_h, W * s_w, C_out)."""
  strides = _pair(strides, "strides")
  out_sizes = [size * s for size, s in zip(x_NHWC.shape[1:3], strides)]
  lows, output_padding = [], []
  for size, out, k, s in zip(x_NHWC.shape[1:3], out_sizes, kernel_HWIO.shape[:2], strides):
    low, _ = same_padding(out, k, s)
    lows.append(low)
    # Negative where the high side crops one row more than the low (kernel 5, stride 2): computed as such, not
    # cropped afterwards, so the sub-pixel form's blocks are exactly the output's (see `_aligned_plan`).
    output_padding.append(out - conv_transpose_output_size(size, k, s, low))
  return _conv_transpose_any(x_NHWC, kernel_HWIO, strides, tuple(lows), tuple(output_padding), precision)


def _as_2d(x_NTC: Array, kernel_KIO: Array) -> tuple[Array, Array]:
  if x_NTC.ndim != 3 or kernel_KIO.ndim != 3:
    raise ValueError(f"expected NTC input and (K, C_in, C_out) kernel, got shapes {x_NTC.shape} and "
                     f"{kernel_KIO.shape}")
  return x_NTC[:, None], kernel_KIO[None]


def conv1d_same(x_NTC: Array, kernel_KIO: Array, stride: int = 1,
                precision: Optional[lax.Precision] = None) -> Array:
  """1D conv with TensorFlow's padding="same", (N, T, C_in) -> (N, ceil(T / stride), C_out).

  The 2D `conv` with a height of one, so its gradient has the same fast form
  (the input gradient a sub-pixel transposed conv along time, no input-dilated
  convolution). WaveGAN's discriminator layers: kernel 25, stride 4.
  """
  x_NHWC, kernel_HWIO = _as_2d(x_NTC, kernel_KIO)
  return conv_same(x_NHWC, kernel_HWIO, (1, stride), precision)[:, 0]


def conv_transpose1d_same(x_NTC: Array, kernel_KIO: Array, stride: int = 1,
                          precision: Optional[lax.Precision] = None) -> Array:
  """1D transposed conv with TensorFlow's padding="same", (N, T, C_in) -> (N, T * stride, C_out).

  The kernel is in scatter form (K, C_in, C_out). Sub-pixel along time: one
  stride-1 conv of ceil(K / stride) taps to stride * C_out channels, then a
  reshape (gans.layers' `conv_transpose` with a height of one); its gradients
  are a strided conv and XLA's kernel gradient of it, no input-dilated
  convolution. WaveGAN's generator layers: kernel 25, stride 4.
  """
  x_NHWC, kernel_HWIO = _as_2d(x_NTC, kernel_KIO)
  return conv_transpose_same(x_NHWC, kernel_HWIO, (1, stride), precision)[:, 0]


class _SameConvolution(nn.Module):
  """Shared fields of the "same"-padded convolutions; the kernel is (*kernel_size, C_in, C_out)."""
  features: int  # output channels
  kernel_size: Union[int, Sequence[int]]  # taps per spatial axis (an int: the same on every axis)
  strides: Union[int, Sequence[int]] = 1  # conv: downsampling factor; transposed conv: upsampling factor
  use_bias: bool = True  # adds a per-channel bias
  precision: Optional[lax.Precision] = None  # passed to the convolution
  kernel_init: Callable = default_kernel_init  # init of the kernel
  bias_init: Callable = nn.initializers.zeros_init()  # init of the (C_out,) bias
  spatial_dims = 2

  def _convolve(self, x: Array, kernel: Array) -> Array:
    raise NotImplementedError

  @nn.compact
  def __call__(self, x: Array) -> Array:
    size = self.kernel_size
    kernel_size = (size,) * self.spatial_dims if isinstance(size, int) else tuple(size)
    kernel = self.param("kernel", self.kernel_init, kernel_size + (x.shape[-1], self.features), jnp.float32)
    y = self._convolve(x, kernel.astype(x.dtype))
    return y + self.param("bias", self.bias_init, (self.features,), jnp.float32) if self.use_bias else y


class ConvSame(_SameConvolution):
  """2D conv, TensorFlow padding="same", NHWC (SpecGAN's discriminator); fast backward as `Conv`."""

  def _convolve(self, x, kernel):
    return conv_same(x, kernel, self.strides, self.precision)


class ConvTransposeSame(_SameConvolution):
  """2D transposed conv, TensorFlow padding="same", NHWC, scatter-form kernel (SpecGAN's generator)."""

  def _convolve(self, x, kernel):
    return conv_transpose_same(x, kernel, self.strides, self.precision)


class Conv1DSame(_SameConvolution):
  """1D conv, TensorFlow padding="same", NTC (WaveGAN's discriminator); fast backward as `Conv`."""
  spatial_dims = 1

  def _convolve(self, x, kernel):
    return conv1d_same(x, kernel, self.strides, self.precision)


class ConvTranspose1DSame(_SameConvolution):
  """1D transposed conv, TensorFlow padding="same", NTC, scatter-form kernel (WaveGAN's generator)."""
  spatial_dims = 1

  def _convolve(self, x, kernel):
    return conv_transpose1d_same(x, kernel, self.strides, self.precision)
