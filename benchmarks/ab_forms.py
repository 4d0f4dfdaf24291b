"""A/B of gans/layers.py's dispatch thresholds on a whole training step, old and new built in one process.

  python benchmarks/ab_forms.py --experiment=pix2pix_facades --old=im2col_taps=25,tap_sums_max_taps=0

Builds the experiment's jitted step (benchmarks/train_step.py's) twice: once with the named layers constants
set to the given (old) values while it compiles, once with the code's own values, then times the two (and the
PyTorch reference with --torch) in alternating blocks and prints one JSON line: each side's median seconds per
step and new_over_old = old seconds / new seconds (above 1: the new forms are faster). Names are the lower-case
module constants of gans/layers.py (e.g. IM2COL_MIN_TAPS as im2col_min_taps), or of gans/layers3d.py or
gans/winograd.py with the module's name as prefix (e.g. --old=layers3d.phases_max_side=0, winograd.cpu_tiles=0).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

import experiments
from benchmarks import timing, train_step
from gans import layers, layers3d, winograd

flags.DEFINE_list("old", [], "NAME=VALUE settings of gans.layers constants for the old step.")
flags.DEFINE_integer("ab_blocks", 5, "Alternating blocks per side.")
flags.DEFINE_integer("calls", 1, "Calls per block.")
FLAGS = flags.FLAGS


def _module_and_name(name: str):
  """"layers3d.NAME" -> (gans.layers3d, NAME), "winograd.NAME" likewise; "NAME" -> (gans.layers, NAME)."""
  prefix, _, constant = name.rpartition(".")
  return {"": layers, "layers3d": layers3d, "winograd": winograd}[prefix], constant


def build_with(config, settings: dict):
  saved = {name: getattr(*_module_and_name(name)) for name in settings}
  try:
    for name, value in settings.items():
      setattr(*_module_and_name(name), value)
    return train_step.jax_step(config)[0]
  finally:
    for name, value in saved.items():
      setattr(*_module_and_name(name), value)


def main(_):
  config = experiments.get_config(FLAGS.experiment)
  if FLAGS.batch_size:
    config.train.batch_size = FLAGS.batch_size
  settings = {}
  for item in FLAGS.old:
    name, value = item.split("=")
    prefix, _, constant = name.rpartition(".")
    name = f"{prefix}.{constant.upper()}" if prefix else constant.upper()
    module, constant = _module_and_name(name)
    if not hasattr(module, constant):
      raise SystemExit(f"{module.__name__} has no constant {constant}")
    kind = type(getattr(module, constant))
    settings[name] = bool(int(value)) if kind is bool else kind(value)  # bool("0") would be True
  sides = {"old": build_with(config, settings), "new": build_with(config, {})}
  if FLAGS.torch:
    torch = train_step.torch_step(config)
    if torch is not None:
      sides["torch"] = torch
  medians = timing.interleaved_medians(sides, FLAGS.ab_blocks, FLAGS.calls, warmups=1)
  result = {"experiment": FLAGS.experiment, "old": FLAGS.old, **{f"{k}_sec": round(v, 4) for k, v in medians.items()},
            "new_over_old": round(medians["old"] / medians["new"], 3)}
  if "torch" in medians:
    result.update(ratio_old=round(medians["torch"] / medians["old"], 3), ratio_new=round(medians["torch"] / medians["new"], 3))
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
