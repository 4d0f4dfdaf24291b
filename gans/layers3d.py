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

Both are plain reshapes around one stride-1 convolution, `conv_stride1_3d`, whose forward pass, input gradient
(for stride 1 an ordinary padded convolution, no input dilation) and kernel gradient are 2D convolutions over
(H, W) with the depth taps unrolled into channels (`_depth_taps_2d`): XLA:CPU runs its 2D convolutions well
and its 3D ones 2-3x slower; the wide ones among those 2D convs run as Winograd's F(4, 2) or F(3, 2) (`_conv_2d`), as
DCGAN's do in gans/layers.py. So no forward or backward pass needs an input-dilated or a 3D convolution;
`lax.conv_transpose`'s forward and XLA's input gradient of a strided conv both use the former. On the CPU the
kernel gradient (and, at narrow layers, the strided and the transposed convs) is instead a C++ kernel
(gans/cpu_kernels) that reads its operands in place: XLA:CPU transposes both in front of its kernel-gradient
convolutions, and those transposes cost as much as the convs; the strided conv skips the space-to-depth and
depth-tap copies, the transposed conv (by output phases) those and the border, depth-to-space and crop.

The plain forms ("lax": `lax.conv_general_dilated` with stride 2, `lax.conv_transpose`) are kept as the
reference the tests compare with and as the form for GPUs and TPUs, whose libraries run them well.
benchmarks/conv3d.py measures both on the CPU side by side; `CPU_FORM` records its verdict.
"""
import functools
import math
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from gans import cpu_kernels, layers, winograd

Array = jax.Array
_NDHWC = ("NDHWC", "DHWIO", "NDHWC")
FORMS = ("space_to_depth", "lax")
# The form used on the CPU when none is asked for: benchmarks/conv3d.py measured the 3D-GAN's layers
# (forward + both gradients) faster in it; see the numbers there and in README's 3D-GAN section.
CPU_FORM = "space_to_depth"
# The transposed sub-voxel conv (conv_transpose3d's forward, conv3d's input gradient) runs by output phases
# (`_subvoxel_cropped`: no border positions computed and cropped) when its input's largest side is at most
# this; above it the one sub-voxel conv was as fast or faster (batch 32, one core, benchmarks/conv3d_phases.py).
PHASES_MAX_SIDE = 4
# The depth taps' 2D convs (2x2 taps over H, W) with at least this many channels on both sides run as Winograd's
# F(4, 2) or F(3, 2) (gans/winograd.py: 2.56x or 2.25x fewer multiplications, forward and both gradients), as
# DCGAN's 2x2-tap convs after a space-to-depth do in gans/layers.py; grids of fewer than
# layers.WINOGRAD_MIN_GRID_PIXELS output pixels keep XLA's conv there too.
WINOGRAD_MIN_CHANNELS = 128
# ... and of the two plans, the one with fewer products per output pixel counting the tiles' padding, if that is
# at most this many (the direct conv's is 4). F(4, 2) fits the sides that are multiples of 4 (1.56); the
# sub-voxel convs' odd sides (D + 1) take F(3, 2) at 9 and 33 (1.78), not at 17 (1.99, padded to 18). Measured
# (README): F(4, 2) padded to 12 at 9 (2.78) ran 0.6x the speed of XLA's conv (8^3, batch 8); F(3, 2)'s forward
# at 9 1.25x, at 17 0.97x (idle, batch 16); the 64^3 step (batch 16) with a limit of 2.0 ran 0.945x of 1.9's.
WINOGRAD_MAX_PRODUCTS_PER_OUTPUT = 1.9
# ... and for the kernel gradients (`_kernel_grad`), whose XLA form is a convolution behind transposes of both
# operands: F(3, 2) at side 17 (1.99), G's 16^3 128 -> 64 layer in the paper's network, where XLA's conv and its
# transposes took 6.7 s of a 102 s step (batch 100, one core; README, 3D-GAN).
WINOGRAD_KERNEL_GRAD_MAX_PRODUCTS_PER_OUTPUT = 2.0
# The stride-1 convs' kernel gradients (`_kernel_grad`) run as a C++ kernel on the CPU (gans/cpu_kernels: both
# operands read in place, no depth-tap copies; XLA:CPU's kernel-gradient convs transpose both first) where
# C_in x C_out is at most this, scaled by the kernel's vector width (16 floats with AVX-512: x 1; AVX2: x 1/2);
# 0 keeps XLA's everywhere. benchmarks/cpu_kernels.py, AVX-512, 2 threads: 2-4x faster up to 128 x 32 channels,
# 1.0-1.05x at 256 x 64 and 64 x 256 (the whole gan3d_shapes step 2% slower without them), 0.3-0.6x from
# 512 x 128 on (the paper's inner layers), where XLA's blocked matrix product reuses what it loads and this
# kernel streams both operands once per block. Built for AVX2 against XLA limited to AVX2
# (--xla_cpu_max_isa=AVX2): 1.15-3.5x up to 128 x 32, but 0.58x at 256 x 64 and 64 x 256.
CPU_KERNEL_GRAD_MAX_CHANNELS = 128 * 128
# The pad and space-to-depth in front of the strided convs (and of the transposed convs' gradients) run as a C++
# copy on the CPU (gans/cpu_kernels; XLA:CPU's loop does index arithmetic per element); False keeps XLA's.
CPU_SPACE_TO_DEPTH = True
# The strided convs' forward runs as a C++ kernel on the CPU (gans/cpu_kernels.conv3d_stride2: the padded input
# read in place, no space-to-depth or depth-tap copies) where C_in x C_out is at most this, scaled by the
# kernel's vector width as above; 0 keeps the space-to-depth form. One core, batch 32: (16^3, 16 -> 32) 14.2
# against 20.4 ms, (8^3, 32 -> 64) 7.5 against 8.8; (batch 4, 32^3, 64 -> 128) 343 against 193 (no cache
# blocking over the channels).
CPU_CONV_MAX_CHANNELS = 32 * 64
# The transposed convs (conv_transpose3d's forward, conv3d's input gradient) run as a C++ kernel on the CPU
# (gans/cpu_kernels.conv_transpose3d_stride2: by output phases on the padded input, no depth-tap copies,
# depth-to-space or crop) where C_in x C_out is at most this, scaled as above; 0 keeps the sub-voxel form.
# Against that form, 2 threads, the kernel packed and blocked (benchmarks/cpu_kernels.py and a scratch sweep,
# interleaved, AVX-512): (batch 32, 4^3, 64 -> 32) 1.6-1.9x, (32, 8^3, 32 -> 16) 1.3-1.7x, (8, 8^3, 128 -> 128)
# 1.5x, (4, 16^3, 128 -> 64) 1.0-1.2x; (4, 8^3, 256 -> 128) 0.8-0.9x, (4, 4^3, 512 -> 256) 0.7x, where XLA's
# Winograd F(3, 2) and blocked matrix products win.
CPU_TRANSPOSED_MAX_CHANNELS = 128 * 128


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


def _products_per_output(plan: winograd.Plan, out_sides: list) -> float:
  tiles = math.prod(-(-side // plan.m) for side in out_sides)
  return plan.tile ** 2 * tiles / math.prod(out_sides)


def _winograd_plan(x_NHWC: Array, kernel_HWIO: Array, padding_2d: tuple, precision,
                   max_products: float) -> Optional[winograd.Plan]:
  """The Winograd plan of a depth-taps 2D conv, or None for XLA's conv."""
  out_sides = [x_NHWC.shape[1 + i] + sum(padding_2d[i]) - 1 for i in range(2)]
  if not (layers.winograd_numerics_apply(x_NHWC, kernel_HWIO, precision) and tuple(kernel_HWIO.shape[:2]) == (2, 2)
          and min(kernel_HWIO.shape[2:]) >= WINOGRAD_MIN_CHANNELS
          and x_NHWC.shape[0] * math.prod(out_sides) >= layers.WINOGRAD_MIN_GRID_PIXELS):
    return None
  plan = min((winograd.F4_2, winograd.F3_2), key=lambda plan: _products_per_output(plan, out_sides))
  return plan if _products_per_output(plan, out_sides) <= max_products else None


