"""Seed sweeps: run one experiment over several seeds, then tabulate its final evaluation (mean and std).

  python -m gans.sweep --experiments=gan_ring8,pacgan_ring8 --seeds=0,1,2 --root=runs/sweep -- --config.train.steps=8000
  python -m gans.sweep --experiments=gan_ring8,pacgan_ring8 --seeds=0,1,2 --root=runs/sweep --summarize_only

Each (experiment, seed) trains in its own process and workdir `<root>/<experiment>_s<seed>`, so a sweep
that is stopped resumes where it left off when rerun. The table reads the last line of each eval.jsonl.
"""
import json
import os
import subprocess
import sys

import numpy as np
from absl import app, flags

flags.DEFINE_list("experiments", [], "Experiments to sweep.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (config.seed) to run each experiment with.")
flags.DEFINE_string("root", "runs/sweep", "Parent directory of the runs' workdirs.")
flags.DEFINE_bool("summarize_only", False, "Only print the table of the finished runs.")
FLAGS = flags.FLAGS

LAUNCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launch.py")


def workdir(root: str, experiment: str, seed: str) -> str:
  return os.path.join(root, f"{experiment}_s{seed}")


def final_evaluation(path: str) -> dict | None:
  eval_file = os.path.join(path, "eval.jsonl")
  if not os.path.exists(eval_file):
    return None
  lines = open(eval_file).read().splitlines()
  return json.loads(lines[-1]) if lines else None


def summarize(root: str, experiments: list[str], seeds: list[str]) -> list[dict]:
  """One row per experiment: the number of finished seeds and each metric's mean and std over them."""
  rows = []
  for experiment in experiments:
    results = [r for r in (final_evaluation(workdir(root, experiment, s)) for s in seeds) if r]
    metrics = sorted({k for r in results for k in r if k != "step" and isinstance(r[k], (int, float))})
    row = {"experiment": experiment, "runs": len(results), "steps": sorted({r["step"] for r in results})}
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


def main(argv) -> None:
  overrides = argv[1:]
  if not FLAGS.summarize_only:
    for seed in FLAGS.seeds:
      for experiment in FLAGS.experiments:
        path = workdir(FLAGS.root, experiment, seed)
        os.makedirs(path, exist_ok=True)
        command = [sys.executable, LAUNCH, f"--experiment={experiment}", f"--workdir={path}",
                   f"--config.seed={seed}", *overrides]
        print(" ".join(command), flush=True)
        with open(os.path.join(path, "launch.log"), "a") as log:
          subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
  print(format_table(summarize(FLAGS.root, FLAGS.experiments, FLAGS.seeds)))


if __name__ == "__main__":
  app.run(main)
