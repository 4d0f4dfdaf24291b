"""Forward + backward speed of the 3D-GAN's 3D convs: gans.layers3d's space-to-depth forms against lax's.

  python benchmarks/conv3d.py [--batch_size=8] [--rounds=5] [--shapes=cpu|paper|all]

For each layer shape of the 3D-GAN (kernel 4, stride 2, padding 1), times one jitted call of
grad(sum(f(x, kernel) * cotangent)) with respect to x and kernel (the forward and both gradients, what
a training step runs), for f in {conv3d, conv_transpose3d} x {space_to_depth, lax}, interleaved (every
candidate once per round, `rounds` rounds) in one process, compiled with gans.layers.xla_cpu_compiler_options()
as the trainer does; prints medians and the ratio lax / space_to_depth (> 1: the fast form is faster).
With torch importable, also torch's conv3d / conv_transpose3d forward + backward at the same shape.

  python benchmarks/conv3d.py --passes [--shapes=paper --batch_size=8]

times the three passes apart instead, the space-to-depth form against PyTorch's own kernels in
channels_last_3d memory (the reference's faster form here): the forward, the input gradient and the kernel
gradient (aten.convolution_backward with one output asked for), interleaved, with the ratio torch / ours per
pass (> 1: ours faster) and the sums over the layers. This is where a whole step's gap to PyTorch comes from.
"""
import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import timing  # noqa: E402
from gans import layers, layers3d  # noqa: E402

try:
  import torch
except ImportError:  # optional reference
  torch = None

# (input size, C_in, C_out) of the transposed convs; the discriminator's strided convs are their mirror
# (input 2 * size, C_out -> C_in).
PAPER_LAYERS = ((4, 512, 256), (8, 256, 128), (16, 128, 64), (32, 64, 1))  # 64^3 output
CPU_LAYERS = ((4, 128, 64), (8, 64, 32), (16, 32, 1))  # 32^3, the paper's widths / 4 (twice gan3d_shapes')


def _jax_candidate(op, form, x, kernel, cotangent):
  def loss(a, k, c):  # the cotangent is an argument: as a closed-over constant XLA would fold it for seconds
    return jnp.vdot(op(a, k, form=form), c)
  fn = jax.jit(jax.grad(loss, argnums=(0, 1)), compiler_options=layers.xla_cpu_compiler_options())
  jax.block_until_ready(fn(x, kernel, cotangent))  # compile
  return lambda: jax.block_until_ready(fn(x, kernel, cotangent))


def _torch_candidate(transposed, x_shape, c_in, c_out):
  x = torch.randn((x_shape[0], x_shape[4]) + x_shape[1:4], requires_grad=True)
  w = torch.randn((c_in, c_out, 4, 4, 4) if transposed else (c_out, c_in, 4, 4, 4), requires_grad=True)
  op = torch.nn.functional.conv_transpose3d if transposed else torch.nn.functional.conv3d

  def step():
    y = op(x, w, stride=2, padding=1)
    y.backward(torch.ones_like(y))
    return y
  return step


def _layer(transposed: bool, size: int, c_in: int, c_out: int, batch_size: int):
  """(op, x shape, kernel shape, name) of a transposed layer (size^3, c_in -> c_out) or of its mirror conv."""
  if transposed:
    return (layers3d.conv_transpose3d, (batch_size, size, size, size, c_in), (4, 4, 4, c_in, c_out),
            f"conv_transpose3d {size}^3 {c_in}->{c_out}")
  return (layers3d.conv3d, (batch_size, 2 * size, 2 * size, 2 * size, c_out), (4, 4, 4, c_out, c_in),
          f"conv3d {2 * size}^3 {c_out}->{c_in}")


def _jax_passes(op, x, kernel, cotangent) -> dict:
  """The space-to-depth form's forward, input gradient and kernel gradient, each jitted alone."""
  fast = lambda a, k: op(a, k, form="space_to_depth")
  passes = {"forward": fast,  # each gradient alone: XLA drops the other half of the custom VJP's backward pass
            "input_grad": lambda a, k, c: jax.vjp(lambda a: fast(a, k), a)[1](c)[0],
            "kernel_grad": lambda a, k, c: jax.vjp(lambda k: fast(a, k), k)[1](c)[0]}
  args = {"forward": (x, kernel), "input_grad": (x, kernel, cotangent), "kernel_grad": (x, kernel, cotangent)}
  jitted = {p: jax.jit(f, compiler_options=layers.xla_cpu_compiler_options()) for p, f in passes.items()}
  return {p: (lambda p=p: jax.block_until_ready(jitted[p](*args[p]))) for p in passes}


