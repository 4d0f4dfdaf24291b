"""Evaluation of a generator: the experiment's `config.eval.metrics`, by name.

Each evaluator is fn(config, generate) -> dict of results, where
generate(n) returns n samples in data space. New metrics register here.
"""
import numpy as np

from gans import checkpoint, data, report, run
from gans.metrics import modes


def _mode_coverage(config, generate) -> dict:
  means, std = data.mixture_modes(config.data.source)
  return modes.mode_metrics(generate(config.eval.num_samples), np.asarray(means), std)


EVALUATORS = {
    "modes": _mode_coverage,
}


def evaluate(config, generate) -> dict:
  results = {}
  for name in config.eval.metrics:
    if name not in EVALUATORS:
      raise ValueError(f"Unknown metric {name!r} in config.eval.metrics; valid: {', '.join(sorted(EVALUATORS))}.")
    results.update(EVALUATORS[name](config, generate))
  return results


def evaluate_state(setup, state) -> dict:
  """The configured metrics of `state`'s generator (EMA weights when kept), on the evaluation stream."""
  key = run.stream_key(setup.config.seed, run.EVAL_STREAM)
  return evaluate(setup.config, lambda n: setup.generate(state, n, key))


def evaluate_checkpoint(config, workdir: str) -> dict:
  """`--mode=eval`: evaluates the latest checkpoint in workdir and appends the results to eval.jsonl."""
  setup = run.Setup(config)
  _, state, _, step = setup.restore_latest(workdir, with_data=False)
  if step == 0:
    raise checkpoint.CheckpointError(f"No checkpoint in {workdir}/checkpoints; train first (--mode=train).")
  results = evaluate_state(setup, state)
  report.Reporter(workdir, config.train.steps, step).evaluation(step, results)
  return {"step": step, **results}
