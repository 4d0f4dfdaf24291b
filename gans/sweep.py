"""Sweeps: run experiments over seeds and config values, then tabulate their final evaluation (mean and std).

  python -m gans.sweep --experiments=gan_ring8,pacgan_ring8 --seeds=0,1,2 --root=runs/sweep -- --config.train.steps=8000
  python -m gans.sweep --experiments=gan_ring8 --seeds=0,1 --set=optim.d.learning_rate=1e-4,2e-4 --vectorize
  python -m gans.sweep --experiments=gan_ring8,pacgan_ring8 --seeds=0,1,2 --root=runs/sweep --summarize_only

Every point (experiment, seed, one value of each --set field) has its own workdir,
`<root>/<experiment>_s<seed>[_<field>=<value>...]`, so a stopped sweep resumes where it left off when
rerun. Without --vectorize each point trains in its own process, one after another. With --vectorize all
points of an experiment train as one program, their states stacked and the step vmapped over every
device (gans/vectorize.py); they may differ only in seed, optimizer hyperparameters and EMA decay. Either
kind resumes as either kind. The table reads the last line of each eval.jsonl, one row per experiment and
--set values, mean ± std over the seeds.
"""
import ast
import itertools
import json
import os
import subprocess
import sys

import numpy as np
from absl import app, flags

flags.DEFINE_list("experiments", [], "Experiments to sweep.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (config.seed) to run each experiment with.")
flags.DEFINE_multi_string("set", [], "FIELD=V1,V2,...: also sweep config.FIELD over these values (repeatable; "
                          "the points are the product of all --set fields and the seeds).")
flags.DEFINE_bool("vectorize", False, "Train all points of an experiment at once, as one vmapped program.")
flags.DEFINE_string("root", "runs/sweep", "Parent directory of the runs' workdirs.")
flags.DEFINE_bool("summarize_only", False, "Only print the table of the finished runs.")
FLAGS = flags.FLAGS

LAUNCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launch.py")

Settings = tuple[tuple[str, str], ...]  # ((dotted config field, value as typed), ...)


def parse_set_flags(set_flags: list[str]) -> list[Settings]:
  """["optim.d.learning_rate=1e-4,2e-4", "ema.decay=0.9,0.99"] -> the product of their values."""
  axes = []
  for text in set_flags:
    field, sep, values = text.partition("=")
    if not sep or not field or not values:
      raise ValueError(f"--set={text!r}: expected FIELD=V1,V2,... such as optim.d.learning_rate=1e-4,2e-4")
    axes.append([(field.removeprefix("config."), value) for value in values.split(",")])
  return [tuple(point) for point in itertools.product(*axes)]


def workdir(root: str, experiment: str, seed: str, settings: Settings = ()) -> str:
  return os.path.join(root, f"{experiment}_s{seed}" + "".join(f"_{field}={value}" for field, value in settings))


def parse_value(text: str, current):
  """`text` as a value of the type of the field's current value (what --config.FIELD=text would give)."""
  if isinstance(current, bool):
    if text.lower() not in ("true", "false", "1", "0"):
      raise ValueError(f"{text!r} is not a boolean")
    return text.lower() in ("true", "1")
  if isinstance(current, str):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text  # a string where a number was expected: the typed assignment below refuses it
  if isinstance(current, float) and isinstance(value, int):
    return float(value)
  return tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value


def apply_override(config, field: str, text: str) -> None:
  """config.<field> = text, typed as the field; an unknown field or a wrong type is one clear error."""
  *parents, name = field.split(".")
  node = config
  try:
    for parent in parents:
      node = node[parent]
    current = node[name]
  except (KeyError, AttributeError, TypeError):
    raise ValueError(f"Unknown config field {field!r}") from None
  try:
    node[name] = parse_value(text, current)
  except (ValueError, TypeError) as error:
    raise ValueError(f"config.{field}={text!r}: {error}") from None


