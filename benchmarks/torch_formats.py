"""A PyTorch reference step in its default (NCHW / NCDHW) memory format against channels_last, interleaved.

  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824 \
    python benchmarks/torch_formats.py --experiment=gan3d_shapes --blocks=7

Decides each reference's default format (the faster one on this kind of machine: we compare against PyTorch at its
best). Prints one JSON line: each format's median seconds per step over alternating blocks and
channels_last_speedup = contiguous seconds / channels_last seconds (above 1: channels_last is faster). For the
3D-GAN, channels_last means torch.channels_last_3d.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

import experiments
from benchmarks import timing

flags.DEFINE_string("experiment", "gan3d_shapes",
                    "An experiment whose PyTorch reference takes channels_last (reference_maker).")
flags.DEFINE_integer("batch_size", 0, "Overrides the experiment's batch size when > 0.")
flags.DEFINE_integer("blocks", 7, "Alternating blocks per format.")
flags.DEFINE_integer("calls", 2, "Steps per block.")
FLAGS = flags.FLAGS


def reference_maker(variant: str):
  """make(config, channels_last) -> step for the variants whose PyTorch reference takes both formats."""
  from benchmarks import torch_cyclegan, torch_gan3d, torch_pix2pix, torch_specgan, torch_srgan
  makers = {"gan3d": torch_gan3d.make_torch_gan3d_step, "pix2pix": torch_pix2pix.make_torch_pix2pix_step,
            "cyclegan": torch_cyclegan.make_torch_cyclegan_step, "specgan": torch_specgan.make_torch_specgan_step,
            "srgan": torch_srgan.make_torch_srgan_step}
  if variant not in makers:
    raise ValueError(f"No PyTorch reference with a channels_last option for variant {variant!r}; "
                     f"choose an experiment of {sorted(makers)}.")
  return makers[variant]


def main(_):
  config = experiments.get_config(FLAGS.experiment)
  if FLAGS.batch_size:
    config.train.batch_size = FLAGS.batch_size
  make = reference_maker(config.variant)
  steps = {"contiguous": make(config, channels_last=False), "channels_last": make(config, channels_last=True)}
  medians = timing.interleaved_medians(steps, FLAGS.blocks, FLAGS.calls)
  print(json.dumps({"experiment": FLAGS.experiment, "batch_size": config.train.batch_size,
                    **{f"{name}_sec": round(t, 4) for name, t in medians.items()},
                    "channels_last_speedup": round(medians["contiguous"] / medians["channels_last"], 3)}))


if __name__ == "__main__":
  app.run(main)
