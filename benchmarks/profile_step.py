"""Where an experiment's jitted training step spends its time: XLA:CPU's own per-operation trace.

  XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true python benchmarks/profile_step.py --experiment=srgan_photos

Builds the step as benchmarks/train_step.py does (the trainer's jitted step on a synthetic batch), traces
--steps calls with jax.profiler, reads the trace through xprof's converter and prints the operations that took
longest per step with their HLO (shape, window, the JAX op that emitted them), then the sum per kind
(convolution, dot, fusion, ...). Without the XLA flag the trace holds no per-operation events (it says so).
On a shared machine pin it to one core (`taskset -c 0`): other processes then stretch every operation alike,
so the shares stay comparable. This is how SRGAN's step was split (README, SRResNet and SRGAN).
"""
import collections
import glob
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
from absl import app, flags

import experiments
from benchmarks import train_step

flags.DEFINE_integer("steps", 3, "Traced calls of the step (after two untraced ones).")
flags.DEFINE_integer("top", 30, "Operations listed.")
FLAGS = flags.FLAGS


def operation_seconds(trace_dir: str) -> collections.Counter:
  """Total seconds per traced event name of the .xplane.pb under `trace_dir`."""
  from xprof.convert import raw_to_tool_data
  path = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)[0]
  data, _ = raw_to_tool_data.xspace_to_tool_data([path], "trace_viewer", {})
  seconds = collections.Counter()
  for event in json.loads(data)["traceEvents"]:
    if event.get("ph") == "X" and "dur" in event:
      seconds[event["name"]] += event["dur"] * 1e-6
  return seconds


def hlo_instructions(hlo_text: str) -> dict:
  """Instruction name -> the rest of its HLO line."""
  lines = {}
  for line in hlo_text.splitlines():
    match = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (.*)", line)
    if match:
      lines.setdefault(match.group(1), match.group(2))
  return lines


def main(_):
  config = experiments.get_config(FLAGS.experiment)
  if FLAGS.batch_size:
    config.train.batch_size = FLAGS.batch_size
  step, _ = train_step.jax_step(config)
  step()
  step()
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir):
      for _ in range(FLAGS.steps):
        step()
    seconds = operation_seconds(trace_dir)
  instructions = hlo_instructions(step.compiled.as_text())
  ops = collections.Counter({name: t / FLAGS.steps for name, t in seconds.items() if name in instructions})
  if not ops:
    raise SystemExit("The trace has no per-operation events: set XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true.")
  total = sum(ops.values())
  print(f"{FLAGS.experiment}: {total * 1e3:.1f} ms per step in {len(ops)} traced operations")
  for name, t in ops.most_common(FLAGS.top):
    print(f"{t * 1e3:8.2f} ms {100 * t / total:5.1f}%  {name[:28]:28s} {instructions[name][:200]}")
  kinds = collections.Counter()
  for name, t in ops.items():
    kinds[re.sub(r"[.\d]+$", "", name)] += t
  print("per kind:", ", ".join(f"{kind} {t * 1e3:.1f} ms" for kind, t in kinds.most_common(12)))


if __name__ == "__main__":
  app.run(main)
