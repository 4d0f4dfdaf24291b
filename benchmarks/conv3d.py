"""Forward + backward speed of the 3D-GAN's 3D convs: gans.layers3d's space-to-depth forms against lax's.

  python benchmarks/conv3d.py [--batch_size=8] [--rounds=5] [--shapes=cpu|paper|all]

For each layer shape of the 3D-GAN (kernel 4, stride 2, padding 1), times one jitted call of
grad(sum(f(x, kernel) * cotangent)) with respect to x and kernel (the forward and both gradients, what
a training step runs), for f in {conv3d, conv_transpose3d} x {space_to_depth, lax}, interleaved (every
candidate once per round, `rounds` rounds) in one process, compiled with gans.layers.xla_cpu_compiler_options()
as the trainer does; prints medians and the ratio lax / space_to_depth (> 1: the fast form is faster).
With torch importable, also torch's conv3d / conv_transpose3d forward + backward at the same shape.
"""
import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gans import layers, layers3d  # noqa: E402

try:
  import torch
except ImportError:  # optional reference
  torch = None

# (input size, C_in, C_out) of the transposed convs; the discriminator's strided convs are their mirror
# (input 2 * size, C_out -> C_in).
PAPER_LAYERS = ((4, 512, 256), (8, 256, 128), (16, 128, 64), (32, 64, 1))  # 64^3 output
CPU_LAYERS = ((4, 128, 64), (8, 64, 32), (16, 32, 1))  # 32^3, the paper's widths / 4 (twice gan3d_shapes')


def _timed(fn, args) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - start


def _jax_candidate(op, form, x, kernel, cotangent):
  def loss(a, k, c):  # the cotangent is an argument: as a closed-over constant XLA would fold it for seconds
    return jnp.vdot(op(a, k, form=form), c)
  fn = jax.jit(jax.grad(loss, argnums=(0, 1)), compiler_options=layers.xla_cpu_compiler_options())
  jax.block_until_ready(fn(x, kernel, cotangent))  # compile
  return fn, (x, kernel, cotangent)


def _torch_candidate(transposed, x_shape, c_in, c_out):
  x = torch.randn((x_shape[0], x_shape[4]) + x_shape[1:4], requires_grad=True)
  w = torch.randn((c_in, c_out, 4, 4, 4) if transposed else (c_out, c_in, 4, 4, 4), requires_grad=True)
  op = torch.nn.functional.conv_transpose3d if transposed else torch.nn.functional.conv3d

  def step():
    y = op(x, w, stride=2, padding=1)
    y.backward(torch.ones_like(y))
    return y
  return step, ()


def benchmark(shapes, batch_size: int, rounds: int) -> None:
  key = jax.random.key(0)
  for size, c_in, c_out in shapes:
    for transposed in (True, False):
      if transposed:
        x_shape, kernel_shape, op, name = (batch_size, size, size, size, c_in), (4, 4, 4, c_in, c_out), \
            layers3d.conv_transpose3d, f"conv_transpose3d {size}^3 {c_in}->{c_out}"
      else:
        x_shape, kernel_shape, op, name = (batch_size, 2 * size, 2 * size, 2 * size, c_out), \
            (4, 4, 4, c_out, c_in), layers3d.conv3d, f"conv3d {2 * size}^3 {c_out}->{c_in}"
      x = jax.random.normal(key, x_shape)
      kernel = 0.05 * jax.random.normal(key, kernel_shape)
      out_shape = jax.eval_shape(lambda a, k: op(a, k, form="lax"), x, kernel).shape
      cotangent = jax.random.normal(key, out_shape)
      candidates = {form: _jax_candidate(op, form, x, kernel, cotangent) for form in layers3d.FORMS}
      if torch is not None:
        candidates["torch"] = _torch_candidate(transposed, x_shape, *kernel_shape[3:])
      times = {form: [] for form in candidates}
      for _ in range(rounds):
        for form, (fn, args) in candidates.items():
          times[form].append(_timed(fn, args))
      medians = {form: statistics.median(t) for form, t in times.items()}
      shown = " ".join(f"{form}={1e3 * t:.1f}ms" for form, t in medians.items())
      ratio = medians["lax"] / medians["space_to_depth"]
      print(f"{name:34s} batch {batch_size}: {shown}  lax/space_to_depth={ratio:.2f}x", flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--shapes", choices=("cpu", "paper", "all"), default="cpu")
  args = parser.parse_args()
  shapes = {"cpu": CPU_LAYERS, "paper": PAPER_LAYERS, "all": CPU_LAYERS + PAPER_LAYERS}[args.shapes]
  print(f"backend {jax.default_backend()}, {os.cpu_count()} CPUs, torch {'yes' if torch else 'not installed'}")
  benchmark(shapes, args.batch_size, args.rounds)


if __name__ == "__main__":
  main()
