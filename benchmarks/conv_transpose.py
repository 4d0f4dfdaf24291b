"""Forward+backward speed of transposed-conv formulations, and the DCGAN step, on XLA:CPU.

Three benchmarks, each timed back to back in one process, interleaved (every
candidate once per round, several rounds), reporting medians:

  python benchmarks/conv_transpose.py layers [--repeats=5] [--batch_size=64] [--xla_cpu_options]
      Every candidate formulation of a transposed conv (PyTorch semantics,
      kernel 4) at the DCGAN generator's layer shapes: time of one
      jit(grad) call (forward + gradients w.r.t. input and kernel), ratio to
      lax.conv_transpose and, when torch is importable, to PyTorch's
      conv_transpose2d forward + backward at the same shape.

  python benchmarks/conv_transpose.py convs [...]
      The same for the discriminator's strided convs (ratio to XLA's strided
      conv, to torch's conv2d).

  python benchmarks/conv_transpose.py dcgan [--resolution=64] [--batch_size=64] [--base_channels=64]
                                            [--jax_variants=fast+options,fast,flax] [--regenerate_fake]
      One DCGAN training step (D step on real + fake, then the G step),
      benchmarks/jax_dcgan.py against benchmarks/torch_dcgan.py (when torch is
      importable), alternating torch, jax, torch, jax...; images/s and ratio.

--xla_cpu_options (layers, convs) and the "+options" variants (dcgan) compile
with gans.layers.xla_cpu_compiler_options(). Other XLA flags must be set in
the environment before the process starts, e.g.
XLA_FLAGS=--xla_cpu_use_onednn=true python benchmarks/conv_transpose.py dcgan.
"""
import argparse
import functools
import os
import statistics
import sys
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gans import layers  # noqa: E402

try:
  import torch
except ImportError:  # torch is optional: the JAX side still runs
  torch = None

NHWC = ("NHWC", "HWIO", "NHWC")

# (input size, C_in, C_out, stride, padding) of the DCGAN generator at 64x64, kernel 4.
DCGAN_GENERATOR_LAYERS = ((1, 100, 512, 1, 0), (4, 512, 256, 2, 1), (8, 256, 128, 2, 1),
                          (16, 128, 64, 2, 1), (32, 64, 3, 2, 1))


# ---------------------------------------------------------------------------
# Candidate formulations. All compute y[i*s - p + a] += x[i] * kernel[a] with
# kernel (k, k, C_in, C_out) in scatter form (see gans/layers.py).


def candidate_lax_conv_transpose(x, kernel, stride, padding):
  """What flax.linen.ConvTranspose does: lax.conv_transpose (an input-dilated conv)."""
  return layers.conv_transpose_reference(x, kernel, stride, padding)


def candidate_lhs_dilated_conv(x, kernel, stride, padding):
  """The same operator spelled as conv_general_dilated with lhs_dilation."""
  k = kernel.shape[0]
  return lax.conv_general_dilated(x, kernel[::-1, ::-1], (1, 1), [(k - 1 - padding,) * 2] * 2,
                                  lhs_dilation=(stride, stride), dimension_numbers=NHWC)


def _subpixel_with(conv_fn):
  """Sub-pixel form built on a given stride-1 conv (to isolate the kernel-gradient choice)."""
  def apply(x, kernel, stride, padding):
    n, h, w, _ = x.shape
    c_out = kernel.shape[-1]
    plan = layers._AxisPlan(h, kernel.shape[0], stride, padding, 0)
    sub_kernel = layers._subpixel_kernel(kernel, plan, plan)
    pad = ((max(plan.pad_low, 0), max(plan.pad_high, 0)),) * 2
    y = conv_fn(x, sub_kernel, pad)
    q = plan.num_blocks
    y = y.reshape(n, q, q, stride, stride, c_out).transpose(0, 1, 3, 2, 4, 5)
    y = y.reshape(n, q * stride, q * stride, c_out)
    return y[:, plan.crop_start:plan.crop_start + plan.out_size, plan.crop_start:plan.crop_start + plan.out_size]
  return apply


candidate_subpixel_xla_grad = _subpixel_with(
    lambda x, k, pad: lax.conv_general_dilated(x, k, (1, 1), pad, dimension_numbers=NHWC))
candidate_subpixel_xla_grad.__doc__ = "Sub-pixel form, XLA's own kernel gradient (a map-sized conv)."

