"""PyTorch's 3D-GAN step (benchmarks/torch_gan3d.py) in NCDHW against channels_last_3d memory, interleaved.

  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824 \
    python benchmarks/torch_gan3d_formats.py --experiment=gan3d_shapes --blocks=7

Prints one JSON line: each format's median seconds per step over alternating blocks and
channels_last_speedup = NCDHW seconds / channels_last_3d seconds (above 1: channels_last_3d is faster).
"""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

import experiments
from benchmarks import torch_gan3d

flags.DEFINE_string("experiment", "gan3d_shapes", "A gan3d experiment.")
flags.DEFINE_integer("batch_size", 0, "Overrides the experiment's batch size when > 0.")
flags.DEFINE_integer("blocks", 7, "Alternating blocks per format.")
flags.DEFINE_integer("calls", 2, "Steps per block.")
FLAGS = flags.FLAGS


def main(_):
  config = experiments.get_config(FLAGS.experiment)
  if FLAGS.batch_size:
    config.train.batch_size = FLAGS.batch_size
  steps = {"ncdhw": torch_gan3d.make_torch_gan3d_step(config, channels_last=False),
           "channels_last_3d": torch_gan3d.make_torch_gan3d_step(config, channels_last=True)}
  times = {name: [] for name in steps}
  for step in steps.values():
    step()
    step()
  for _ in range(FLAGS.blocks):
    for name, step in steps.items():
      start = time.perf_counter()
      for _ in range(FLAGS.calls):
        step()
      times[name].append((time.perf_counter() - start) / FLAGS.calls)
  medians = {name: statistics.median(t) for name, t in times.items()}
  print(json.dumps({"experiment": FLAGS.experiment, "batch_size": config.train.batch_size,
                    **{f"{name}_sec": round(t, 4) for name, t in medians.items()},
                    "channels_last_speedup": round(medians["ncdhw"] / medians["channels_last_3d"], 3)}))


if __name__ == "__main__":
  app.run(main)
