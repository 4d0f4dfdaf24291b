"""Sampling from a checkpoint: `--mode=sample` writes samples.npz and a picture of them."""
import logging
import os

import numpy as np

from gans import checkpoint, data, report, run


def grid_picture(grid: np.ndarray) -> np.ndarray:
  """A variant's grid (images[rows, columns, H, W, C]) as one picture with the same rows and columns."""
  return report.image_grid(grid.reshape((-1,) + grid.shape[2:]), columns=grid.shape[1])


def _translation_inputs(variant, conditioning: dict, num_samples: int):
  """(conditioning, {"targets", "labels"} where known, count) for a variant that translates data: the given
  source images (--input), or the first num_samples held-out inputs with their targets and classes."""
  if "source" in conditioning:
    source = np.asarray(conditioning["source"])
    return conditioning, {}, len(source)
  examples = variant.held_out(num_samples)
  known = {plural: examples[name] for name, plural in (("target", "targets"), ("label", "labels")) if name in examples}
  return {**conditioning, "source": examples["source"]}, known, len(examples["source"])


def write_samples(config, workdir: str, num_samples: int, pictures=(), **conditioning) -> str:
  """Writes <workdir>/samples.npz (array `samples`, (N, ...) in data space) and samples.png; returns the npz path.

  `conditioning` (e.g. label=3 from --label=3) goes to the variant's sampler. A variant with its own grid
  (one row per class, ...) also gets grid.png. The same checkpoint, config.seed and conditioning give the
  same samples (the run's sample stream). Each of `pictures` (names in the variant's `pictures`, e.g.
  StyleGAN's style_mixing) is written as <name>.png with the same conditioning.

  Variants that translate data (pix2pix, CycleGAN: GanVariant.held_out) translate `source` (--input=DIR) or,
  without it, the first num_samples held-out inputs; samples.npz then holds `samples`, `inputs` and, where
  known, `targets` and `labels`, and translations.png one row per input: input | output | target.
  """
  setup = run.Setup(config)
  run.check_conditioning(setup.variant, conditioning)  # before reading a checkpoint, so a wrong flag fails fast
  unknown = sorted(set(pictures) - set(setup.variant.pictures))
  if unknown:
    raise run.ConditioningError(f"This variant draws no picture {', '.join(unknown)}; its pictures: "
                                f"{', '.join(sorted(setup.variant.pictures)) or 'none'}.")
  _, state, _, step = setup.restore_latest(workdir, with_data=False)
  if step == 0:
    raise checkpoint.CheckpointError(f"No checkpoint in {workdir}/checkpoints; train first (--mode=train).")
  known = {}
  if setup.variant.held_out is not None:  # conditioning from data: translate the held-out inputs or --input
    conditioning, known, num_samples = _translation_inputs(setup.variant, conditioning, num_samples)
  samples = setup.generate(state, num_samples, **conditioning)
  path = os.path.join(workdir, "samples.npz")
  if known or "source" in conditioning:
    np.savez(path, samples=samples, step=step, inputs=conditioning["source"], **known)
    columns = [conditioning["source"], samples] + ([known["targets"]] if "targets" in known else [])
    report.save_png(os.path.join(workdir, "translations.png"), grid_picture(np.stack(columns, axis=1)))
  else:
    np.savez(path, samples=samples, step=step, **conditioning)
  reference = np.asarray(data.mixture_modes(config.data.source)[0]) if samples.ndim == 2 else None
  report.save_png(os.path.join(workdir, "samples.png"), report.to_picture(samples, reference))
  grid = setup.grid(state)
  if grid is not None:
    report.save_png(os.path.join(workdir, "grid.png"), grid_picture(grid))
  for name in pictures:
    picture = setup.picture(state, setup.variant.pictures[name], **conditioning)
    report.save_png(os.path.join(workdir, f"{name}.png"), grid_picture(picture))
  logging.info("Wrote %d samples of step %d to %s", num_samples, step, path)
  return path
