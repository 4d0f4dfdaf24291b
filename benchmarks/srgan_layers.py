"""SRGAN's convolutions one by one, ours (gans.layers.conv) against PyTorch's conv2d, on one core.

  taskset -c 0 python benchmarks/srgan_layers.py --experiment=srgan_photos

For every conv of SRResNet and of the discriminator at the experiment's batch and widths: the forward, the input
gradient and the kernel gradient, each jitted alone (ours: a VJP of the one gradient, so XLA drops the forward)
and PyTorch's forward (+ backward to the one tensor that requires a gradient), on one thread, CPU time per call,
the two timed in alternating blocks (medians of 3). PyTorch's gradient columns include its forward: subtract the
forward column to compare gradients alone. Prints one line per layer (milliseconds, ours / PyTorch's). Needs
torch. Measured (commit a8b1c62, loaded machine) in the README's SRResNet and SRGAN section.
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
from absl import app, flags

import experiments
from gans import layers

flags.DEFINE_string("experiment", "srgan_photos", "An SRGAN experiment.")
flags.DEFINE_integer("calls", 5, "Calls per timing block.")
flags.DEFINE_bool("channels_last", True, "PyTorch's tensors in channels_last memory (benchmarks/torch_srgan.py's form).")
flags.DEFINE_string("only", "", "Time only the layers whose name starts with this.")
FLAGS = flags.FLAGS
MODES = ("forward", "input_grad", "kernel_grad")


def conv_shapes(config):
  """[(name, input side, C_in, C_out, kernel, stride, input gradient needed)] of SRResNet's and D's convs."""
  model, side = config.model, config.data.resolution
  lr_side, features = side // 4, model.features
  shapes = [("G head", lr_side, config.data.channels, features, 9, 1, False),
            ("G body (x2B+1)", lr_side, features, features, 3, 1, True),
            ("G upsample 1", lr_side, features, 4 * features, 3, 1, True),
            ("G upsample 2", 2 * lr_side, features, 4 * features, 3, 1, True),
            ("G tail", side, features, config.data.channels, 9, 1, True)]
  c_in = config.data.channels
  for i in range(8):
    width, stride = model.d_features * 2 ** (i // 2), 1 + i % 2
    shapes.append((f"D conv {i}", side, c_in, width, 3, stride, i > 0))
    side, c_in = side // stride, width
  return shapes


def ours(batch, side, c_in, c_out, kernel, stride, mode):
  x = jax.random.normal(jax.random.key(0), (batch, side, side, c_in))
  w = 0.05 * jax.random.normal(jax.random.key(1), (kernel, kernel, c_in, c_out))
  forward = lambda x, w: layers.conv(x, w, stride, kernel // 2)
  y_grad = jnp.ones(jax.eval_shape(forward, x, w).shape)
  fn = {"forward": forward,
        "input_grad": lambda x, w: jax.vjp(lambda x: forward(x, w), x)[1](y_grad),
        "kernel_grad": lambda x, w: jax.vjp(lambda w: forward(x, w), w)[1](y_grad)}[mode]
  compiled = jax.jit(fn, compiler_options=layers.xla_cpu_compiler_options()).lower(x, w).compile()
  return lambda: jax.block_until_ready(compiled(x, w))


def torch_conv(batch, side, c_in, c_out, kernel, stride, mode):
  import torch  # pylint: disable=import-outside-toplevel
  memory = torch.channels_last if FLAGS.channels_last else torch.contiguous_format
  x = torch.randn(batch, c_in, side, side).to(memory_format=memory).requires_grad_(mode == "input_grad")
  w = (0.05 * torch.randn(c_out, c_in, kernel, kernel)).to(memory_format=memory).requires_grad_(mode == "kernel_grad")

  def step():
    y = torch.nn.functional.conv2d(x, w, stride=stride, padding=kernel // 2)
    if mode != "forward":
      y.backward(torch.ones_like(y).to(memory_format=memory))
  return step


def cpu_ms(step, calls: int) -> float:
  start = time.process_time()
  for _ in range(calls):
    step()
  return (time.process_time() - start) / calls * 1e3


def main(argv) -> None:
  del argv
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(1)
  config = experiments.get_config(FLAGS.experiment)
  batch = config.train.batch_size
  for name, side, c_in, c_out, kernel, stride, input_grad in conv_shapes(config):
    if not name.startswith(FLAGS.only):
      continue
    cells = []
    for mode in MODES:
      if mode == "input_grad" and not input_grad:
        cells.append(f"{mode} -")
        continue
      steps = [make(batch, side, c_in, c_out, kernel, stride, mode) for make in (ours, torch_conv)]
      times = [[], []]
      for step in steps:
        step()
        step()
      for _ in range(3):
        for i, step in enumerate(steps):
          times[i].append(cpu_ms(step, FLAGS.calls))
      cells.append(f"{mode} {statistics.median(times[0]):6.2f} / {statistics.median(times[1]):6.2f}")
    print(f"{name:15s} {side:3d}x{side:<3d} {c_in:4d} -> {c_out:<4d} s{stride}  " + "  ".join(cells), flush=True)


if __name__ == "__main__":
  app.run(main)
