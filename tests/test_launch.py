"""launch.py as a user meets it: listing, bad names, bad overrides, missing data (one line, no traceback)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(*args, cwd=ROOT):
  return subprocess.run([sys.executable, os.path.join(ROOT, "launch.py"), *args], capture_output=True, text=True,
                        cwd=cwd, timeout=300)


def test_list_prints_every_experiment_with_its_description():
  import experiments
  result = launch("--list")
  assert result.returncode == 0
  for name in experiments.NAMES:
    line = next(l for l in result.stdout.splitlines() if l.startswith(name + " "))
    assert line[len(name):].strip() == experiments.description(name) != ""


def test_unknown_experiment_lists_the_valid_names_without_traceback():
  result = launch("--experiment=dcgan_digts")
  assert result.returncode != 0
  assert "Unknown experiment 'dcgan_digts'" in result.stderr and "dcgan_digits" in result.stderr
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("override, expected", [
    ("--config.train.batch_szie=3", 'Did you mean "batch_size"'),
    ("--config.trian.steps=3", 'Did you mean "train"'),
    ("--config.train.batch_size=abc", "--config.train.batch_size=abc"),
])
def test_bad_overrides_name_the_key(override, expected):
  result = launch("--experiment=dcgan_digits", override)
  assert result.returncode != 0
  assert expected in result.stderr and "Traceback" not in result.stderr


def test_missing_dataset_says_how_to_get_it(tmp_path):
  missing = str(tmp_path / "nowhere")
  result = launch("--experiment=dcgan_fashion_mnist", f"--workdir={tmp_path / 'run'}", f"--config.data.path={missing}")
  assert result.returncode != 0
  assert missing in result.stderr and "dataset-fashion-mnist" in result.stderr
  assert "Traceback" not in result.stderr


def test_sample_without_checkpoint_says_to_train_first(tmp_path):
  result = launch("--experiment=gan_ring8", f"--workdir={tmp_path}", "--mode=sample")
  assert result.returncode != 0 and "train first" in result.stderr and "Traceback" not in result.stderr
