"""K runs of one experiment as one vmapped step (gans/vectorize.py) against K separate steps, side by side.

  python benchmarks/sweep_step.py --experiment=gan_ring8 --runs=1,2,4,8
  python benchmarks/sweep_step.py --experiment=gan_ring8 --runs=1,2,4,8 --width=32 --batch_size=64   # a tiny step

Prints one JSON line per K: run_steps_per_sec of the runs trained one after another (K calls of the trainer's
own step, one per run's state) and vectorised (one call of the vmapped step over the stacked states), and
ratio = vectorised / sequential. Both are timed in alternating blocks in one process (the median block
counts) on synthetic batches, so the data pipeline is left out. On a CPU a compute-bound step gains
little from vmapping; a small step, bound by dispatch and per-call overhead, gains most.
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import numpy as np
from absl import app, flags

import experiments
from benchmarks.timing import calls_for, seconds_per_step
from gans import run, steps, vectorize
from gans.variants import common

flags.DEFINE_string("experiment", "gan_ring8", "Experiment whose runs are stacked.")
flags.DEFINE_list("runs", ["1", "2", "4", "8"], "Numbers of runs K to time.")
flags.DEFINE_integer("batch_size", 0, "Per-run batch; 0 = the experiment's.")
flags.DEFINE_integer("width", 0, "If > 0, every hidden layer of the 2D GANs' G and D this wide (a small step).")
flags.DEFINE_integer("blocks", 5, "Alternating timing blocks per form; the median block counts.")
flags.DEFINE_float("block_seconds", 2.0, "Approximate length of one timing block.")
FLAGS = flags.FLAGS


def config_for(seed: int):
  config = experiments.get_config(FLAGS.experiment)
  config.seed = seed
  if FLAGS.batch_size:
    config.train.batch_size = FLAGS.batch_size
  if FLAGS.width:
    config.model.g_hidden = (FLAGS.width,) * len(config.model.g_hidden)
    config.model.d_hidden = (FLAGS.width,) * len(config.model.d_hidden)
  return config


def steppers(num_runs: int):
  """(K separate steps in turn, one vmapped step of K runs), each a no-argument callable."""
  setups = [run.Setup(config_for(seed)) for seed in range(num_runs)]
  first = setups[0]
  phases = steps.due_phases(first.variant, 1)  # the phases of an ordinary step (no lazy regularisers)
  shape = (steps.batches_per_step(first.variant, phases), first.config.train.batch_size)
  shape += common.data_shape(first.config.data)
  name = "x" if len(shape) == 3 else "image"
  batches = {name: jax.random.uniform(jax.random.key(0), shape, minval=-1, maxval=1)}
  keys = [run.stream_key(s.config.seed, run.TRAIN_STREAM) for s in setups]

  alone_step = first.train_step(phases)
  alone_states = [s.initial_state for s in setups]

  def sequential():
    for k in range(num_runs):
      alone_states[k], metrics = alone_step(alone_states[k], batches, keys[k])
    jax.block_until_ready(metrics)

  mesh = vectorize.make_mesh(num_runs)
  per_run = vectorize.per_run(mesh)
  stacked = [jax.device_put(vectorize.stack([s.initial_state for s in setups]), per_run)]
  stacked_batches = jax.device_put(vectorize.stack([batches] * num_runs), vectorize.batch_sharding(mesh))
  stacked_keys = jax.device_put(vectorize.stack(keys), per_run)
  decays = jax.device_put(np.full((num_runs,), first.config.ema.decay, np.float32), per_run)
  vectorized_step = vectorize.make_step(first, phases, mesh)

  def vectorized():
    stacked[0], metrics = vectorized_step(stacked[0], stacked_batches, stacked_keys, decays)
    jax.block_until_ready(metrics)

  return sequential, vectorized


def measure(num_runs: int) -> dict:
  forms = dict(zip(("sequential", "vectorized"), steppers(num_runs)))
  calls = {name: calls_for(step, FLAGS.block_seconds) for name, step in forms.items()}
  times = {name: [] for name in forms}
  for _ in range(FLAGS.blocks):
    for name, step in forms.items():
      times[name].append(seconds_per_step(step, FLAGS.block_seconds, calls[name]))
  rates = {name: num_runs / statistics.median(t) for name, t in times.items()}
  return {"experiment": FLAGS.experiment, "runs": num_runs, "width": FLAGS.width or None,
          "devices": jax.device_count(), "sequential_run_steps_per_sec": rates["sequential"],
          "vectorized_run_steps_per_sec": rates["vectorized"], "ratio": rates["vectorized"] / rates["sequential"]}


def main(argv) -> None:
  del argv
  for num_runs in map(int, FLAGS.runs):
    print(json.dumps(measure(num_runs)), flush=True)


if __name__ == "__main__":
  app.run(main)
