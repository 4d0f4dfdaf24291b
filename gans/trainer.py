"""train_and_evaluate(config, workdir): the one training loop for every variant.

Owns the mesh, the optimizers, the EMA, the data iterator, checkpoints and
reports; the variant supplies modules, phases and sampling (gans/state.py).
"""
import contextlib
import json
import logging
import os
import signal
import time

import jax
import numpy as np
from jax.experimental import multihost_utils

from gans import checkpoint, data, evaluation, report, sampling, sharding, steps, vectorize
from gans.run import Setup, stream_key, TRAIN_STREAM
from gans.variants import get_variant
from gans.state import GanState

class Preempted(Exception):
  """Raised after a checkpoint was saved because the process received SIGTERM."""


class Diverged(Exception):
  """Raised when a loss or parameter became non-finite under nan_policy "stop"; nothing of it was saved."""


def _check_finite(setup: Setup, first_nonfinite, checkpointer) -> None:
  """Raises Diverged if the state recorded a non-finite update; `first_nonfinite` is already on the host."""
  step, phase_index = (int(v) for v in first_nonfinite)
  if step < 0 or setup.config.train.nan_policy != "stop":
    return
  last = checkpointer.latest_step()
  kept = (f"the last good checkpoint, step {last}, is kept in {checkpointer.directory}" if last is not None
          else "no checkpoint had been written yet")
  raise Diverged(f"Training diverged: phase {setup.variant.phases[phase_index].name} produced a non-finite loss or "
                 f"parameter at step {step + 1}; no checkpoint of it was written and {kept}. Lower the learning "
                 f"rate, or rerun with --config.train.nan_policy=skip to drop such updates and go on.")


@contextlib.contextmanager
def _sigterm_flag():
  """Yields preempted(step) -> bool, True once SIGTERM has arrived, so the loop can save and stop.

  Several processes must stop at the same step (saving a checkpoint is a collective): there the preemption
  service that jax.distributed.initialize() starts catches SIGTERM on any process, and
  reached_preemption_sync_point(step) turns True on every process at the same step.
  """
  if jax.process_count() > 1:
    yield multihost_utils.reached_preemption_sync_point
    return
  flag = {"set": False}

  def handler(signum, frame):
    del signum, frame
    flag["set"] = True

  try:
    previous = signal.signal(signal.SIGTERM, handler)
  except ValueError:  # not the main thread: preemption handling is the caller's business
    yield lambda step: flag["set"]
    return
  try:
    yield lambda step: flag["set"]
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


class _Run:
  """One run's own pieces: its Setup, state at the start, data iterator, reports and checkpoints."""

  def __init__(self, config, workdir: str, num_devices: int | None):
    evaluation.check_config(config)  # a missing weights file fails now, not at the first evaluation hours later
    self.setup = Setup(config, num_devices)
    self.workdir = workdir
    self.checkpointer, self.state, data_state, self.start_step = self.setup.restore_latest(workdir)
    _write_config(config, workdir)
    per_process_batch = sharding.check_batch_size(config.train.batch_size, self.setup.mesh)
    self.iterator = data.make_iterator(config.data, batch_size=per_process_batch, seed=config.seed,
                                       shard_index=jax.process_index(), shard_count=jax.process_count())
    if data_state is not None:
      self.iterator.set_state(data_state)
    self.reporter = report.Reporter(workdir, config.train.steps, first_step=self.start_step)
    self.base_key = stream_key(config.seed, TRAIN_STREAM)

  def host_batches(self, count: int):
    return _stack([next(self.iterator) for _ in range(count)])

  def save(self, step: int, state: GanState) -> None:
    self.checkpointer.save(step, state, self.iterator.get_state(), self.setup.meta)

  def close(self) -> None:
    self.checkpointer.wait()
    self.reporter.close()
    self.iterator.close()


def train_and_evaluate(config, workdir: str, num_devices: int | None = None) -> GanState:
  """Trains config.train.steps generator steps, resuming from the latest checkpoint in workdir."""
  return train_runs([config], [workdir], num_devices)[0]


def train_runs(configs, workdirs, num_devices: int | None = None) -> list[GanState]:
  """Trains several runs of one experiment as one vmapped program (gans/vectorize.py); one run is a plain run.

  The runs may differ only in seed, optimizer hyperparameters, run-time loss weights and EMA decay
  (vectorize.check_vectorizable). Each resumes from, and writes to, its own workdir exactly as it would
  trained alone.
  """
  started = time.time()
  if len(configs) > 1:
    vectorize.check_vectorizable(configs, [get_variant(config.variant)(config) for config in configs])
  runs = []
  try:
    for config, workdir in zip(configs, workdirs):
      runs.append(_Run(config, workdir, num_devices))
    return _train(runs, num_devices, started)
  finally:  # also on errors and preemption: finish writing what was started
    for run in runs:
      run.close()


