"""The kernel gradient of the 3D-GAN's stride-1 2x2x2-tap convs (gans.layers3d.conv_stride1_3d) in other forms.

  python benchmarks/conv3d_kernel_grad.py [--batch_size=32] [--rounds=7]

After the space-to-depth every 3D-GAN layer is a stride-1 conv with 2x2x2 taps (`layers3d.conv_stride1_3d`),
and its kernel gradient was the largest piece left of the step (README, 3D-GAN). This times, interleaved in
one process, XLA's kernel gradient of the depth-taps 2D convs (`layers3d` with CPU_KERNEL_GRAD_MAX_CHANNELS 0: the
project's form before gans/cpu_kernels, whose C++ kernel benchmarks/cpu_kernels.py times against it) against
forms that do the same contraction as matrix products, at gan3d_shapes' six layers (batch 32):

  * "im2col": the eight taps' shifted copies of the input, channel-first, stacked into (8 C_in, M) and one
    matrix product with the (C_out, M) cotangent (M = N D' H' W'), contracted on the last axis of both, the
    layout in which XLA:CPU's matmul was fastest (13 ms for 128 x 157216 x 8 against 79 ms transposed);
  * "flat_offsets": the input flattened channel-first to (C_in, N D H W), where tap (a, b, c) is the offset
    a H W + b W + c, so every tap's copy is one contiguous shift; the cotangent zero-padded to the input's
    grid (its garbage positions get zero weight); one matrix product as above;
  * "depth_taps_pretransposed": the input and cotangent transposed once, outside the conv, to the layouts
    XLA's kernel-gradient conv wants (C_in, H, W, N D') and (H', W', N D', C_out), one 2D conv per depth tap
    with no transpose inserted by XLA;
  * "patches_ndhwc": the eight shifted views concatenated on the channel axis in NDHWC, (M, 8 C_in), no
    transpose, and one matrix product with the (M, C_out) cotangent contracted on the first axis of both;
  * "shifted_smaller": the flat channel-first rows as in "flat_offsets", but only the side with fewer channels
    shifted and stacked (kernel[tap] = sum_t x[t + o] y[t] = sum_t x[t] y[t - o]), contracted on the last axes;
  * "shifted_smaller_ndhwc": the same with (S, C) rows in NDHWC order (no transpose at all), the shifted side
    concatenated on channels, contracted on the first axes.

None of these beat "depth_taps" (README, 3D-GAN): XLA:CPU builds the shifted copies slowly (a concatenation
fused with slices and pads), and which matmul orientation is fast depends on the shape (YNNPACK and Eigen
each 2-5x apart between contracting the first or the last axes).

Each form is checked against lax's kernel gradient before timing. Compiled with
gans.layers.xla_cpu_compiler_options(), as the trainer does. Pin to one core for low noise:

  XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" taskset -c 0 python ...
"""
import argparse
import functools
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gans import layers, layers3d  # noqa: E402

# gan3d_shapes' layers after the space-to-depth: (name, input side, C_in, C_out, padding per side). The strided
# convs (D) have 8 C_in inputs and no padding; the transposed ones (G) 8 C_out outputs and padding 1.
SHAPES_LAYERS = (("D 32^3 1->16", 17, 8, 16, 0), ("D 16^3 16->32", 9, 128, 32, 0), ("D 8^3 32->64", 5, 256, 64, 0),
                 ("G 4^3 64->32", 4, 64, 256, 1), ("G 8^3 32->16", 8, 32, 128, 1), ("G 16^3 16->1", 16, 16, 8, 1))
_TAPS = (2, 2, 2)


def _padded(x_NDHWC, padding):
  return jnp.pad(x_NDHWC, ((0, 0),) + tuple(padding) + ((0, 0),))


def depth_taps(x_NDHWC, y_grad, padding):
  """XLA's kernel gradient of the depth-taps 2D convs: the custom VJP of `layers3d.conv_stride1_3d` with
  CPU_KERNEL_GRAD_MAX_CHANNELS 0 while it traces (x's gradient unused, so dropped by jit)."""
  kernel = jnp.zeros(_TAPS + (x_NDHWC.shape[-1], y_grad.shape[-1]), y_grad.dtype)
  saved, layers3d.CPU_KERNEL_GRAD_MAX_CHANNELS = layers3d.CPU_KERNEL_GRAD_MAX_CHANNELS, 0
  try:
    _, vjp = jax.vjp(lambda k: layers3d.conv_stride1_3d(x_NDHWC, k, padding), kernel)
    return vjp(y_grad)[0]
  finally:
    layers3d.CPU_KERNEL_GRAD_MAX_CHANNELS = saved


