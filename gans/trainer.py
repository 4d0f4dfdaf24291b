"""train_and_evaluate(config, workdir): the one training loop for every variant.

Owns the mesh, the optimizers, the EMA, the data iterator, checkpoints and
reports; the variant supplies modules, phases and sampling (gans/state.py).
"""
import contextlib
import json
import logging
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np

from gans import data, evaluation, report, sampling, sharding, steps
from gans.run import Setup, stream_key, TRAIN_STREAM
from gans.state import GanState

class Preempted(Exception):
  """Raised after a checkpoint was saved because the process received SIGTERM."""


@contextlib.contextmanager
def _sigterm_flag():
  """Yields a dict whose "set" entry turns True when SIGTERM arrives, so the loop can save and stop."""
  flag = {"set": False}

  def handler(signum, frame):
    del signum, frame
    flag["set"] = True

  try:
    previous = signal.signal(signal.SIGTERM, handler)
  except ValueError:  # not the main thread: preemption handling is the caller's business
    yield flag
    return
  try:
    yield flag
  finally:
    signal.signal(signal.SIGTERM, previous)


def _stack(batches):
  return jax.tree.map(lambda *xs: np.stack(xs), *batches)


def _report_samples(reporter: report.Reporter, step: int, setup: Setup, state: GanState) -> None:
  """The sample picture; for audio also WAV files and TensorBoard audio of the same samples."""
  grid = setup.grid(state)
  if grid is not None:  # the variant lays out its own picture (one row per class, ...)
    reporter.samples(step, sampling.grid_picture(grid))
    return
  samples = setup.generate(state, setup.config.train.num_grid_samples)
  reference = None
  if samples.ndim == 2:
    reference = np.asarray(data.mixture_modes(setup.config.data.source)[0])
  sample_rate = setup.config.data.get("sample_rate", 16_000)
  reporter.samples(step, report.to_picture(samples, reference, sample_rate))
  if samples.ndim == 3:
    reporter.audio(step, samples, sample_rate)


def _write_config(config, workdir: str) -> None:
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def train_and_evaluate(config, workdir: str, num_devices: int | None = None) -> GanState:
  """Trains config.train.steps generator steps, resuming from the latest checkpoint in workdir."""
  evaluation.check_config(config)  # a missing weights file fails now, not at the first evaluation hours later
  setup = Setup(config, num_devices)
  train = config.train
  checkpointer, state, data_state, start_step = setup.restore_latest(workdir)
  _write_config(config, workdir)

  per_process_batch = sharding.check_batch_size(train.batch_size, setup.mesh)
  iterator = data.make_iterator(config.data, batch_size=per_process_batch, seed=config.seed,
                                shard_index=jax.process_index(), shard_count=jax.process_count())
  if data_state is not None:
    iterator.set_state(data_state)
  batch_sharding = sharding.batch_sharding(setup.mesh, batch_axis=1)

  reporter = report.Reporter(workdir, train.steps, first_step=start_step)
  base_key = stream_key(config.seed, TRAIN_STREAM)

  def save(step: int):
    checkpointer.save(step, state, iterator.get_state(), setup.meta)

  try:
    logging.info("Training %s from step %d to %d on %d device(s); workdir %s", config.variant, start_step,
                 train.steps, setup.mesh.devices.size, workdir)
    step = start_step
    with _sigterm_flag() as preempted:
      while step < train.steps:
        phases = steps.due_phases(setup.variant, step)
        host_batches = _stack([next(iterator) for _ in range(steps.batches_per_step(setup.variant, phases))])
        state, metrics = setup.train_step(phases)(state, sharding.to_global(host_batches, batch_sharding), base_key)
        step += 1
        if step % train.log_every == 0 or step == train.steps:
          metrics = jax.device_get(metrics)
          reporter.scalars(step, metrics)
          reporter.progress(step, metrics)
        if train.sample_every and step % train.sample_every == 0:
          _report_samples(reporter, step, setup, state)
        if train.eval_every and step % train.eval_every == 0 and step < train.steps:
          reporter.evaluation(step, evaluation.evaluate_state(setup, state))
        if step % train.checkpoint_every == 0 and step < train.steps:
          save(step)
        if preempted["set"]:
          save(step)
          raise Preempted(f"SIGTERM received: saved a checkpoint at step {step} in {checkpointer.directory}; "
                          f"rerun the same command to resume.")

    if start_step < train.steps or checkpointer.latest_step() != train.steps:
      save(train.steps)
    _report_samples(reporter, train.steps, setup, state)
    if config.eval.metrics:
      results = evaluation.evaluate_state(setup, state)
      reporter.evaluation(train.steps, results)
      logging.info("Evaluation at step %d: %s", train.steps, json.dumps(results))
    return state
  finally:  # also on errors and preemption: finish writing what was started
    checkpointer.wait()
    reporter.close()
    iterator.close()
