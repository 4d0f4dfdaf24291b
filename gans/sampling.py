"""Sampling from a checkpoint: `--mode=sample` writes samples.npz and a picture of them."""
import logging
import os

import numpy as np

from gans import checkpoint, data, report, run


def write_samples(config, workdir: str, num_samples: int) -> str:
  """Writes <workdir>/samples.npz (array `samples`, (N, ...) in data space) and samples.png; returns the npz path.

  The same checkpoint and config.seed give the same samples (the run's sample stream).
  """
  setup = run.Setup(config)
  _, state, _, step = setup.restore_latest(workdir, with_data=False)
  if step == 0:
    raise checkpoint.CheckpointError(f"No checkpoint in {workdir}/checkpoints; train first (--mode=train).")
  samples = setup.generate(state, num_samples)
  path = os.path.join(workdir, "samples.npz")
  np.savez(path, samples=samples, step=step)
  reference = np.asarray(data.mixture_modes(config.data.source)[0]) if samples.ndim == 2 else None
  report.save_png(os.path.join(workdir, "samples.png"), report.to_picture(samples, reference))
  logging.info("Wrote %d samples of step %d to %s", num_samples, step, path)
  return path