def _cotangent_rows(y_grad):  # (C_out, M)
  return y_grad.reshape(-1, y_grad.shape[-1]).T


def _contract_rows(columns, y_rows):  # (K, M) x (C_out, M) -> (K, C_out), both contracted on their last axis
  return lax.dot_general(columns, y_rows, (((1,), (1,)), ((), ())))


def im2col(x_NDHWC, y_grad, padding):
  x = _padded(x_NDHWC, padding).transpose(4, 0, 1, 2, 3)  # (C_in, N, D, H, W)
  c_in, (od, oh, ow) = x.shape[0], y_grad.shape[1:4]
  columns = jnp.stack([x[:, :, a:a + od, b:b + oh, c:c + ow] for a in range(2) for b in range(2) for c in range(2)])
  kernel = _contract_rows(columns.reshape(8 * c_in, -1), _cotangent_rows(y_grad))
  return kernel.reshape(_TAPS + (c_in, y_grad.shape[-1]))


def flat_offsets(x_NDHWC, y_grad, padding):
  x = _padded(x_NDHWC, padding)
  n, d, h, w, c_in = x.shape
  size = n * d * h * w
  offsets = [a * h * w + b * w + c for a in range(2) for b in range(2) for c in range(2)]
  rows = jnp.pad(x.reshape(size, c_in).T, ((0, 0), (0, offsets[-1])))
  columns = jnp.stack([rows[:, o:o + size] for o in offsets])  # (8, C_in, N D H W)
  od, oh, ow = y_grad.shape[1:4]
  y_full = jnp.pad(y_grad, ((0, 0), (0, d - od), (0, h - oh), (0, w - ow), (0, 0)))
  kernel = _contract_rows(columns.reshape(8 * c_in, size), _cotangent_rows(y_full))
  return kernel.reshape(_TAPS + (c_in, y_grad.shape[-1]))


def _contract_first(columns, y_rows):  # (M, K) x (M, C_out) -> (K, C_out), contracted on the first axis of both
  return lax.dot_general(columns, y_rows, (((0,), (0,)), ((), ())))


def patches_ndhwc(x_NDHWC, y_grad, padding):
  x = _padded(x_NDHWC, padding)
  c_in, (od, oh, ow) = x.shape[-1], y_grad.shape[1:4]
  columns = jnp.concatenate([x[:, a:a + od, b:b + oh, c:c + ow] for a in range(2) for b in range(2)
                             for c in range(2)], axis=-1)  # (N, D', H', W', 8 C_in), no transpose
  kernel = _contract_first(columns.reshape(-1, 8 * c_in), y_grad.reshape(-1, y_grad.shape[-1]))
  return kernel.reshape(_TAPS + (c_in, y_grad.shape[-1]))


def _flat_rows(x_NDHWC, y_grad, padding):
  """x padded, channel-first, flat (C_in, S); y_grad zero-padded to x's grid, (C_out, S); the taps' offsets."""
  x = _padded(x_NDHWC, padding)
  n, d, h, w, c_in = x.shape
  od, oh, ow = y_grad.shape[1:4]
  y_full = jnp.pad(y_grad, ((0, 0), (0, d - od), (0, h - oh), (0, w - ow), (0, 0)))
  offsets = [a * h * w + b * w + c for a in range(2) for b in range(2) for c in range(2)]
  return x.reshape(-1, c_in).T, _cotangent_rows(y_full), offsets


def _shift(rows, offset):  # rows[:, t] -> rows[:, t - offset] (zeros in front), same length
  return jnp.pad(rows, ((0, 0), (offset, 0)))[:, :rows.shape[1]]


def shifted_smaller(x_NDHWC, y_grad, padding):
  """kernel[tap] = sum_t x[t + o] y[t] = sum_t x[t] y[t - o]: shift the side with fewer channels, one matmul."""
  x_rows, y_rows, offsets = _flat_rows(x_NDHWC, y_grad, padding)
  c_in, c_out = x_rows.shape[0], y_rows.shape[0]
  if c_out <= c_in:
    shifted = jnp.concatenate([_shift(y_rows, o) for o in offsets])  # (8 C_out, S)
    kernel = _contract_rows(x_rows, shifted).reshape(c_in, 8, c_out).transpose(1, 0, 2)
  else:
    x_ext = jnp.pad(x_rows, ((0, 0), (0, offsets[-1])))
    shifted = jnp.concatenate([x_ext[:, o:o + x_rows.shape[1]] for o in offsets])  # (8 C_in, S)
    kernel = _contract_rows(shifted, y_rows)
  return kernel.reshape(_TAPS + (c_in, c_out))


