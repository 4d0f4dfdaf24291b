"""Pure update functions built from a GanVariant.

One training step runs the phases that are due at this generator step, in the
variant's order (discriminator before generator), each as value_and_grad over
its own parameter groups followed by that group's optax update, then updates
the EMA copy of the generator. Which phases are due is decided in Python
(`step % every`), so each distinct set of due phases is its own jitted
function and nothing branches inside jit.

Batches: a step receives `batches_per_step(variant, phases)` global batches
stacked on a leading axis; the i-th run of a phase reads the i-th batch (so
with n_critic = 5 the discriminator sees five fresh batches and the generator
phase the first). A phase with batch_multiple m reads batches [i m, (i+1) m)
merged into one batch of m times the size. EMA decay is given per global
batch: a step whose phases read m batches per run decays the EMA m times, so
its half-life stays a number of images (as the official StyleGAN's kimg).
Keys: the step key is `fold_in(base_key, step)`; phase p's run i uses
`fold_in(fold_in(step_key, p), i)`, and the variant's `prepare` (shared work,
once per step) `fold_in(step_key, number of phases)`, so any step can be replayed from
(state, batch, base_key).

Divergence: an update whose loss, gradients or new model state hold a NaN
or infinity is not applied, and the state records it
(`skipped_updates`, `first_nonfinite`). With nan_policy "stop" every later
update is withheld too, so the state stays the last finite one until the
trainer reads the record (where it reads metrics anyway) and stops; with
"skip" training goes on without the offending update.
"""
from typing import Mapping

import jax
import jax.numpy as jnp
import optax

from gans.state import GanState, GanVariant, Phase


def init_state(variant: GanVariant, optimizers: Mapping[str, optax.GradientTransformation], key: jax.Array,
               use_ema: bool, hyperparameters: Mapping[str, float] | None = None) -> GanState:
  """The state before the first step; `hyperparameters` are the values of variant.hyperparameters."""
  params, model_state = variant.init(key)
  if variant.hyperparameters:
    model_state = {**model_state, "hyperparameters": hyperparameter_values(hyperparameters)}
  return GanState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state={group: optimizers[group].init(p) for group, p in params.items()},
      ema_params={group: params[group] for group in variant.ema_groups} if use_ema else {},
      model_state=model_state,
      skipped_updates=jnp.zeros((), jnp.int32),
      first_nonfinite=jnp.full((2,), -1, jnp.int32),
  )


def hyperparameter_values(hyperparameters: Mapping[str, float]) -> dict:
  return {name: jnp.asarray(value, jnp.float32) for name, value in hyperparameters.items()}


NAN_POLICIES = ("stop", "skip")


def check_nan_policy(nan_policy: str) -> None:
  if nan_policy not in NAN_POLICIES:
    raise ValueError(f"Unknown config.train.nan_policy {nan_policy!r}; valid: {', '.join(NAN_POLICIES)}.")


def due_phases(variant: GanVariant, step: int) -> tuple[str, ...]:
  """Names of the phases that run at generator step `step`: inside [start, stop) and on their `every`."""
  return tuple(phase.name for phase in variant.phases
               if phase.start <= step and (phase.stop is None or step < phase.stop) and step % phase.every == 0)


def batches_per_step(variant: GanVariant, phase_names: tuple[str, ...]) -> int:
  """Global batches one step running `phase_names` reads: the most any of them reads."""
  return max(phase.repeats * phase.batch_multiple for phase in variant.phases if phase.name in phase_names)


def _merged_batches(batches, first: int, count: int):
  """Batches [first, first + count) of the stack as one batch of count times the size.

  Example-major order (example j of every batch, then j + 1, ...) keeps each device's rows on that
  device when the batch axis is sharded: device d's block of the merged batch is its blocks of the
  merged batches.
  """
  def merge(x):
    part = jnp.swapaxes(x[first:first + count], 0, 1)
    return part.reshape((-1,) + x.shape[2:])
  return jax.tree.map(merge, batches)


def _all_finite(*trees) -> jax.Array:
  leaves = [x for x in jax.tree.leaves(trees) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.array(True)


def _squared_norm(tree) -> jax.Array:
  return sum((jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)), jnp.float32(0))