candidate_subpixel_fast_grad_all_shapes = _subpixel_with(lambda x, k, pad: layers.conv_stride1(x, k, pad))
candidate_subpixel_fast_grad_all_shapes.__doc__ = (
    "Sub-pixel form for every shape (also 1x1 inputs), through gans.layers.conv_stride1.")


def candidate_subpixel_autodiff(x, kernel, stride, padding):
  """Sub-pixel forward, JAX autodiff of it (through conv_stride1's gradients)."""
  return layers._conv_transpose_subpixel(x, kernel, (stride, stride), (padding, padding), (0, 0), None)


def candidate_layers_conv_transpose(x, kernel, stride, padding):
  """gans.layers.conv_transpose: Winograd F(4, 2) where it applies (k4 s2 p1, wide layers), else the next."""
  return layers.conv_transpose(x, kernel, stride, padding)


def candidate_layers_direct(x, kernel, stride, padding):
  """gans.layers' direct form: sub-pixel forward; custom backward from XLA's strided conv and its kernel grad."""
  return layers._conv_transpose(x, kernel, (stride, stride), (padding, padding), (0, 0), None)


def candidate_matmul_col2im(x, kernel, stride, padding):
  """One matmul to k*k*C_out columns per input pixel, then col2im as shifted adds per phase."""
  n, h, w, c_in = x.shape
  k, _, _, c_out = kernel.shape
  taps = -(-k // stride)
  cols = jnp.dot(x.reshape(-1, c_in), kernel.transpose(2, 0, 1, 3).reshape(c_in, -1))
  cols = jnp.pad(cols.reshape(n, h, w, k, k, c_out),
                 ((0, 0),) * 3 + ((0, taps * stride - k),) * 2 + ((0, 0),))
  # Kernel row a = m*s + r lands in block i + m, phase r.
  cols = cols.reshape(n, h, w, taps, stride, taps, stride, c_out)
  blocks = h + taps - 1
  full = 0
  for m_h in range(taps):
    for m_w in range(taps):
      full = full + jnp.pad(cols[:, :, :, m_h, :, m_w], ((0, 0), (m_h, taps - 1 - m_h), (m_w, taps - 1 - m_w),
                                                          (0, 0), (0, 0), (0, 0)))
  full = full.transpose(0, 1, 3, 2, 4, 5).reshape(n, blocks * stride, blocks * stride, c_out)
  out = (h - 1) * stride - 2 * padding + k
  return full[:, padding:padding + out, padding:padding + out]


def conv_space_to_depth(x_NHWC: jax.Array, kernel_HWIO: jax.Array, strides: tuple[int, int],
                        padding: tuple[int, int], precision: Optional[lax.Precision]) -> jax.Array:
  """A strided conv as a stride-1 conv over the space-to-depth input (differentiable on its own).

  Padded rows o*s + m*s + r become block o + m, phase r, so the conv becomes a
  stride-1 conv with ceil(k/s) taps over s*s*C_in channels, whose gradients
  are an ordinary conv and a matmul. A measured alternative to gans.layers.conv, which uses XLA's
  strided conv forward (faster on XLA:CPU in these benchmarks).
  """
  (s_h, s_w), (p_h, p_w) = strides, padding
  n, h, w, c_in = x_NHWC.shape
  k_h, k_w, _, c_out = kernel_HWIO.shape
  out_h, out_w = (h + 2 * p_h - k_h) // s_h + 1, (w + 2 * p_w - k_w) // s_w + 1
  t_h, t_w = -(-k_h // s_h), -(-k_w // s_w)
  # Blocks o .. o + taps - 1 cover padded rows o*s .. o*s + taps*s - 1 >= the kernel's reach.
  rows, cols = s_h * (out_h + t_h - 1), s_w * (out_w + t_w - 1)
  x = lax.pad(x_NHWC, jnp.zeros((), x_NHWC.dtype),
              ((0, 0, 0), (p_h, rows - h - p_h, 0), (p_w, cols - w - p_w, 0), (0, 0, 0)))
  x = x.reshape(n, rows // s_h, s_h, cols // s_w, s_w, c_in).transpose(0, 1, 3, 2, 4, 5)
  x = x.reshape(n, rows // s_h, cols // s_w, s_h * s_w * c_in)
  kernel = jnp.pad(kernel_HWIO, ((0, t_h * s_h - k_h), (0, t_w * s_w - k_w), (0, 0), (0, 0)))
  kernel = kernel.reshape(t_h, s_h, t_w, s_w, c_in, c_out).transpose(0, 2, 1, 3, 4, 5)
  kernel = kernel.reshape(t_h, t_w, s_h * s_w * c_in, c_out)
  return layers.conv_stride1(x, kernel, ((0, 0), (0, 0)), precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _lax_forward_fast_backward(x, kernel, stride_padding):
  return layers.conv_transpose_reference(x, kernel, *stride_padding)


def _lax_forward_fast_backward_fwd(x, kernel, stride_padding):
  return _lax_forward_fast_backward(x, kernel, stride_padding), (x, kernel)


def _lax_forward_fast_backward_bwd(stride_padding, residuals, y_grad):
  x, kernel = residuals
  stride, padding = stride_padding
  # The input gradient of a transposed conv is the ordinary strided conv with the same kernel.
  x_grad = lax.conv_general_dilated(y_grad, kernel.transpose(0, 1, 3, 2), (stride, stride),
                                    [(padding, padding)] * 2, dimension_numbers=NHWC)
  # Kernel gradient: k[a] = sum_i x[i] * y_grad[i*s - p + a] -- the fast strided-conv weight gradient.
  _, kernel_vjp = jax.vjp(lambda kt: conv_space_to_depth(y_grad, kt, (stride,) * 2, (padding,) * 2, None),
                          kernel.transpose(0, 1, 3, 2))
  (kernel_t_grad,) = kernel_vjp(x)
  return x_grad, kernel_t_grad.transpose(0, 1, 3, 2)


_lax_forward_fast_backward.defvjp(_lax_forward_fast_backward_fwd, _lax_forward_fast_backward_bwd)


def candidate_custom_vjp_lax_forward(x, kernel, stride, padding):
  """lax.conv_transpose forward; custom backward: input grad as XLA's strided conv, kernel grad as matmul."""
  return _lax_forward_fast_backward(x, kernel, (stride, padding))


CANDIDATES = {
    "lax.conv_transpose": candidate_lax_conv_transpose,
    "lhs_dilated_conv": candidate_lhs_dilated_conv,
    "subpixel+xla_grad": candidate_subpixel_xla_grad,
    "subpixel+matmul_grad": candidate_subpixel_fast_grad_all_shapes,
    "subpixel_autodiff": candidate_subpixel_autodiff,
    "layers.conv_transpose": candidate_layers_conv_transpose,
    "layers_direct": candidate_layers_direct,
    "matmul+col2im": candidate_matmul_col2im,
    "custom_vjp(lax fwd)": candidate_custom_vjp_lax_forward,
}


# ---------------------------------------------------------------------------
# Candidate formulations of the discriminator's strided conv (PyTorch Conv2d semantics, kernel (k, k, C_in, C_out)).

# (input size, C_in, C_out, stride, padding) of the DCGAN discriminator at 64x64, kernel 4.
DCGAN_DISCRIMINATOR_LAYERS = ((64, 3, 64, 2, 1), (32, 64, 128, 2, 1), (16, 128, 256, 2, 1),
                              (8, 256, 512, 2, 1), (4, 512, 1, 1, 0))


def conv_candidate_xla(x, kernel, stride, padding):
  """What flax.linen.Conv does: lax.conv_general_dilated with window strides."""
  return lax.conv_general_dilated(x, kernel, (stride, stride), [(padding, padding)] * 2, dimension_numbers=NHWC)


def conv_candidate_layers(x, kernel, stride, padding):
  """gans.layers.conv: Winograd F(4, 2) after a space-to-depth where it applies (k4 s2 p1, >= WINOGRAD_MIN_CHANNELS)."""
  return layers.conv(x, kernel, stride, padding)


def conv_candidate_layers_direct(x, kernel, stride, padding):
  """gans.layers' direct form: XLA's strided conv; custom backward: input grad by the direct conv_transpose."""
  if (stride, padding) == (1, 0) and x.shape[1] == kernel.shape[0]:
    return layers.conv(x, kernel, stride, padding)  # the whole-input matmul either way
  return layers._conv(x, kernel, (stride, stride), (padding, padding), None)


def conv_candidate_space_to_depth(x, kernel, stride, padding):
  """Space-to-depth + stride-1 conv (conv_stride1's gradients, JAX autodiff)."""
  return conv_space_to_depth(x, kernel, (stride, stride), (padding, padding), None)


def conv_candidate_im2col(x, kernel, stride, padding):
  """im2col (k*k strided slices) and one matmul; autodiff gives col2im and matmuls."""
  n, h, w, c_in = x.shape
  k, _, _, c_out = kernel.shape
  out = (h + 2 * padding - k) // stride + 1
  x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  span = (out - 1) * stride + 1
  cols = jnp.concatenate([x[:, a:a + span:stride, b:b + span:stride] for a in range(k) for b in range(k)], -1)
  return jnp.dot(cols.reshape(-1, k * k * c_in), kernel.reshape(-1, c_out)).reshape(n, out, out, c_out)


CONV_CANDIDATES = {
    "xla_strided_conv": conv_candidate_xla,
    "layers.conv": conv_candidate_layers,
    "layers_direct": conv_candidate_layers_direct,
    "space_to_depth": conv_candidate_space_to_depth,
    "im2col+matmul": conv_candidate_im2col,
}


def _time_call(fn: Callable[[], object], iterations: int) -> float:
  start = time.perf_counter()
  for _ in range(iterations):
    fn()
  return (time.perf_counter() - start) / iterations


def _interleaved(runners: dict, repeats: int, iterations: int) -> dict:
  """Runs every runner once per round, `repeats` rounds; returns name -> list of seconds per call."""
  for run in runners.values():
    run()  # compile / warm up
  times = {name: [] for name in runners}
  for _ in range(repeats):
    for name, run in runners.items():
      times[name].append(_time_call(run, iterations))
  return times


def _median_ratio(numerators, denominators):
  return statistics.median(a / b for a, b in zip(numerators, denominators))


def benchmark_ops(transposed: bool, batch_size: int, repeats: int, iterations: int, skip: tuple[str, ...],
                  compiler_options: Optional[dict]) -> None:
  """Times forward + gradients (input and kernel) of each candidate at each DCGAN layer shape."""
  shapes = DCGAN_GENERATOR_LAYERS if transposed else DCGAN_DISCRIMINATOR_LAYERS
  candidates = CANDIDATES if transposed else CONV_CANDIDATES
  baseline = "lax.conv_transpose" if transposed else "xla_strided_conv"
  rng = np.random.default_rng(0)
  for size, c_in, c_out, stride, padding in shapes:
    if transposed:
      out = (size - 1) * stride - 2 * padding + 4
    else:
      out = (size + 2 * padding - 4) // stride + 1
    x = jnp.asarray(rng.standard_normal((batch_size, size, size, c_in)), jnp.float32)
    kernel = jnp.asarray(0.02 * rng.standard_normal((4, 4, c_in, c_out)), jnp.float32)
    y_grad = jnp.asarray(rng.standard_normal((batch_size, out, out, c_out)), jnp.float32)
    expected = None
    runners = {}
    for name, candidate in candidates.items():
      if name in skip:
        continue
      # value_and_grad: the loss needs the forward output, which a plain grad of this linear
      # loss would let XLA drop as dead code (torch always runs its forward).
      grad_fn = jax.jit(jax.value_and_grad(lambda x, k, g, c=candidate: jnp.vdot(c(x, k, stride, padding), g),
                                           (0, 1)), compiler_options=compiler_options)
      _, grads = grad_fn(x, kernel, y_grad)
      if expected is None:
        expected = grads
      for got, want in zip(grads, expected):  # a fast wrong answer is not a candidate
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * float(jnp.abs(want).max()))
      runners[name] = lambda f=grad_fn: jax.block_until_ready(f(x, kernel, y_grad))
    if torch is not None:
      torch_x = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).requires_grad_()
      if transposed:
        torch_w = torch.from_numpy(np.asarray(layers.flax_conv_transpose_kernel_to_torch(kernel)).copy())
        torch_op = functools.partial(torch.nn.functional.conv_transpose2d, stride=stride, padding=padding)
      else:
        torch_w = torch.from_numpy(np.asarray(kernel).transpose(3, 2, 0, 1).copy())
        torch_op = functools.partial(torch.nn.functional.conv2d, stride=stride, padding=padding)
      torch_w.requires_grad_()
      torch_g = torch.from_numpy(np.asarray(y_grad).transpose(0, 3, 1, 2).copy())

      def run_torch():
        torch_x.grad = torch_w.grad = None
        torch_op(torch_x, torch_w).backward(torch_g)
      runners["torch"] = run_torch
    times = _interleaved(runners, repeats, iterations)
    print(f"\n{'conv_transpose' if transposed else 'conv'} {size}x{size}x{c_in} -> {out}x{out}x{c_out} "
          f"(k4 s{stride} p{padding}, batch {batch_size}), forward+backward, "
          f"median of {repeats} interleaved rounds (load average {os.getloadavg()[0]:.1f}):")
    for name, seconds in times.items():
      line = f"  {name:24s} {statistics.median(seconds) * 1e3:9.2f} ms"
      if baseline in times:
        line += f"   {baseline}/this {_median_ratio(times[baseline], seconds):6.2f}x"
      if "torch" in times:
        line += f"   torch/this {_median_ratio(times['torch'], seconds):6.2f}x"
      print(line, flush=True)


def _with_torch_threads(step, num_threads):
  """Runs `step` with torch limited to num_threads, then restores the default (for interleaving)."""
  def run():
    default = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
      return step()
    finally:
      torch.set_num_threads(default)
  return run


def benchmark_dcgan(resolution: int, batch_size: int, base_channels: int, repeats: int, iterations: int,
                    jax_variants: tuple[str, ...], reuse_fake: bool, torch_threads: tuple[int, ...]) -> None:
  """Alternates the torch step and each JAX variant's step; reports images/s and JAX/torch speed ratios.

  "torch" runs with torch's default threads (all cores); each of torch_threads adds a
  "torch_<n>threads" runner with its own networks, for reference (ratios are against "torch").
  """
  import jax_dcgan  # benchmarks/jax_dcgan.py
  runners = {}
  if torch is not None:
    import torch_dcgan  # benchmarks/torch_dcgan.py
    runners["torch"] = torch_dcgan.make_torch_dcgan_step(resolution, batch_size, base_channels=base_channels,
                                                         reuse_fake=reuse_fake)
    for num_threads in torch_threads:
      runners[f"torch_{num_threads}threads"] = _with_torch_threads(
          torch_dcgan.make_torch_dcgan_step(resolution, batch_size, base_channels=base_channels,
                                            reuse_fake=reuse_fake), num_threads)
  for name in jax_variants:
    # "fast+options": the fast network compiled with gans.layers.xla_cpu_compiler_options().
    variant, _, options = name.partition("+")
    runners[f"jax_{name}"] = jax_dcgan.make_jax_dcgan_step(
        resolution, batch_size, base_channels=base_channels, variant=variant, reuse_fake=reuse_fake,
        compiler_options=layers.xla_cpu_compiler_options() if options == "options" else None)
  times = _interleaved(runners, repeats, iterations)
  print(f"\nDCGAN step {resolution}x{resolution} batch {batch_size} base_channels {base_channels} "
        f"reuse_fake={reuse_fake}, median of {repeats} interleaved rounds of {iterations} steps "
        f"(load average {os.getloadavg()[0]:.1f}):")
  for name, seconds in times.items():
    median = statistics.median(seconds)
    line = f"  {name:16s} {median * 1e3:9.1f} ms/step {batch_size / median:8.1f} images/s"
    if "torch" in times and not name.startswith("torch"):
      line += f"   speed vs torch {_median_ratio(times['torch'], seconds):.3f}x"
    print(line, flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("which", choices=("layers", "convs", "dcgan"))
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--iterations", type=int, default=1, help="calls per timed sample")
  parser.add_argument("--xla_cpu_options", action="store_true",
                      help="layers/convs: compile with gans.layers.xla_cpu_compiler_options()")
  parser.add_argument("--skip", default="", help="comma-separated candidate names to leave out (layers)")
  parser.add_argument("--resolution", type=int, default=64)
  parser.add_argument("--base_channels", type=int, default=64)
  parser.add_argument("--jax_variants", default="fast+options", help="comma-separated jax_dcgan variants: fast, flax, each optionally +options "
                      "(compiled with gans.layers.xla_cpu_compiler_options())")
  parser.add_argument("--torch_threads", default="",
                      help="dcgan: comma-separated thread counts for extra torch runners, e.g. 1")
  parser.add_argument("--regenerate_fake", action="store_true",
                      help="run G forward again for the G step in both frameworks")
  args = parser.parse_args()
  print(f"jax {jax.__version__} devices {jax.devices()} XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
        + (f" torch {torch.__version__} threads {torch.get_num_threads()}" if torch is not None else
           " (torch not importable)"))
  if args.which in ("layers", "convs"):
    benchmark_ops(args.which == "layers", args.batch_size, args.repeats, args.iterations,
                  tuple(filter(None, args.skip.split(","))),
                  layers.xla_cpu_compiler_options() if args.xla_cpu_options else None)
  else:
    benchmark_dcgan(args.resolution, args.batch_size, args.base_channels, args.repeats, args.iterations,
                    tuple(args.jax_variants.split(",")), not args.regenerate_fake,
                    tuple(int(n) for n in args.torch_threads.split(",") if n))


if __name__ == "__main__":
  main()
