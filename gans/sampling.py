"""Sampling from a checkpoint: `--mode=sample` writes samples.npz and a picture of them."""
import logging
import os

import numpy as np

from gans import checkpoint, data, report, run


def grid_picture(grid: np.ndarray) -> np.ndarray:
  """A variant's grid (images[rows, columns, H, W, C]) as one picture with the same rows and columns."""
  return report.image_grid(grid.reshape((-1,) + grid.shape[2:]), columns=grid.shape[1])


def write_samples(config, workdir: str, num_samples: int, pictures=(), **conditioning) -> str:
  """Writes <workdir>/samples.npz (array `samples`, (N, ...) in data space) and samples.png; returns the npz path.

  Audio samples ([N, T, C]) are also written as <workdir>/sample_wavs/sample_XXX.wav, and samples.png shows their
  spectrograms.

  `conditioning` (e.g. label=3 from --label=3) goes to the variant's sampler. A variant with its own grid
  (one row per class, ...) also gets grid.png. The same checkpoint, config.seed and conditioning give the
  same samples (the run's sample stream). Each of `pictures` (names in the variant's `pictures`, e.g.
  StyleGAN's style_mixing) is written as <name>.png with the same conditioning.
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
  samples = setup.generate(state, num_samples, **conditioning)
  path = os.path.join(workdir, "samples.npz")
  np.savez(path, samples=samples, step=step, **conditioning)
  reference = np.asarray(data.mixture_modes(config.data.source)[0]) if samples.ndim == 2 else None
  sample_rate = config.data.get("sample_rate", 16_000)
  report.save_png(os.path.join(workdir, "samples.png"), report.to_picture(samples, reference, sample_rate))
  if samples.ndim == 3:  # audio [N, T, C]: every sample as a WAV file too
    report.write_wavs(os.path.join(workdir, "sample_wavs"), samples, sample_rate)
  grid = setup.grid(state)
  if grid is not None:
    report.save_png(os.path.join(workdir, "grid.png"), grid_picture(grid))
  for name in pictures:
    picture = setup.picture(state, setup.variant.pictures[name], **conditioning)
    report.save_png(os.path.join(workdir, f"{name}.png"), grid_picture(picture))
  logging.info("Wrote %d samples of step %d to %s", num_samples, step, path)
  return path
