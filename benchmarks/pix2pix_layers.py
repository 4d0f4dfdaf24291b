"""Every convolution of a pix2pix step (U-Net generator, 70x70 PatchGAN), ours against PyTorch's, one by one.

  python benchmarks/pix2pix_layers.py --experiment=pix2pix_edges2fashion
  python benchmarks/pix2pix_layers.py --experiment=pix2pix_facades --calls=3

For each layer: one jitted forward + gradients (input and kernel) of `gans.layers.conv` / `conv_transpose`
at the experiment's shapes and batch, and torch's conv2d / conv_transpose2d forward + backward at the same
shapes, timed in alternating blocks in one process (medians of 5). Prints one line per layer and the sums;
the per-layer view is how the pix2pix step's slow layers were found (README, pix2pix and CycleGAN). Needs torch.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

import experiments
from benchmarks import timing
from gans import layers
from gans.variants.image2image import networks

flags.DEFINE_string("experiment", "pix2pix_edges2fashion", "A pix2pix experiment with a U-Net generator.")
flags.DEFINE_integer("calls", 10, "Calls per timing block.")
FLAGS = flags.FLAGS


def layer_shapes(config):
  """[(name, transposed, input side, C_in, C_out, stride)]: G's downs and ups, then D's convs (kernel 4, padding 1)."""
  model, data = config.model, config.data
  side, channels = data.get("crop_size", 0) or data.resolution, data.channels
  levels = networks.unet_levels(channels, model.num_downs, model.ngf, False)
  shapes, size, c_in = [], side, channels
  for index, (_, inner, _) in enumerate(levels):  # down path: level i maps its input to `inner` channels
    shapes.append((f"G down {index}", False, size, c_in, inner, 2))
    size, c_in = size // 2, inner
  for index, (outer, inner, _) in reversed(list(enumerate(levels))):  # up path: skip-concatenated below
    shapes.append((f"G up {index}", True, size, inner if index == len(levels) - 1 else 2 * inner, outer, 2))
    size *= 2
  c_in, width, size = 2 * channels, model.ndf, side
  for index in range(model.n_layers_d):
    shapes.append((f"D conv {index}", False, size, c_in, width, 2))
    size, c_in, width = size // 2, width, min(2 * width, 8 * model.ndf)
  shapes.append(("D conv s1", False, size, c_in, width, 1))
  shapes.append(("D output", False, size - 1, width, 1, 1))
  return shapes


def main(_):
  import torch
  config = experiments.get_config(FLAGS.experiment)
  batch = config.train.batch_size
  rng = np.random.default_rng(0)
  totals = [0.0, 0.0]
  for name, transposed, size, c_in, c_out, stride in layer_shapes(config):
    x = jnp.asarray(rng.standard_normal((batch, size, size, c_in)), jnp.float32)
    kernel = jnp.asarray(0.05 * rng.standard_normal((4, 4, c_in, c_out)), jnp.float32)
    op = layers.conv_transpose if transposed else layers.conv
    y_grad = jnp.asarray(rng.standard_normal(jax.eval_shape(lambda x, k: op(x, k, stride, 1), x, kernel).shape),
                         jnp.float32)
    grads = jax.jit(jax.grad(lambda x, k, c: jnp.vdot(op(x, k, stride, 1), c), argnums=(0, 1)),
                    compiler_options=layers.xla_cpu_compiler_options())
    ours = lambda: jax.block_until_ready(grads(x, kernel, y_grad))
    x_t = torch.randn(batch, c_in, size, size, requires_grad=True)
    w_t = torch.randn(*((c_in, c_out) if transposed else (c_out, c_in)), 4, 4, requires_grad=True)
    torch_op = torch.nn.functional.conv_transpose2d if transposed else torch.nn.functional.conv2d
    c_t = torch.randn(*torch_op(x_t, w_t, stride=stride, padding=1).shape)

    def theirs():
      x_t.grad = w_t.grad = None
      (torch_op(x_t, w_t, stride=stride, padding=1) * c_t).sum().backward()

    ours_s, theirs_s = timing.median_seconds(ours, FLAGS.calls), timing.median_seconds(theirs, FLAGS.calls)
    totals[0] += ours_s
    totals[1] += theirs_s
    print(f"{name:10s} {'transposed' if transposed else 'conv':10s} {size:4d}^2 {c_in:5d} -> {c_out:4d} s{stride}: "
          f"ours {ours_s * 1e3:8.2f} ms, PyTorch {theirs_s * 1e3:8.2f} ms, ratio {theirs_s / ours_s:5.2f}", flush=True)
  print(f"sum: ours {totals[0] * 1e3:.1f} ms, PyTorch {totals[1] * 1e3:.1f} ms, ratio {totals[1] / totals[0]:.2f}")


if __name__ == "__main__":
  app.run(main)
