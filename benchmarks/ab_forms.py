"""A/B of gans/layers.py's dispatch thresholds on a whole training step, old and new built in one process.

  python benchmarks/ab_forms.py --experiment=pix2pix_facades --old=im2col_taps=25,tap_sums_max_taps=0

Builds the experiment's jitted step (benchmarks/train_step.py's) twice: once with the named layers constants
set to the given (old) values while it compiles, once with the code's own values, then times the two (and the
PyTorch reference with --torch) in alternating blocks and prints one JSON line: each side's median seconds per
step and new_over_old = old seconds / new seconds (above 1: the new forms are faster). Names are the lower-case
module constants of gans/layers.py (e.g. IM2COL_MIN_TAPS as im2col_min_taps).
"""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

import experiments
from benchmarks import train_step
from gans import layers

flags.DEFINE_list("old", [], "NAME=VALUE settings of gans.layers constants for the old step.")
flags.DEFINE_integer("ab_blocks", 5, "Alternating blocks per side.")
flags.DEFINE_integer("calls", 1, "Calls per block.")
FLAGS = flags.FLAGS


def build_with(config, settings: dict):
  saved = {name: getattr(layers, name) for name in settings}
  try:
    for name, value in settings.items():
      setattr(layers, name, value)
    return train_step.jax_step(config)[0]
  finally:
    for name, value in saved.items():
      setattr(layers, name, value)


def main(_):
  config = experiments.get_config(FLAGS.experiment)
  if FLAGS.batch_size:
    config.train.batch_size = FLAGS.batch_size
  settings = {}
  for item in FLAGS.old:
    name, value = item.split("=")
    if not hasattr(layers, name.upper()):
      raise SystemExit(f"gans.layers has no constant {name.upper()}")
    settings[name.upper()] = type(getattr(layers, name.upper()))(value)
  sides = {"old": build_with(config, settings), "new": build_with(config, {})}
  if FLAGS.torch:
    torch = train_step.torch_step(config)
    if torch is not None:
      sides["torch"] = torch
  times = {name: [] for name in sides}
  for step in sides.values():
    step()
  for _ in range(FLAGS.ab_blocks):
    for name, step in sides.items():
      start = time.perf_counter()
      for _ in range(FLAGS.calls):
        step()
      times[name].append((time.perf_counter() - start) / FLAGS.calls)
  medians = {name: statistics.median(t) for name, t in times.items()}
  result = {"experiment": FLAGS.experiment, "old": FLAGS.old, **{f"{k}_sec": round(v, 4) for k, v in medians.items()},
            "new_over_old": round(medians["old"] / medians["new"], 3)}
  if "torch" in medians:
    result.update(ratio_old=round(medians["torch"] / medians["old"], 3), ratio_new=round(medians["torch"] / medians["new"], 3))
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