def shifted_smaller_ndhwc(x_NDHWC, y_grad, padding):
  """`shifted_smaller` with no transpose: (S, C) rows, the shifted side concatenated on channels, one matmul
  contracted on the first axis of both."""
  x_rows, y_rows, offsets = _flat_rows(x_NDHWC, y_grad, padding)
  x_rows, y_rows = x_rows.T, y_rows.T  # transposes of transposes: (S, C_in), (S, C_out), no copy
  (size, c_in), c_out = x_rows.shape, y_rows.shape[1]
  if c_out <= c_in:
    shifted = jnp.concatenate([jnp.pad(y_rows, ((o, 0), (0, 0)))[:size] for o in offsets], axis=1)  # (S, 8 C_out)
    kernel = _contract_first(x_rows, shifted).reshape(c_in, 8, c_out).transpose(1, 0, 2)
  else:
    x_ext = jnp.pad(x_rows, ((0, offsets[-1]), (0, 0)))
    shifted = jnp.concatenate([x_ext[o:o + size] for o in offsets], axis=1)  # (S, 8 C_in)
    kernel = _contract_first(shifted, y_rows)
  return kernel.reshape(_TAPS + (c_in, c_out))


def depth_taps_pretransposed(x_NDHWC, y_grad, padding):
  x = _padded(x_NDHWC, padding)
  n, _, h, w, c_in = x.shape
  od, oh, ow, c_out = y_grad.shape[1:]
  x_t = lax.optimization_barrier(x.transpose(4, 2, 3, 0, 1))  # (C_in, H, W, N, D)
  y_t = lax.optimization_barrier(y_grad.transpose(2, 3, 0, 1, 4).reshape(oh, ow, n * od, c_out))
  per_tap = [lax.conv_general_dilated(x_t[..., a:a + od].reshape(c_in, h, w, n * od), y_t, (1, 1), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC")) for a in range(2)]
  return jnp.stack(per_tap).transpose(0, 2, 3, 1, 4)  # (kD, kH, kW, C_in, C_out)


FORMS = {"depth_taps": depth_taps, "im2col": im2col, "flat_offsets": flat_offsets,
         "depth_taps_pretransposed": depth_taps_pretransposed, "patches_ndhwc": patches_ndhwc,
         "shifted_smaller": shifted_smaller, "shifted_smaller_ndhwc": shifted_smaller_ndhwc}


def lax_kernel_grad(x_NDHWC, y_grad, padding):
  """The reference: XLA's kernel gradient of the plain stride-1 3D conv."""
  kernel = jnp.zeros(_TAPS + (x_NDHWC.shape[-1], y_grad.shape[-1]), y_grad.dtype)
  conv = lambda k: lax.conv_general_dilated(x_NDHWC, k, (1, 1, 1), padding,  # noqa: E731
                                            dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
  return jax.vjp(conv, kernel)[1](y_grad)[0]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--forms", default=",".join(FORMS), help="Comma-separated forms to time.")
  args = parser.parse_args()
  key = jax.random.key(0)
  for name, side, c_in, c_out, pad in SHAPES_LAYERS:
    padding = ((pad, pad),) * 3
    x = jax.random.normal(key, (args.batch_size, side, side, side, c_in))
    out = side + 2 * pad - 1
    y_grad = jax.random.normal(jax.random.key(1), (args.batch_size, out, out, out, c_out))
    want = lax_kernel_grad(x, y_grad, padding)
    fns = {form: jax.jit(functools.partial(fn, padding=padding), compiler_options=layers.xla_cpu_compiler_options())
           for form, fn in FORMS.items() if form in args.forms.split(",")}
    for form, fn in fns.items():
      error = float(jnp.max(jnp.abs(fn(x, y_grad) - want)) / jnp.max(jnp.abs(want)))
      assert error < 1e-4, f"{form} differs from lax's kernel gradient by {error:.1e} at {name}"
    times = {form: [] for form in fns}
    for _ in range(args.rounds):
      for form, fn in fns.items():
        start = time.perf_counter()
        jax.block_until_ready(fn(x, y_grad))
        times[form].append(time.perf_counter() - start)
    shown = " ".join(f"{form}={1e3 * statistics.median(t):.1f}ms" for form, t in times.items())
    print(f"{name:16s} batch {args.batch_size}: {shown}", flush=True)


if __name__ == "__main__":
  main()