def _run_phase(phase: Phase, optimizers, state: GanState, batch, key: jax.Array, phase_index: int,
               nan_policy: str):
  """One update of the phase's groups, applied only where it is finite (and, under "stop", nothing diverged
  before) and the phase's `apply_if` metric is nonzero; the divergence record updated."""
  def loss_of_trainable(trainable):
    params = {**state.params, **trainable}
    return phase.loss(params, state.model_state, batch, key)

  trainable = {group: state.params[group] for group in phase.updates}
  (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_of_trainable, has_aux=True)(trainable)
  metrics = {"loss": loss, **metrics}
  # Finite loss, gradients (their squared norm, so no square overflows an optimizer's second moment) and model
  # state make a finite update. Known before the update, they decide by lax.cond whether it runs at all: a
  # select between the new and the old state afterwards read the whole state twice more (pix2pix's step:
  # 120 ms with the select, 106 ms without any guard).
  finite = jnp.isfinite(loss) & jnp.isfinite(_squared_norm(grads)) & _all_finite(model_state)
  first = state.first_nonfinite
  healthy = finite & (first[0] < 0) if nan_policy == "stop" else finite
  apply = healthy if phase.apply_if is None else healthy & (metrics[phase.apply_if] != 0)

  def update():
    params, opt_state = dict(state.params), dict(state.opt_state)
    for group in phase.updates:
      updates, opt_state[group] = optimizers[group].update(grads[group], state.opt_state[group], params[group])
      if phase.lr_multiple != 1.0:
        updates = jax.tree.map(lambda u: u * phase.lr_multiple, updates)
      params[group] = optax.apply_updates(params[group], updates)
    return params, opt_state, model_state

  params, opt_state, model_state = jax.lax.cond(
      apply, update, lambda: (state.params, state.opt_state, state.model_state))
  updated = state.replace(
      params=params, opt_state=opt_state, model_state=model_state,
      skipped_updates=state.skipped_updates + jnp.where(healthy, 0, 1).astype(jnp.int32),
      first_nonfinite=jnp.where((first[0] < 0) & ~finite, jnp.stack([state.step, jnp.int32(phase_index)]), first))
  return updated, metrics


def _ema_update(ema_params, params, decay):
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)


def make_train_step(variant: GanVariant, optimizers: Mapping[str, optax.GradientTransformation],
                    phase_names: tuple[str, ...], ema_decay: float, nan_policy: str = "stop"):
  """Returns train_step(state, batches, base_key) -> (state, metrics) running `phase_names`."""
  check_nan_policy(nan_policy)
  phases = [(index, phase) for index, phase in enumerate(variant.phases) if phase.name in phase_names]
  ema_batches = max(phase.batch_multiple for _, phase in phases)
  if variant.prepare is not None and any(phase.repeats != 1 or phase.batch_multiple != 1 for _, phase in phases):
    raise ValueError("GanVariant.prepare needs phases that read one batch once per step (repeats and "
                     "batch_multiple 1): the prepared batch is made once per step.")

  def train_step(state: GanState, batches, base_key: jax.Array):
    # float32 arithmetic whether ema_decay is a Python number or a traced per-run value (vectorised sweeps).
    decay = jnp.asarray(ema_decay, jnp.float32) ** ema_batches
    step_key = jax.random.fold_in(base_key, state.step)
    metrics = {}
    prepared = None
    if variant.prepare is not None:  # with a key no phase gets (phase p folds in p)
      prepared = variant.prepare(state.params, state.model_state, _merged_batches(batches, 0, 1),
                                 jax.random.fold_in(step_key, len(variant.phases)), phase_names)
    for index, phase in phases:
      phase_key = jax.random.fold_in(step_key, index)
      runs = []
      # Unrolled, not a lax.scan: a scan compiled a tiny WaveGAN step (n_critic 5) in 14 s instead of 32 s, but
      # its first specgan_digits step took 209 s against 33 s unrolled (XLA:CPU, the loop body run slowly).
      for run in range(phase.repeats):
        batch = prepared if prepared is not None else _merged_batches(batches, run * phase.batch_multiple,
                                                                      phase.batch_multiple)
        state, run_metrics = _run_phase(phase, optimizers, state, batch, jax.random.fold_in(phase_key, run),
                                        index, nan_policy)
        runs.append(run_metrics)
      for name in runs[0]:
        metrics[f"{phase.log_as or phase.name}/{name}"] = jnp.mean(jnp.stack([m[name] for m in runs]))
    if state.ema_params:
      ema_params = {group: _ema_update(state.ema_params[group], state.params[group], decay)
                    for group in state.ema_params}
      state = state.replace(ema_params=ema_params)
    metrics["train/skipped_updates"] = state.skipped_updates
    return state.replace(step=state.step + 1), metrics

  return train_step


