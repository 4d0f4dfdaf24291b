"""The transposed sub-voxel conv of gans/layers3d.py: one conv then a crop, against the conv by output phases.

  XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" taskset -c 0 \
    python benchmarks/conv3d_phases.py [--batch_size=32] [--rounds=9]
  python benchmarks/conv3d_phases.py --shapes=paper --batch_size=8 --rounds=5

conv_transpose3d's forward and conv3d's input gradient are crop(depth_to_space(2x2x2-tap conv, padding 1)),
which computes (D+1)^3 positions of every output phase where D^3 are kept. `layers3d._subvoxel_cropped`
computes the 8 phases apart, D^3 each. This times both forward, jitted apart and interleaved in one process,
at gan3d_shapes' transposed layers (the same shapes as D's input gradients), and prints the medians;
layers3d.PHASES_MAX_SIDE records where the phases won. With --shapes=paper (the paper's transposed layers above
side 4, whose (D + 1)-sided 2D convs are wide enough for Winograd) it times the one conv with XLA's 2D convs
against the one conv with Winograd's F(3, 2) (layers3d.WINOGRAD_MAX_PRODUCTS_PER_OUTPUT).
"""
import argparse
import os
import sys

import jax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import timing  # noqa: E402
from gans import layers, layers3d  # noqa: E402

# (input side, C_in, C_out) of the transposed convs: gan3d_shapes', and the paper's above side 4.
LAYERS = {"cpu": ((4, 64, 32), (8, 32, 16), (16, 16, 1)), "paper": ((8, 256, 128), (16, 128, 64))}


def one_conv(x, adjoint_kernel):
  y = layers3d._depth_taps_2d(x, adjoint_kernel, ((1, 1),) * 3, None)  # pylint: disable=protected-access
  return layers3d.depth_to_space_3d(y)[:, 1:-1, 1:-1, 1:-1]


def by_phases(x, adjoint_kernel):
  return layers3d._subvoxel_cropped(x, adjoint_kernel, None)  # pylint: disable=protected-access


def compiled(fn, x, adjoint_kernel, max_products_per_output=None):
  """fn jitted with the trainer's options, traced with WINOGRAD_MAX_PRODUCTS_PER_OUTPUT set to the given value."""
  saved = layers3d.WINOGRAD_MAX_PRODUCTS_PER_OUTPUT
  if max_products_per_output is not None:
    layers3d.WINOGRAD_MAX_PRODUCTS_PER_OUTPUT = max_products_per_output
  try:
    # A new function object per call: jit's trace cache is keyed on the function, and would reuse the first trace.
    fresh = lambda x, adjoint_kernel: fn(x, adjoint_kernel)  # noqa: E731
    return jax.jit(fresh, compiler_options=layers.xla_cpu_compiler_options()).lower(x, adjoint_kernel).compile()
  finally:
    layers3d.WINOGRAD_MAX_PRODUCTS_PER_OUTPUT = saved


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--rounds", type=int, default=9)
  parser.add_argument("--shapes", choices=tuple(LAYERS), default="cpu")
  args = parser.parse_args()
  key = jax.random.key(0)
  for side, c_in, c_out in LAYERS[args.shapes]:
    x = jax.random.normal(key, (args.batch_size, side, side, side, c_in))
    adjoint_kernel = jax.random.normal(key, (2, 2, 2, c_in, 8 * c_out))
    if args.shapes == "cpu":
      forms = {"one_conv": compiled(one_conv, x, adjoint_kernel), "by_phases": compiled(by_phases, x, adjoint_kernel)}
    else:  # F(4, 2) alone fits none of these convs' odd sides: at 1.6 they keep XLA's conv
      forms = {"one_conv": compiled(one_conv, x, adjoint_kernel, 1.6),
               "one_conv_f3_2": compiled(one_conv, x, adjoint_kernel)}
    steps = {name: (lambda fn=fn: fn(x, adjoint_kernel).block_until_ready()) for name, fn in forms.items()}
    medians = timing.interleaved_medians(steps, args.rounds, 1)
    shown = " ".join(f"{name}={1e3 * t:.1f}ms" for name, t in medians.items())
    other = list(forms)[1]
    print(f"{side}^3 {c_in}->{c_out} batch {args.batch_size}: {shown}  "
          f"one_conv/{other}={medians['one_conv'] / medians[other]:.2f}x", flush=True)


if __name__ == "__main__":
  main()
