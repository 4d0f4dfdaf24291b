"""Forward+backward speed of WaveGAN's 1D layers: gans.layers' fast forms against plain lax, side by side.

    python benchmarks/conv1d.py [--batch_size=16] [--d=64] [--repeats=5] [--xla_cpu_options]

For every layer of WaveGAN's generator (transposed convs, kernel 25, stride 4,
16 -> 16384 samples, widths 16d -> 1) and discriminator (the mirror image,
strided convs), one jit(grad) call (forward + gradients w.r.t. input and
kernel) of gans.layers.conv_transpose1d_same / conv1d_same and of the same
operator in plain lax (lax.conv_transpose, lax.conv_general_dilated with
padding "SAME"), timed back to back in one process, interleaved (each
candidate once per round), medians over the rounds. The ratio is lax's time
over ours: above 1 means the fast form is faster.
"""
import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gans import layers  # noqa: E402


def wavegan_generator_layers(d: int) -> list[tuple[int, int, int]]:
  """(input length, C_in, C_out) of the five transposed convs of WaveGAN's generator."""
  widths = [16 * d, 8 * d, 4 * d, 2 * d, d, 1]
  return [(16 * 4 ** i, widths[i], widths[i + 1]) for i in range(5)]


def _lax_conv_transpose(x, kernel, stride):
  return jax.lax.conv_transpose(x, kernel[::-1], (stride,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"))


def _lax_conv(x, kernel, stride):
  return jax.lax.conv_general_dilated(x, kernel, (stride,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"))


def _grad_fn(op, options):
  loss = lambda x, kernel: jnp.sum(jnp.square(op(x, kernel, 4)))
  return jax.jit(jax.grad(loss, (0, 1)), compiler_options=options)


def _time(fn, *args) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--d", type=int, default=64, help="WaveGAN's model size d (the paper: 64)")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--xla_cpu_options", action="store_true",
                      help="compile with gans.layers.xla_cpu_compiler_options(), as the trainer does")
  args = parser.parse_args()
  options = layers.xla_cpu_compiler_options() if args.xla_cpu_options else None
  print(f"jax {jax.__version__} on {jax.default_backend()}, batch {args.batch_size}, d {args.d}, "
        f"compiler options: {options or 'none'}")
  print(f"{'layer':<42} {'ours ms':>9} {'lax ms':>9} {'ratio':>6}")
  key = jax.random.key(0)
  cases = []
  for length, c_in, c_out in wavegan_generator_layers(args.d):
    x = jax.random.normal(key, (args.batch_size, length, c_in))
    cases.append((f"G transposed {length}x{c_in} -> {4 * length}x{c_out}",
                  layers.conv_transpose1d_same, _lax_conv_transpose, x, jax.random.normal(key, (25, c_in, c_out))))
  for length, c_in, c_out in reversed(wavegan_generator_layers(args.d)):  # D mirrors G
    x = jax.random.normal(key, (args.batch_size, 4 * length, c_out))
    cases.append((f"D conv {4 * length}x{c_out} -> {length}x{c_in}",
                  layers.conv1d_same, _lax_conv, x, jax.random.normal(key, (25, c_out, c_in))))
  totals = [0.0, 0.0]
  for name, ours, reference, x, kernel in cases:
    fns = [_grad_fn(ours, options), _grad_fn(reference, options)]
    for fn in fns:
      _time(fn, x, kernel)  # compile and warm up
    times = [[], []]
    for _ in range(args.repeats):
      for index, fn in enumerate(fns):
        times[index].append(_time(fn, x, kernel))
    medians = [statistics.median(t) for t in times]
    totals = [total + m for total, m in zip(totals, medians)]
    print(f"{name:<42} {1e3 * medians[0]:9.2f} {1e3 * medians[1]:9.2f} {medians[1] / medians[0]:6.2f}")
  print(f"{'all ten layers':<42} {1e3 * totals[0]:9.2f} {1e3 * totals[1]:9.2f} {totals[1] / totals[0]:6.2f}")


if __name__ == "__main__":
  main()
