"""Sampling from a checkpoint: `--mode=sample` writes samples.npz and a picture of them."""
import logging
import os

import numpy as np

from gans import checkpoint, data, report, run


def grid_picture(grid: np.ndarray) -> np.ndarray:
  """A variant's grid (images[rows, columns, H, W, C]) as one picture with the same rows and columns."""
  return report.image_grid(grid.reshape((-1,) + grid.shape[2:]), columns=grid.shape[1])


def write_samples(config, workdir: str, num_samples: int, **conditioning) -> str:
  """Writes <workdir>/samples.npz (array `samples`, (N, ...) in data space) and samples.png; returns the npz path.

  `conditioning` (e.g. label=3 from --label=3) goes to the variant's sampler. A variant with its own grid
  (one row per class, ...) also gets grid.png. The same checkpoint, config.seed and conditioning give the
  same samples (the run's sample stream).
  """
  setup = run.Setup(config)
  run.check_conditioning(setup.variant, conditioning)  # before reading a checkpoint, so a wrong flag fails fast
  _, state, _, step = setup.restore_latest(workdir, with_data=False)
  if step == 0:
    raise checkpoint.CheckpointError(f"No checkpoint in {workdir}/checkpoints; train first (--mode=train).")
  samples = setup.generate(state, num_samples, **conditioning)
  path = os.path.join(workdir, "samples.npz")
  np.savez(path, samples=samples, step=step, **conditioning)
  reference = np.asarray(data.mixture_modes(config.data.source)[0]) if samples.ndim == 2 else None
  report.save_png(os.path.join(workdir, "samples.png"), report.to_picture(samples, reference))
  grid = setup.grid(state)
  if grid is not None:
    report.save_png(os.path.join(workdir, "grid.png"), grid_picture(grid))
  logging.info("Wrote %d samples of step %d to %s", num_samples, step, path)
  return path