def point_config(experiment: str, seed: str, settings: Settings, overrides: list[str]):
  """The config of one sweep point: the experiment's, then `--config.FIELD=VALUE` overrides, --set, seed."""
  import experiments  # the registry imports every experiment's module: only when a config is needed
  config = experiments.get_config(experiment)
  for override in overrides:
    field, sep, text = override.partition("=")
    if not (field.startswith("--config.") and sep):
      raise ValueError(f"A vectorised sweep takes only --config.FIELD=VALUE after --, not {override!r}")
    apply_override(config, field.removeprefix("--config."), text)
  for field, text in settings:
    apply_override(config, field, text)
  apply_override(config, "seed", seed)
  return config


def final_evaluation(path: str) -> dict | None:
  eval_file = os.path.join(path, "eval.jsonl")
  if not os.path.exists(eval_file):
    return None
  lines = open(eval_file).read().splitlines()
  return json.loads(lines[-1]) if lines else None


def summarize(root: str, experiments: list[str], seeds: list[str], grid: list[Settings] = ((),)) -> list[dict]:
  """One row per experiment and settings: the number of finished seeds and each metric's mean and std."""
  rows = []
  for experiment, settings in itertools.product(experiments, grid):
    results = [r for r in (final_evaluation(workdir(root, experiment, s, settings)) for s in seeds) if r]
    metrics = sorted({k for r in results for k in r if k != "step" and isinstance(r[k], (int, float))})
    label = " ".join([experiment] + [f"{field}={value}" for field, value in settings])
    row = {"experiment": label, "runs": len(results), "steps": sorted({r["step"] for r in results})}
    for name in metrics:
      values = np.array([r[name] for r in results if name in r], np.float64)
      row[name] = (float(values.mean()), float(values.std()))
    rows.append(row)
  return rows


def format_table(rows: list[dict]) -> str:
  metrics = sorted({k for row in rows for k in row if k not in ("experiment", "runs", "steps")})
  lines = ["| experiment | runs | steps | " + " | ".join(metrics) + " |",
           "| --- | --- | --- | " + " | ".join("---" for _ in metrics) + " |"]
  for row in rows:
    cells = [f"{row[m][0]:.3g} ± {row[m][1]:.2g}" if m in row else "-" for m in metrics]
    lines.append(f"| {row['experiment']} | {row['runs']} | {','.join(map(str, row['steps']))} | "
                 + " | ".join(cells) + " |")
  return "\n".join(lines)


def run_sequentially(experiment: str, seeds: list[str], grid: list[Settings], overrides: list[str]) -> None:
  """One launch.py process per point, one after another; each logs to <workdir>/launch.log."""
  for seed, settings in itertools.product(seeds, grid):
    path = workdir(FLAGS.root, experiment, seed, settings)
    os.makedirs(path, exist_ok=True)
    command = [sys.executable, LAUNCH, f"--experiment={experiment}", f"--workdir={path}", f"--config.seed={seed}",
               *(f"--config.{field}={value}" for field, value in settings), *overrides]
    print(" ".join(command), flush=True)
    with open(os.path.join(path, "launch.log"), "a") as log:
      subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)


def run_vectorized(experiment: str, seeds: list[str], grid: list[Settings], overrides: list[str]) -> None:
  """Every point of the experiment in one program, in this process."""
  from gans import run, trainer
  points = list(itertools.product(seeds, grid))
  configs = [point_config(experiment, seed, settings, overrides) for seed, settings in points]
  workdirs = [workdir(FLAGS.root, experiment, seed, settings) for seed, settings in points]
  run.use_compilation_cache(run.default_compilation_cache())
  print(f"{experiment}: {len(points)} runs as one program -> {', '.join(workdirs)}", flush=True)
  trainer.train_runs(configs, workdirs)


def main(argv) -> None:
  overrides = argv[1:]
  grid = parse_set_flags(FLAGS.set)
  if not FLAGS.summarize_only:
    for experiment in FLAGS.experiments:
      (run_vectorized if FLAGS.vectorize else run_sequentially)(experiment, FLAGS.seeds, grid, overrides)
  print(format_table(summarize(FLAGS.root, FLAGS.experiments, FLAGS.seeds, grid)))


if __name__ == "__main__":
  app.run(main)
