"""StackGAN's upBlock convolutions (nearest 2x upsampling + conv3x3), the two JAX forms and PyTorch's, one by one.

  python benchmarks/stackgan_layers.py --experiment=stackgan_shapes
  python benchmarks/stackgan_layers.py --experiment=stackgan_cub --calls=2

For each upBlock of both generators at the experiment's batch and widths: one jitted forward + gradients (input
and kernel) of the upsampling then `gans.layers.conv` ("plain"), of `gans.layers.nearest_upsample_conv` ("fused",
the form networks.UpBlock uses), and torch's nn.Upsample + conv2d forward + backward, timed in alternating blocks in
one process (medians of 5). Prints one line per layer (milliseconds) and the sums. Needs torch.

Measured (commit f049d46, `--calls=2`, `nice -n 5`, load average 7-8 on the 2-core machine, so rough; PyTorch's two
threads collapse at that load): stackgan_shapes' six upBlocks, plain 756 ms, fused 268 ms (every layer 1.8-6x).
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
from gans.variants.text2image import networks

flags.DEFINE_string("experiment", "stackgan_shapes", "A StackGAN experiment.")
flags.DEFINE_integer("calls", 5, "Calls per timing block.")
FLAGS = flags.FLAGS


def up_block_shapes(config):
  """[(name, input side, C_in, C_out)] of STAGE1_G's and STAGE2_G's upBlocks (networks.py's sizing rules)."""
  model = config.model
  shapes, side, c_in = [], 4, model.g_channels * 8
  for i in range(networks.doublings(model.stage1_resolution, "stage1_resolution")):
    c_out = model.g_channels * 8 // 2 ** (i + 1)
    shapes.append((f"STAGE1_G upsample{i + 1}", side, c_in, c_out))
    side, c_in = 2 * side, c_out
  side, c_in = model.stage1_resolution // 4, model.g_channels * 4
  ups = 2 + networks.doublings(config.data.resolution, "resolution") - networks.doublings(model.stage1_resolution, "")
  for i in range(ups):
    c_out = max(1, model.g_channels * 2 // 2 ** i)
    shapes.append((f"STAGE2_G upsample{i + 1}", side, c_in, c_out))
    side, c_in = 2 * side, c_out
  return shapes


def jax_layer(form, x, kernel):
  y_grad = jnp.ones(jax.eval_shape(form, x, kernel).shape)
  step = jax.jit(jax.value_and_grad(lambda x, k: jnp.vdot(form(x, k), y_grad), (0, 1)),
                 compiler_options=layers.xla_cpu_compiler_options())
  return lambda: jax.block_until_ready(step(x, kernel))


def torch_layer(x, kernel):
  import torch  # pylint: disable=import-outside-toplevel
  x = torch.tensor(np.asarray(x).transpose(0, 3, 1, 2).copy(), requires_grad=True)
  weight = torch.tensor(np.asarray(kernel).transpose(3, 2, 0, 1).copy(), requires_grad=True)

  def step():
    x.grad, weight.grad = None, None
    y = torch.nn.functional.conv2d(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"), weight,
                                   padding=1)
    y.backward(torch.ones_like(y))
  return step


def main(argv) -> None:
  del argv
  config = experiments.get_config(FLAGS.experiment)
  batch = config.train.batch_size
  forms = {"plain": lambda x, k: layers.conv(layers.upsample_nearest(x), k, 1, 1),
           "fused": lambda x, k: layers.nearest_upsample_conv(x, k, 1)}
  totals = {name: 0.0 for name in (*forms, "torch")}
  for name, side, c_in, c_out in up_block_shapes(config):
    x = jax.random.normal(jax.random.key(0), (batch, side, side, c_in))
    kernel = 0.02 * jax.random.normal(jax.random.key(1), (3, 3, c_in, c_out))
    steps = {form: jax_layer(fn, x, kernel) for form, fn in forms.items()}
    steps["torch"] = torch_layer(x, kernel)
    times = {form: 1e3 * timing.median_seconds(step, FLAGS.calls) for form, step in steps.items()}
    for form, ms in times.items():
      totals[form] += ms
    print(f"{name:20s} {side:3d}x{side:<3d} {c_in:4d} -> {c_out:<4d} " +
          "  ".join(f"{form} {ms:7.2f}" for form, ms in times.items()), flush=True)
  print("total" + " " * 36 + "  ".join(f"{form} {ms:7.2f}" for form, ms in totals.items()))


if __name__ == "__main__":
  app.run(main)