def _conv_2d(x_NHWC: Array, kernel_HWIO: Array, padding_2d: tuple, precision, max_products: float) -> Array:
  """The stride-1 2D conv of the depth taps: Winograd's F(4, 2) or F(3, 2) where one pays (at most
  `max_products` per output), else XLA's conv."""
  plan = _winograd_plan(x_NHWC, kernel_HWIO, padding_2d, precision, max_products)
  if plan is not None:
    x = jnp.pad(x_NHWC, ((0, 0),) + tuple(padding_2d) + ((0, 0),))
    return winograd.correlate(x, kernel_HWIO, plan)
  return layers._conv_stride1_plain(x_NHWC, kernel_HWIO, padding_2d, precision)


def _depth_taps_2d(x_NDHWC: Array, kernel_DHWIO: Array, padding: tuple, precision,
                   max_products: Optional[float] = None) -> Array:
  """The stride-1 3D conv as 2D convs (`_conv_2d`: Winograd or XLA's) over (H, W), one depth tap
  folded into channels per copy: XLA:CPU's own 3D convolution ran the 3D-GAN's layers 2-3x slower than this.
  Winograd where it needs at most `max_products` per output (None: WINOGRAD_MAX_PRODUCTS_PER_OUTPUT).

  The depth taps are unrolled on the side with fewer channels: with C_in <= C_out, the input's depth-shifted
  copies are stacked on channels ((N D', H, W, t C_in), one 2D conv to C_out); otherwise every depth slice is
  convolved to all t taps' outputs at once ((N D, H', W', t C_out)) and the taps' outputs are summed shifted.
  So the copy is t times the smaller side.
  """
  (depth_low, depth_high), pad_h, pad_w = padding
  taps, c_in, c_out = kernel_DHWIO.shape[0], kernel_DHWIO.shape[3], kernel_DHWIO.shape[4]
  x = jnp.pad(x_NDHWC, ((0, 0), (depth_low, depth_high), (0, 0), (0, 0), (0, 0)))
  n, depth, h, w, _ = x.shape
  out_depth = depth - taps + 1
  padding_2d = (tuple(pad_h), tuple(pad_w))
  conv_2d = functools.partial(_conv_2d, padding_2d=padding_2d, precision=precision,
                              max_products=WINOGRAD_MAX_PRODUCTS_PER_OUTPUT if max_products is None else max_products)
  if c_in <= c_out:
    stacked = jnp.concatenate([x[:, t:t + out_depth] for t in range(taps)], axis=-1)  # (N, D', H, W, t C_in)
    kernel = kernel_DHWIO.transpose(1, 2, 0, 3, 4).reshape(*kernel_DHWIO.shape[1:3], taps * c_in, c_out)
    y = conv_2d(stacked.reshape(n * out_depth, h, w, taps * c_in), kernel)
    return y.reshape(n, out_depth, *y.shape[1:])
  kernel = kernel_DHWIO.transpose(1, 2, 3, 0, 4).reshape(*kernel_DHWIO.shape[1:3], c_in, taps * c_out)
  per_tap = conv_2d(x.reshape(n * depth, h, w, c_in), kernel)
  per_tap = per_tap.reshape(n, depth, *per_tap.shape[1:3], taps, c_out)
  return sum(per_tap[:, t:t + out_depth, :, :, t] for t in range(taps))