def sampling_params(state: GanState) -> dict:
  """The parameters to sample with: the EMA copies where kept, the live ones otherwise."""
  return {**state.params, **state.ema_params}


def linear_decay_schedule(learning_rate: float, n_epochs: int, n_epochs_decay: int, steps_per_epoch: int,
                          epoch_count: int = 1) -> optax.Schedule:
  """pix2pix/CycleGAN's 'linear' policy as an optax schedule of the update count.

  The official lambda_rule(epoch) = 1 - max(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1), with
  the scheduler stepped at the beginning of every epoch (train.py), so training epoch e (counted from 1)
  runs at learning_rate * lambda_rule(e): constant, then linear to zero over the last n_epochs_decay epochs.
  """
  if steps_per_epoch < 1 or n_epochs_decay < 0:
    raise ValueError(f"linear_decay needs steps_per_epoch >= 1 and n_epochs_decay >= 0, got {steps_per_epoch} "
                     f"and {n_epochs_decay}.")

  def schedule(count):
    epoch = count // steps_per_epoch + 1
    factor = 1.0 - jnp.maximum(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1.0)
    return learning_rate * factor
  return schedule


def learning_rate_of(optim_config):
  """optim_config.learning_rate, or the optax schedule of optim_config.schedule (a dict with `name`).

  Schedules: "constant"; "linear_decay" (n_epochs, n_epochs_decay, steps_per_epoch: see linear_decay_schedule);
  "piecewise_constant" (boundaries, scales: from update count boundaries[i] on, the learning rate is multiplied
  by scales[i] as well, optax.piecewise_constant_schedule; SRGAN's 1e-4 then 1e-5).
  """
  schedule = optim_config.get("schedule", None)
  if not schedule or schedule.get("name", "constant") == "constant":
    return optim_config.learning_rate
  if schedule.name == "linear_decay":
    return linear_decay_schedule(optim_config.learning_rate, schedule.n_epochs, schedule.n_epochs_decay,
                                 schedule.steps_per_epoch)
  if schedule.name == "piecewise_constant":
    if len(schedule.boundaries) != len(schedule.scales):
      raise ValueError(f"piecewise_constant needs one scale per boundary, got {len(schedule.boundaries)} "
                       f"boundaries and {len(schedule.scales)} scales.")
    return optax.piecewise_constant_schedule(optim_config.learning_rate,
                                             dict(zip(map(int, schedule.boundaries), map(float, schedule.scales))))
  raise ValueError(f"Unknown schedule {schedule.name!r} in config.optim; valid: constant, linear_decay, "
                   "piecewise_constant.")


def make_optimizer(optim_config) -> optax.GradientTransformation:
  """Adam by default (DCGAN: lr 2e-4, b1 0.5); `name` selects another optax optimizer; `schedule` (optional)
  makes the learning rate an optax schedule (learning_rate_of).

  The numeric hyperparameters live in the optimizer state (optax.inject_hyperparams), not in the compiled
  program, so runs that differ only in them share one step function (gans/vectorize.py stacks them).
  """
  name = optim_config.get("name", "adam")
  learning_rate = learning_rate_of(optim_config)
  if name == "adam":
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate, b1=optim_config.b1,
                                                b2=optim_config.b2, eps=optim_config.get("eps", 1e-8))
  if name == "rmsprop":
    return optax.inject_hyperparams(optax.rmsprop)(learning_rate=learning_rate)
  if name == "sgd":
    return optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate)
  raise ValueError(f"Unknown optimizer {name!r} in config.optim; valid: adam, rmsprop, sgd.")


def make_optimizers(optim_config, groups) -> dict[str, optax.GradientTransformation]:
  """One optimizer per parameter group, from config.optim.<group>."""
  missing = sorted(set(groups) - set(optim_config))
  if missing:
    raise ValueError(f"No optimizer configured for parameter groups {missing}; add config.optim.<group>.")
  return {group: make_optimizer(optim_config[group]) for group in groups}
