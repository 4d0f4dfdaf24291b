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
`fold_in(fold_in(step_key, p), i)`, so any step can be replayed from
(state, batch, base_key).
"""
from typing import Mapping

import jax
import jax.numpy as jnp
import optax

from gans.state import GanState, GanVariant, Phase


def init_state(variant: GanVariant, optimizers: Mapping[str, optax.GradientTransformation], key: jax.Array,
               use_ema: bool) -> GanState:
  params, model_state = variant.init(key)
  return GanState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state={group: optimizers[group].init(p) for group, p in params.items()},
      ema_params={group: params[group] for group in variant.ema_groups} if use_ema else {},
      model_state=model_state,
  )


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


def _run_phase(phase: Phase, optimizers, state: GanState, batch, key: jax.Array):
  def loss_of_trainable(trainable):
    params = {**state.params, **trainable}
    return phase.loss(params, state.model_state, batch, key)

  trainable = {group: state.params[group] for group in phase.updates}
  (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_of_trainable, has_aux=True)(trainable)
  params, opt_state = dict(state.params), dict(state.opt_state)
  for group in phase.updates:
    updates, opt_state[group] = optimizers[group].update(grads[group], state.opt_state[group], params[group])
    if phase.lr_multiple != 1.0:
      updates = jax.tree.map(lambda u: u * phase.lr_multiple, updates)
    params[group] = optax.apply_updates(params[group], updates)
  metrics = {"loss": loss, **metrics}
  return state.replace(params=params, opt_state=opt_state, model_state=model_state), metrics


def _ema_update(ema_params, params, decay):
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)


def make_train_step(variant: GanVariant, optimizers: Mapping[str, optax.GradientTransformation],
                    phase_names: tuple[str, ...], ema_decay: float):
  """Returns train_step(state, batches, base_key) -> (state, metrics) running `phase_names`."""
  phases = [(index, phase) for index, phase in enumerate(variant.phases) if phase.name in phase_names]
  ema_batches = max(phase.batch_multiple for _, phase in phases)

  def train_step(state: GanState, batches, base_key: jax.Array):
    step_key = jax.random.fold_in(base_key, state.step)
    metrics = {}
    for index, phase in phases:
      phase_key = jax.random.fold_in(step_key, index)
      runs = []
      for run in range(phase.repeats):
        batch = _merged_batches(batches, run * phase.batch_multiple, phase.batch_multiple)
        state, run_metrics = _run_phase(phase, optimizers, state, batch, jax.random.fold_in(phase_key, run))
        runs.append(run_metrics)
      for name in runs[0]:
        metrics[f"{phase.log_as or phase.name}/{name}"] = jnp.mean(jnp.stack([m[name] for m in runs]))
    if state.ema_params:
      ema_params = {group: _ema_update(state.ema_params[group], state.params[group], ema_decay ** ema_batches)
                    for group in state.ema_params}
      state = state.replace(ema_params=ema_params)
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

  Schedules: "constant"; "linear_decay" (n_epochs, n_epochs_decay, steps_per_epoch: see linear_decay_schedule).
  """
  schedule = optim_config.get("schedule", None)
  if not schedule or schedule.get("name", "constant") == "constant":
    return optim_config.learning_rate
  if schedule.name == "linear_decay":
    return linear_decay_schedule(optim_config.learning_rate, schedule.n_epochs, schedule.n_epochs_decay,
                                 schedule.steps_per_epoch)
  raise ValueError(f"Unknown schedule {schedule.name!r} in config.optim; valid: constant, linear_decay.")


def make_optimizer(optim_config) -> optax.GradientTransformation:
  """Adam by default (DCGAN: lr 2e-4, b1 0.5); `name` selects another optax optimizer; `schedule` (optional)
  makes the learning rate an optax schedule (learning_rate_of)."""
  name = optim_config.get("name", "adam")
  learning_rate = learning_rate_of(optim_config)
  if name == "adam":
    return optax.adam(learning_rate, b1=optim_config.b1, b2=optim_config.b2, eps=optim_config.get("eps", 1e-8))
  if name == "rmsprop":
    return optax.rmsprop(learning_rate)
  if name == "sgd":
    return optax.sgd(learning_rate)
  raise ValueError(f"Unknown optimizer {name!r} in config.optim; valid: adam, rmsprop, sgd.")


def make_optimizers(optim_config, groups) -> dict[str, optax.GradientTransformation]:
  """One optimizer per parameter group, from config.optim.<group>."""
  missing = sorted(set(groups) - set(optim_config))
  if missing:
    raise ValueError(f"No optimizer configured for parameter groups {missing}; add config.optim.<group>.")
  return {group: make_optimizer(optim_config[group]) for group in groups}