def _train(runs: list[_Run], num_devices: int | None, started: float) -> list[GanState]:
  first = runs[0]
  variant, train = first.setup.variant, first.setup.config.train
  start_step = first.start_step
  if any(run.start_step != start_step for run in runs):
    behind = ", ".join(f"{run.workdir} at step {run.start_step}" for run in runs)
    raise checkpoint.CheckpointError(f"Vectorised runs must resume from the same step: {behind}. Bring each to "
                                     f"the same step alone (launch.py --workdir=...), then resume them together.")
  if len(runs) == 1:
    state = first.state
    batch_sharding = sharding.batch_sharding(first.setup.mesh, batch_axis=1)

    def train_step(phases, state, count):
      batches = sharding.to_global(first.host_batches(count), batch_sharding)
      return first.setup.train_step(phases)(state, batches, first.base_key)

    run_state = lambda state, k: state
    run_values = lambda values, k: values
  else:
    mesh = vectorize.make_mesh(len(runs), num_devices)
    per_run = vectorize.per_run(mesh)
    state = jax.device_put(vectorize.stack([run.state for run in runs]), per_run)
    base_keys = jax.device_put(vectorize.stack([run.base_key for run in runs]), per_run)
    ema_decays = jax.device_put(np.array([run.setup.config.ema.decay for run in runs], np.float32), per_run)
    batch_sharding = vectorize.batch_sharding(mesh)
    vectorized_steps = {}

    def train_step(phases, state, count):
      if phases not in vectorized_steps:
        vectorized_steps[phases] = vectorize.make_step(first.setup, phases, mesh)
      batches = jax.device_put(_stack([run.host_batches(count) for run in runs]), batch_sharding)
      return vectorized_steps[phases](state, batches, base_keys, ema_decays)

    run_state = run_values = vectorize.run_slice
  for run in runs:
    run.state = None  # the stacked copy is the live one; donation frees it step by step

  def check_finite(first_nonfinite) -> None:
    for k, run in enumerate(runs):
      _check_finite(run.setup, run_values(first_nonfinite, k), run.checkpointer)

  def save(step: int) -> None:
    check_finite(jax.device_get(state.first_nonfinite))  # every run, before any is written
    for k, run in enumerate(runs):
      run.save(step, run_state(state, k))

  logging.info("Training %s (%d run(s)) from step %d to %d on %d device(s); workdirs %s", first.setup.config.variant,
               len(runs), start_step, train.steps, len(jax.devices()[:num_devices]),
               ", ".join(run.workdir for run in runs))
  step = start_step
  with _sigterm_flag() as preempted:
    previous_metrics = None
    while step < train.steps:
      phases = steps.due_phases(variant, step)
      state, metrics = train_step(phases, state, steps.batches_per_step(variant, phases))
      step += 1
      # At most two steps in flight: enough to keep the device busy, and a SIGTERM is then acted on within
      # about one step (unbounded asynchronous dispatch ran up to log_every steps ahead of the device).
      jax.block_until_ready(previous_metrics)
      previous_metrics = metrics
      if step == start_step + 1:  # one wait, so the time to the first step (compilation included) is known
        jax.block_until_ready(state.step)
        logging.info("First step done %.1f s after start (compilation included).", time.time() - started)
      if step % train.log_every == 0 or step == train.steps:
        metrics, first_nonfinite = jax.device_get((metrics, state.first_nonfinite))
        for k, run in enumerate(runs):
          run.reporter.scalars(step, run_values(metrics, k))
          run.reporter.progress(step, run_values(metrics, k))
        check_finite(first_nonfinite)
      if train.sample_every and step % train.sample_every == 0:
        for k, run in enumerate(runs):
          _report_samples(run.reporter, step, run.setup, run_state(state, k))
      if train.eval_every and step % train.eval_every == 0 and step < train.steps:
        for k, run in enumerate(runs):
          run.reporter.evaluation(step, evaluation.evaluate_state(run.setup, run_state(state, k)))
      stop = preempted(step)  # every step on every process: the processes agree on the step through it
      if stop or (step % train.checkpoint_every == 0 and step < train.steps):
        save(step)  # once: a SIGTERM at a checkpoint step must not save that step again
      if stop:
        raise Preempted(f"SIGTERM received: saved a checkpoint at step {step} in "
                        f"{', '.join(run.checkpointer.directory for run in runs)}; rerun the same command to resume.")

  if start_step < train.steps or any(run.checkpointer.latest_step() != train.steps for run in runs):
    save(train.steps)
  final_states = [run_state(state, k) for k in range(len(runs))]
  for run, run_final in zip(runs, final_states):
    _report_samples(run.reporter, train.steps, run.setup, run_final)
    if run.setup.config.eval.metrics:
      results = evaluation.evaluate_state(run.setup, run_final)
      run.reporter.evaluation(train.steps, results)
      logging.info("Evaluation at step %d of %s: %s", train.steps, run.workdir, json.dumps(results))
  return final_states

