"""gans/cpu_kernels' C++ kernels against the XLA forms they replace, at gan3d_shapes' layers, side by side.

  python benchmarks/cpu_kernels.py [--layers=shapes|paper] [--batch_size=32] [--blocks=7] [--calls=3]

For each layer of gan3d_shapes (the shapes of benchmarks/conv3d_kernel_grad.py) or of the paper's 64^3
networks (gan3d_modelnet10), after the space-to-depth, times in alternating blocks, one process:

  * the stride-1 2x2x2-tap conv's kernel gradient: `cpu_kernels.conv_kernel_grad` against the depth-taps 2D
    convs' kernel gradient that XLA:CPU computes behind transposes (layers3d with CPU_KERNEL_GRAD_MAX_CHANNELS 0);
  * where the layer is a strided conv to a multiple of 16 channels, its forward: `cpu_kernels.conv3d_stride2`
    against the space-to-depth form (XLA's pad + space-to-depth loop, depth-tap 2D convs);
  * where the layer is a strided conv on an input of at least 16 channels, the pad + space-to-depth in front of
    it: `cpu_kernels.space_to_depth_padded` against XLA's loop (`layers3d._pad_space_to_depth_lax`);
  * where the layer is a transposed conv to a multiple of 16 channels (the same shapes as the mirrored strided
    conv's input gradient), its forward: `cpu_kernels.conv_transpose3d_stride2` against the sub-voxel form
    (layers3d with CPU_TRANSPOSED_MAX_CHANNELS 0: depth-tap 2D convs, depth-to-space, crop).

Each operand first goes through a batch-norm-like prologue (scale, shift, ReLU), which XLA fuses into its own
forms and must write out before a custom call, so both sides pay for what the step pays. Prints one JSON line
per measurement: the medians and xla_over_cpu (above 1: the C++ kernel is faster). Each form is checked
against the other first. Threads as in the step (XLA's pool); for one core:

  XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" taskset -c 0 python ...
"""
import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import conv3d_kernel_grad, timing  # noqa: E402
from gans import cpu_kernels, layers, layers3d  # noqa: E402


# The paper's networks (gan3d_modelnet10) in the form of conv3d_kernel_grad.SHAPES_LAYERS: (name, input side after
# the space-to-depth, C_in, C_out, padding per side).
PAPER_LAYERS = (("D 64^3 1->64", 33, 8, 64, 0), ("D 32^3 64->128", 17, 512, 128, 0),
                ("D 16^3 128->256", 9, 1024, 256, 0), ("D 8^3 256->512", 5, 2048, 512, 0),
                ("G 4^3 512->256", 4, 512, 2048, 1), ("G 8^3 256->128", 8, 256, 1024, 1),
                ("G 16^3 128->64", 16, 128, 512, 1), ("G 32^3 64->1", 32, 64, 8, 1))


def _prologue(x):
  return jnp.maximum(x * 1.1 + 0.1, 0.0)


def _xla_kernel_grad(x, y_grad, padding):
  return conv3d_kernel_grad.depth_taps(_prologue(x), y_grad, padding)


def _cpu_kernel_grad(x, y_grad, padding):
  x_padded = jnp.pad(_prologue(x), ((0, 0),) + tuple(padding) + ((0, 0),))
  return cpu_kernels.conv_kernel_grad(x_padded, y_grad)


_SPACE_TO_DEPTH_LAX = layers3d._pad_space_to_depth_lax  # pylint: disable=protected-access


def _subvoxel_form(x, adjoint_kernel):
  """layers3d's transposed conv as it runs without the C++ kernel (by phases on small inputs)."""
  limit, layers3d.CPU_TRANSPOSED_MAX_CHANNELS = layers3d.CPU_TRANSPOSED_MAX_CHANNELS, 0
  try:
    return layers3d._subvoxel_transposed(_prologue(x), adjoint_kernel, None)  # pylint: disable=protected-access
  finally:
    layers3d.CPU_TRANSPOSED_MAX_CHANNELS = limit


