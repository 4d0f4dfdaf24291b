"""Many runs of one experiment as one program: states stacked on a `runs` axis, the step vmapped over it.

Runs may differ only where the compiled step does not: the seed (initialisation, latents, data order), the
optimizers' numeric hyperparameters (held in the optimizer state by optax.inject_hyperparams), the loss
weights a variant reads at run time (GanVariant.hyperparameters, held in model_state) and the EMA decay
(passed to the step per run). Anything else changes shapes or code and is refused by name.

The mesh has a `runs` axis and a `data` axis: gcd(runs, devices) devices along `runs`, the rest along
`data`, so 8 devices train 8 runs side by side, or 4 runs on 2 devices each. Each run keeps its own
Setup, data iterator, workdir, reports and checkpoints, written exactly as a run trained alone writes
them, so a vectorised run resumes vectorised or alone (gans/trainer.py drives both).
"""
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gans import layers, sharding, steps

RUNS_AXIS = "runs"
# Dotted config fields that may differ between the runs of one vectorised sweep.
VARYING_FIELDS = (r"seed", r"ema\.decay", r"optim\.[^.]+\.(learning_rate|b1|b2|eps)")


class VectorizeError(ValueError):
  """The runs cannot share one compiled step; the message names the field."""


def _flatten(tree, prefix: str = "") -> dict:
  if hasattr(tree, "items"):
    return {k: v for key, value in tree.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
  return {prefix[:-1]: tree}


def check_vectorizable(configs, variants) -> None:
  """Refuses runs that differ in a field outside VARYING_FIELDS and the variants' run-time loss weights
  (GanVariant.hyperparameters, of every run: a weight that is 0 in one run is not computed there), naming
  the first such field."""
  weights = set.intersection(*(set(variant.hyperparameters) for variant in variants))
  varying = VARYING_FIELDS + tuple(re.escape(f"model.{name}") for name in sorted(weights))
  flat = [_flatten(config.to_dict()) for config in configs]
  # A learning-rate schedule is code built from run 0's config: the learning rate may then not differ.
  scheduled = {f"optim.{group}.learning_rate" for group, settings in configs[0].optim.items()
               if (settings.get("schedule") or {}).get("name", "constant") != "constant"}
  for field in sorted(set().union(*flat)):
    values = [f.get(field) for f in flat]
    allowed = field not in scheduled and any(re.fullmatch(p, field) for p in varying)
    if any(v != values[0] for v in values) and not allowed:
      raise VectorizeError(
          f"config.{field} differs between the runs ({', '.join(map(repr, values))}); a vectorised sweep "
          f"may vary only the seed, optim.<group>.learning_rate/b1/b2/eps, ema.decay and the variant's "
          f"run-time loss weights when nonzero in every run ({', '.join(sorted(weights)) or 'none here'}), "
          f"which leave the compiled step unchanged. Sweep config.{field} without --vectorize.")
  if jax.process_count() > 1:
    raise VectorizeError("Vectorised sweeps run on one host; run a multi-host sweep without --vectorize.")


def make_mesh(num_runs: int, num_devices: int | None = None) -> Mesh:
  devices = np.asarray(jax.devices()[:num_devices])
  along_runs = math.gcd(num_runs, devices.size)
  return Mesh(devices.reshape(along_runs, devices.size // along_runs), (RUNS_AXIS, sharding.DATA_AXIS))


def stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def run_slice(tree, k: int):
  return jax.tree.map(lambda x: x[k], tree)


def per_run(mesh: Mesh) -> NamedSharding:
  """Leading axis over `runs`, the rest replicated: stacked states, keys, hyperparameters, metrics."""
  return NamedSharding(mesh, P(RUNS_AXIS))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Stacked batches [runs, batches per step, examples, ...]: runs over `runs`, examples over `data`."""
  return NamedSharding(mesh, P(RUNS_AXIS, None, sharding.DATA_AXIS))


def make_step(setup, phases: tuple[str, ...], mesh: Mesh):
  """step(states, batches, base_keys, ema_decays) -> (states, metrics), every leaf with a leading runs axis.

  `setup` is any of the runs' Setups: their variants and optimizers build the same program.
  """
  def one_run(state, batches, base_key, ema_decay):
    return steps.make_train_step(setup.variant, setup.optimizers, phases, ema_decay,
                                 setup.config.train.nan_policy)(state, batches, base_key)

  # Manual over `runs`: each device group vmaps over its own runs, and only the `data` axis is left to
  # XLA's partitioner. (Partitioning the vmapped program along `runs` itself splits the grouped
  # convolutions vmap makes of conv layers, which XLA's SPMD partitioner gets wrong.)
  runs = P(RUNS_AXIS)
  local_runs = jax.shard_map(jax.vmap(one_run), mesh=mesh, in_specs=(runs, runs, runs, runs),
                             out_specs=(runs, runs), axis_names={RUNS_AXIS})
  return jax.jit(local_runs, donate_argnums=0, out_shardings=(per_run(mesh), per_run(mesh)),
                 compiler_options=layers.xla_cpu_compiler_options())