def _subvoxel_cropped(x_NDHWC: Array, adjoint_kernel: Array, precision) -> Array:
  """crop(depth_to_space(conv_stride1_3d(x, adjoint_kernel, padding 1))) by phases, without the border.

  The sub-voxel conv computes (D+1)^3 positions of all 8 output phases and the crop drops one position per
  phase and axis: 1.95x the needed work at D = 4, 1.42x at 8, 1.2x at 16. Here each phase (r_d, r_h, r_w),
  the channel block r of adjoint_kernel (2, 2, 2, C_in, 8 C_out), is its own 2x2x2-tap conv with padding
  (0, 1) on an axis where r = 0 and (1, 0) where r = 1 (the positions the crop keeps), D^3 outputs each.
  """
  n, d, h, w, _ = x_NDHWC.shape
  c_out = adjoint_kernel.shape[-1] // 8
  blocks = adjoint_kernel.reshape(*adjoint_kernel.shape[:4], 2, 2, 2, c_out)
  phases = []
  for r_d in (1, 0):  # output offset 1 - r along each axis: offset 0 first
    for r_h in (1, 0):
      for r_w in (1, 0):
        padding = tuple((r, 1 - r) for r in (r_d, r_h, r_w))
        phases.append(_depth_taps_2d(x_NDHWC, blocks[..., r_d, r_h, r_w, :], padding, precision))
  y = jnp.stack(phases, axis=-2).reshape(n, d, h, w, 2, 2, 2, c_out)
  return y.transpose(0, 1, 4, 2, 5, 3, 6, 7).reshape(n, 2 * d, 2 * h, 2 * w, c_out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_stride1_3d(x_NDHWC: Array, kernel_DHWIO: Array, padding: tuple, precision=None) -> Array:
  """Stride-1 3D convolution (cross-correlation), `padding` ((lo, hi),) * 3 >= 0, as 2D convs
  (`_depth_taps_2d`) in the forward pass and both gradients."""
  return _depth_taps_2d(x_NDHWC, kernel_DHWIO, padding, precision)


def _conv_stride1_fwd(x_NDHWC, kernel_DHWIO, padding, precision):
  return _depth_taps_2d(x_NDHWC, kernel_DHWIO, padding, precision), (x_NDHWC, kernel_DHWIO)


def _input_grad(x_shape: tuple, kernel_DHWIO: Array, padding: tuple, precision, y_grad: Array) -> Array:
  """x's gradient of `conv_stride1_3d`: the stride-1 conv of y_grad with the flipped, transposed kernel and the
  complementary padding, the forward's form again with the unrolled side chosen afresh."""
  taps = kernel_DHWIO.shape[:3]
  return _depth_taps_2d(
      y_grad, _flipped_adjoint(kernel_DHWIO),
      tuple((t - 1 - lo, size_x - size_y + lo)
            for t, (lo, _), size_x, size_y in zip(taps, padding, x_shape[1:4], y_grad.shape[1:4])),
      precision)


def _flipped_adjoint(kernel_DHWIO: Array) -> Array:
  return kernel_DHWIO[::-1, ::-1, ::-1].transpose(0, 1, 2, 4, 3)


def _within_channel_limit(c_in: int, c_out: int, limit: int) -> bool:
  """Whether a C++ kernel pays at these channels: C_in x C_out at most `limit` (measured with AVX-512's 16-float
  vectors), scaled by the vector width the kernels were built for."""
  return c_in * c_out <= limit * cpu_kernels.vector_lanes() // 16


def _kernel_grad(x_NDHWC: Array, kernel_DHWIO: Array, padding: tuple, precision, y_grad: Array) -> Array:
  """The kernel's gradient of `conv_stride1_3d`: `cpu_kernels.conv_kernel_grad` where it applies and pays
  (CPU_KERNEL_GRAD_MAX_CHANNELS), else that of the depth taps' 2D convs (Winograd's, up to
  WINOGRAD_KERNEL_GRAD_MAX_PRODUCTS_PER_OUTPUT, or XLA's) on an input padded beforehand."""
  x_padded = jnp.pad(x_NDHWC, ((0, 0),) + tuple(padding) + ((0, 0),))
  if (cpu_kernels.conv_kernel_grad_applies(x_padded, y_grad)
      and _within_channel_limit(x_padded.shape[-1], y_grad.shape[-1], CPU_KERNEL_GRAD_MAX_CHANNELS)):
    return cpu_kernels.conv_kernel_grad(x_padded, y_grad).astype(kernel_DHWIO.dtype)
  # (An optimization barrier behind the pad, against XLA folding it into the conv, was once measured at 3.6 s
  # against ~0.1 s; but XLA:CPU of jax 0.10 drops barriers before it fuses, and the compiled gan3d_shapes and
  # gan3d_modelnet10 steps were identical with and without it, so it is gone. Keeping barriers through fusion
  # did not pay on two threads: README, 3D-GAN, fifth and sixth sessions of 2026-12-01.)
  _, kernel_vjp = jax.vjp(lambda k: _depth_taps_2d(x_padded, k, ((0, 0),) * 3, precision,
                                                   WINOGRAD_KERNEL_GRAD_MAX_PRODUCTS_PER_OUTPUT),
                          kernel_DHWIO.astype(y_grad.dtype))
  return kernel_vjp(y_grad)[0].astype(kernel_DHWIO.dtype)


def _conv_stride1_bwd(padding, precision, residuals, y_grad):
  x_NDHWC, kernel_DHWIO = residuals
  return (_input_grad(x_NDHWC.shape, kernel_DHWIO, padding, precision, y_grad),
          _kernel_grad(x_NDHWC, kernel_DHWIO, padding, precision, y_grad))


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
  return _conv3d_s2d(x_NDHWC, _space_to_depth_kernel(kernel_DHWIO), precision)


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
  adjoint_kernel = _flipped_adjoint(as_conv)  # (2, 2, 2, C_in, 8 C_out)
  return _conv_transpose3d_s2d(x_NDHWC, adjoint_kernel, precision)


_PAD1 = ((1, 1),) * 3
_VALID = ((0, 0),) * 3


def _pad_space_to_depth_lax(x_NDHWC: Array) -> Array:
  return space_to_depth_3d(jnp.pad(x_NDHWC, ((0, 0),) + _PAD1 + ((0, 0),)))


def _pad_space_to_depth(x_NDHWC: Array) -> Array:
  if CPU_SPACE_TO_DEPTH and cpu_kernels.space_to_depth_padded_applies(x_NDHWC):
    return cpu_kernels.space_to_depth_padded(x_NDHWC, _pad_space_to_depth_lax)
  return _pad_space_to_depth_lax(x_NDHWC)


def _subvoxel_transposed(x_NDHWC: Array, adjoint_kernel: Array, precision) -> Array:
  """crop(depth_to_space(stride-1 conv with padding 1)): conv_transpose3d's forward and conv3d's input
  gradient; by the C++ kernel where it applies (CPU_TRANSPOSED_MAX_CHANNELS), else by phases on small inputs
  (PHASES_MAX_SIDE)."""
  if (cpu_kernels.conv_transpose3d_stride2_applies(x_NDHWC, adjoint_kernel)
      and _within_channel_limit(x_NDHWC.shape[-1], adjoint_kernel.shape[-1] // 8, CPU_TRANSPOSED_MAX_CHANNELS)):
    return _conv_transpose3d_direct(x_NDHWC, adjoint_kernel, precision)
  if max(x_NDHWC.shape[1:4]) <= PHASES_MAX_SIDE:
    return _subvoxel_cropped(x_NDHWC, adjoint_kernel, precision)
  return depth_to_space_3d(_depth_taps_2d(x_NDHWC, adjoint_kernel, _PAD1, precision))[:, 1:-1, 1:-1, 1:-1]


def _conv_transpose3d_direct(x_NDHWC: Array, adjoint_kernel: Array, precision) -> Array:
  """The transposed conv by `cpu_kernels.conv_transpose3d_stride2` (by output phases, the padded input read in
  place), with the sub-voxel form's derivatives."""
  subvoxel_form = lambda x_padded, k: depth_to_space_3d(_depth_taps_2d(x_padded, k, _VALID, precision))[
      :, 1:-1, 1:-1, 1:-1]
  x_padded = jnp.pad(x_NDHWC, ((0, 0),) + _PAD1 + ((0, 0),))
  return cpu_kernels.conv_transpose3d_stride2(x_padded, adjoint_kernel, subvoxel_form)


def _direct_conv_applies(x_NDHWC: Array, kernel_s2d: Array) -> bool:
  return (cpu_kernels.conv3d_stride2_applies(x_NDHWC, kernel_s2d)
          and _within_channel_limit(x_NDHWC.shape[-1], kernel_s2d.shape[-1], CPU_CONV_MAX_CHANNELS))


def _conv3d_direct(x_NDHWC: Array, kernel_s2d: Array, precision) -> Array:
  """The strided conv by `cpu_kernels.conv3d_stride2`, with the space-to-depth form's derivatives."""
  space_to_depth_form = lambda x_padded, k: _depth_taps_2d(space_to_depth_3d(x_padded), k, _VALID, precision)
  x_padded = jnp.pad(x_NDHWC, ((0, 0),) + _PAD1 + ((0, 0),))
  return cpu_kernels.conv3d_stride2(x_padded, kernel_s2d, space_to_depth_form)


# conv3d and conv_transpose3d each as one custom VJP around the space-to-depth reshapes, so that the transposed
# sub-voxel conv in either (conv3d's input gradient, conv_transpose3d's forward) can skip the border voxels the
# crop drops, while the other passes keep conv_stride1_3d's forms.
@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv3d_s2d(x_NDHWC: Array, kernel_s2d: Array, precision) -> Array:
  return _conv3d_s2d_fwd(x_NDHWC, kernel_s2d, precision)[0]


def _conv3d_s2d_fwd(x_NDHWC, kernel_s2d, precision):
  """The forward by the C++ kernel where it applies (the space-to-depth is then made in the backward pass, for
  the kernel gradient), else by the space-to-depth form."""
  if _direct_conv_applies(x_NDHWC, kernel_s2d):
    return _conv3d_direct(x_NDHWC, kernel_s2d, precision), (x_NDHWC, None, kernel_s2d)
  x_s2d = _pad_space_to_depth(x_NDHWC)
  return _depth_taps_2d(x_s2d, kernel_s2d, _VALID, precision), (None, x_s2d, kernel_s2d)


def _conv3d_s2d_bwd(precision, residuals, y_grad):
  x_NDHWC, x_s2d, kernel_s2d = residuals
  if x_s2d is None:
    x_s2d = _pad_space_to_depth(x_NDHWC)
  return (_subvoxel_transposed(y_grad, _flipped_adjoint(kernel_s2d), precision),
          _kernel_grad(x_s2d, kernel_s2d, _VALID, precision, y_grad))


_conv3d_s2d.defvjp(_conv3d_s2d_fwd, _conv3d_s2d_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_transpose3d_s2d(x_NDHWC: Array, adjoint_kernel: Array, precision) -> Array:
  return _subvoxel_transposed(x_NDHWC, adjoint_kernel, precision)


def _conv_transpose3d_s2d_fwd(x_NDHWC, adjoint_kernel, precision):
  return _subvoxel_transposed(x_NDHWC, adjoint_kernel, precision), (x_NDHWC, adjoint_kernel)


def _conv_transpose3d_s2d_bwd(precision, residuals, y_grad):
  """x's gradient is conv3d's forward with the kernel in its space-to-depth layout (the adjoint kernel's flipped
  adjoint), by the C++ strided conv where that applies."""
  x_NDHWC, adjoint_kernel = residuals
  y_grad_s2d = _pad_space_to_depth(y_grad)  # the adjoint of the crop and the depth-to-space
  kernel_s2d = _flipped_adjoint(adjoint_kernel)
  if _direct_conv_applies(y_grad, kernel_s2d):
    x_grad = _conv3d_direct(y_grad, kernel_s2d, precision)
  else:
    x_grad = _input_grad(x_NDHWC.shape, adjoint_kernel, _PAD1, precision, y_grad_s2d)
  return x_grad, _kernel_grad(x_NDHWC, adjoint_kernel, _PAD1, precision, y_grad_s2d)


_conv_transpose3d_s2d.defvjp(_conv_transpose3d_s2d_fwd, _conv_transpose3d_s2d_bwd)


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