def _torch_passes(transposed: bool, x_NDHWC, kernel_DHWIO, cotangent_NDHWC) -> dict:
  """PyTorch's forward and the two halves of aten.convolution_backward, channels_last_3d, same values."""
  memory = torch.channels_last_3d
  as_ncdhw = lambda a: torch.from_numpy(np.array(a)).permute(0, 4, 1, 2, 3).contiguous(memory_format=memory)
  x, cotangent = as_ncdhw(x_NDHWC), as_ncdhw(cotangent_NDHWC)
  order = (3, 4, 0, 1, 2) if transposed else (4, 3, 0, 1, 2)  # (C_in, C_out, k...) / (C_out, C_in, k...)
  w = torch.from_numpy(np.array(kernel_DHWIO)).permute(*order).contiguous(memory_format=memory)
  op = torch.nn.functional.conv_transpose3d if transposed else torch.nn.functional.conv3d
  backward = lambda mask: torch.ops.aten.convolution_backward(cotangent, x, w, None, [2] * 3, [1] * 3, [1] * 3,
                                                              transposed, [0] * 3, 1, mask)
  return {"forward": lambda: op(x, w, stride=2, padding=1),
          "input_grad": lambda: backward([True, False, False]),
          "kernel_grad": lambda: backward([False, True, False])}


def benchmark_passes(shapes, batch_size: int, rounds: int) -> None:
  if torch is None:
    raise SystemExit("--passes compares with PyTorch: pip install torch")
  key = jax.random.key(0)
  totals = {}
  for size, c_in, c_out in shapes:
    for transposed in (True, False):
      op, x_shape, kernel_shape, name = _layer(transposed, size, c_in, c_out, batch_size)
      x = jax.random.normal(key, x_shape)
      kernel = 0.05 * jax.random.normal(key, kernel_shape)
      cotangent = jax.random.normal(key, jax.eval_shape(lambda a, k: op(a, k, form="lax"), x, kernel).shape)
      ours, theirs = _jax_passes(op, x, kernel, cotangent), _torch_passes(transposed, x, kernel, cotangent)
      with torch.no_grad():
        medians = timing.interleaved_medians({**{("ours", p): f for p, f in ours.items()},
                                              **{("torch", p): f for p, f in theirs.items()}}, rounds, 1)
      for k, t in medians.items():
        totals[k] = totals.get(k, 0.0) + t
      shown = "  ".join(f"{p} {1e3 * medians['ours', p]:.1f} / {1e3 * medians['torch', p]:.1f} ms "
                        f"({medians['torch', p] / medians['ours', p]:.2f})" for p in ours)
      print(f"{name:34s} batch {batch_size}, ours / torch: {shown}", flush=True)
  shown = "  ".join(f"{p} {1e3 * totals['ours', p]:.0f} / {1e3 * totals['torch', p]:.0f} ms "
                    f"({totals['torch', p] / totals['ours', p]:.2f})" for p in ("forward", "input_grad", "kernel_grad"))
  print(f"{'sum over the layers':34s} batch {batch_size}, ours / torch: {shown}")


def benchmark(shapes, batch_size: int, rounds: int) -> None:
  key = jax.random.key(0)
  for size, c_in, c_out in shapes:
    for transposed in (True, False):
      op, x_shape, kernel_shape, name = _layer(transposed, size, c_in, c_out, batch_size)
      x = jax.random.normal(key, x_shape)
      kernel = 0.05 * jax.random.normal(key, kernel_shape)
      out_shape = jax.eval_shape(lambda a, k: op(a, k, form="lax"), x, kernel).shape
      cotangent = jax.random.normal(key, out_shape)
      candidates = {form: _jax_candidate(op, form, x, kernel, cotangent) for form in layers3d.FORMS}
      if torch is not None:
        candidates["torch"] = _torch_candidate(transposed, x_shape, *kernel_shape[3:])
      medians = timing.interleaved_medians(candidates, rounds, 1, warmups=0)  # the JAX candidates compiled
      shown = " ".join(f"{form}={1e3 * t:.1f}ms" for form, t in medians.items())
      ratio = medians["lax"] / medians["space_to_depth"]
      print(f"{name:34s} batch {batch_size}: {shown}  lax/space_to_depth={ratio:.2f}x", flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--shapes", choices=("cpu", "paper", "all"), default="cpu")
  parser.add_argument("--passes", action="store_true", help="forward, input and kernel gradient apart, "
                      "against PyTorch in channels_last_3d")
  args = parser.parse_args()
  shapes = {"cpu": CPU_LAYERS, "paper": PAPER_LAYERS, "all": CPU_LAYERS + PAPER_LAYERS}[args.shapes]
  print(f"backend {jax.default_backend()}, {os.cpu_count()} CPUs, torch {'yes' if torch else 'not installed'}")
  (benchmark_passes if args.passes else benchmark)(shapes, args.batch_size, args.rounds)


if __name__ == "__main__":
  main()