def _compare(name: str, forms: dict, operands: tuple, blocks: int, calls: int) -> None:
  jitted = {form: jax.jit(fn, compiler_options=layers.xla_cpu_compiler_options()) for form, fn in forms.items()}
  outputs = [np.asarray(fn(*operands)) for fn in jitted.values()]
  np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-4 * float(np.max(np.abs(outputs[1]))))
  medians = timing.interleaved_medians({form: (lambda fn=fn: jax.block_until_ready(fn(*operands)))
                                        for form, fn in jitted.items()}, blocks, calls)
  print(json.dumps({"measure": name, **{f"{form}_ms": round(1e3 * t, 3) for form, t in medians.items()},
                    "xla_over_cpu": round(medians["xla"] / medians["cpu"], 2)}), flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--layers", choices=("shapes", "paper"), default="shapes")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--blocks", type=int, default=7)
  parser.add_argument("--calls", type=int, default=3)
  args = parser.parse_args()
  if not cpu_kernels.available():
    raise SystemExit("gans.cpu_kernels could not be built here (see the warning above).")
  for name, side, c_in, c_out, pad in {"shapes": conv3d_kernel_grad.SHAPES_LAYERS, "paper": PAPER_LAYERS}[args.layers]:
    padding = ((pad, pad),) * 3
    x = jax.random.normal(jax.random.key(0), (args.batch_size, side, side, side, c_in))
    out = side + 2 * pad - 1
    y_grad = jax.random.normal(jax.random.key(1), (args.batch_size, out, out, out, c_out))
    if cpu_kernels.conv_kernel_grad_applies(x, y_grad):
      _compare(f"kernel gradient {name}", {"cpu": lambda x, g, p=padding: _cpu_kernel_grad(x, g, p),
                                           "xla": lambda x, g, p=padding: _xla_kernel_grad(x, g, p)},
               (x, y_grad), args.blocks, args.calls)
    source = jax.random.normal(jax.random.key(2), (args.batch_size,) + (2 * (side - 1),) * 3 + (c_in // 8,))
    kernel_s2d = jax.random.normal(jax.random.key(3), (2, 2, 2, c_in, c_out)) * 0.1
    if name.startswith("D") and c_out % cpu_kernels.VECTOR_CHANNELS == 0:  # a strided conv: 8 C_in after s2d
      _compare(f"strided conv forward {name}",
               {"cpu": lambda x, k: layers3d._conv3d_direct(_prologue(x), k, None),  # pylint: disable=protected-access
                "xla": lambda x, k: layers3d._depth_taps_2d(  # pylint: disable=protected-access
                    _SPACE_TO_DEPTH_LAX(_prologue(x)), k, ((0, 0),) * 3, None)},
               (source, kernel_s2d), args.blocks, args.calls)
    if name.startswith("G") and (c_out // 8) % cpu_kernels.VECTOR_CHANNELS == 0:  # 8 C_out: the adjoint kernel
      adjoint_kernel = kernel_s2d * 0.5
      _compare(f"transposed conv forward {name}",
               {"cpu": lambda x, k: layers3d._conv_transpose3d_direct(_prologue(x), k, None),  # pylint: disable=protected-access
                "xla": _subvoxel_form},
               (x, adjoint_kernel), args.blocks, args.calls)
    if name.startswith("D") and c_in >= 8 * cpu_kernels.VECTOR_CHANNELS:
      _compare(f"pad + space-to-depth {name}",
               {"cpu": lambda x: cpu_kernels.space_to_depth_padded(_prologue(x), _SPACE_TO_DEPTH_LAX),
                "xla": lambda x: _SPACE_TO_DEPTH_LAX(_prologue(x))},
               (source,), args.blocks, args.calls)


if __name__ == "__main__":
  main()
