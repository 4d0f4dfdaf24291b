"""Two processes compute what one computes: the launcher under jax.distributed on this machine's CPU.

Three launches of `launch.py` with the same tiny gan_ring8 config and seed:
  one process with 4 fake CPU devices, trained for STEPS steps;
  two processes with 2 fake CPU devices each (`--distributed`, a coordinator on 127.0.0.1, gloo collectives),
  trained for STEPS // 2 steps and then resumed, as two processes again, to STEPS.
Both make one 4-device mesh and one global batch of 8 per step, so the final checkpoints must hold the same state.

Why to float32 rounding and not bit for bit: the data pipeline shards each epoch's permutation, process s
reading every 2nd element from s on. The two processes' global batch therefore holds exactly the examples of
the one process's batch, in another row order (0, 2, 4, 6, 1, 3, 5, 7), so the sums inside the loss and the
gradient all-reduce add the same numbers in another order. gan_ring8 (no PacGAN packing, which would group
neighbouring rows into one discriminator input; an MLP discriminator without batch norm) has a loss that is a
mean over independent examples, so it does not depend on row order beyond rounding; G's latents are drawn
inside the step for the global batch, the same in both runs, and so is the batch its batch norm sees.

The resume in the middle checks that each process restores its own data iterator state: process 1 resuming
from process 0's position would read other examples, and the states would differ. (Both processes reading
shard 0 makes this test fail at the first D bias: checked once by hand.)

Also here: SIGTERM to one of two processes stops both at one step with one checkpoint, and a checkpoint of
another process count is refused by name.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import experiments
from gans import checkpoint, run, trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 4
# Tiny, and 16 points so that the 4 steps cross an epoch boundary (2 batches of 8 per epoch).
OVERRIDES = {
    "model.g_hidden": (16, 16), "model.d_hidden": (16,), "data.size": 16, "train.batch_size": 8,
    "train.log_every": 1, "train.checkpoint_every": 2, "train.sample_every": 0, "train.num_grid_samples": 100,
    "eval.num_samples": 100,  # as many as the picture: one sampler compilation serves both
}
# Per launch. The whole test takes ~41 s of CPU time (112 s of wall time on 2 cores at load 16).
TIMEOUT_SECONDS = 240


def tiny_config(steps: int):
  config = experiments.get_config("gan_ring8")
  with config.unlocked():
    for dotted, value in {**OVERRIDES, "train.steps": steps}.items():
      section, name = dotted.split(".")
      config[section][name] = value
  return config


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def launch(workdir, steps: int, log_path, devices: int, distributed_args=()) -> subprocess.Popen:
  config_flags = [f"--config.{dotted}={value}" for dotted, value in {**OVERRIDES, "train.steps": steps}.items()]
  env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices),
         "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
         # The test session's compilation cache (tests/conftest.py): the resumed launch reuses the programs.
         "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir or "",
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
  with open(log_path, "w") as log:
    return subprocess.Popen(
        [sys.executable, os.path.join(REPO, "launch.py"), "--experiment=gan_ring8", f"--workdir={workdir}",
         *config_flags, *distributed_args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def launch_two_processes(workdir, steps: int, log_dir) -> list[subprocess.Popen]:
  address = f"127.0.0.1:{free_port()}"
  return [launch(workdir, steps, log_dir / f"two_{steps}_p{index}.log", devices=2, distributed_args=(
      "--distributed", f"--coordinator_address={address}", "--num_processes=2", f"--process_id={index}"))
          for index in range(2)]


def wait_all(processes: list[subprocess.Popen], timeout: float, expected_returncode: int = 0) -> None:
  """Waits for every process; the first unexpected exit (or the timeout) kills the others, so no test hangs
  on a collective whose peer has died."""
  deadline = time.monotonic() + timeout
  try:
    while any(p.poll() is None for p in processes):
      failed = [p for p in processes if p.poll() not in (None, expected_returncode)]
      if failed or time.monotonic() > deadline:
        break
      time.sleep(0.2)
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
      p.wait()


def assert_succeeded(processes: list[subprocess.Popen], log_paths) -> None:
  for p, path in zip(processes, log_paths):
    if p.returncode != 0:
      tail = "".join(open(path).readlines()[-40:])
      pytest.fail(f"{' '.join(p.args[:3])} ... exited with {p.returncode} (-9: killed at the timeout); "
                  f"{path}:\n{tail}")


def final_state(workdir, config):
  setup = run.Setup(config)
  state, _ = checkpoint.Checkpointer(str(workdir)).restore(STEPS, setup.initial_state, setup.meta, with_data=False)
  return setup.initial_state, state


def test_two_processes_compute_what_one_computes(tmp_path):
  one, two = tmp_path / "one", tmp_path / "two"
  processes = [launch(one, STEPS, tmp_path / "one.log", devices=4), *launch_two_processes(two, STEPS // 2, tmp_path)]
  logs = [tmp_path / "one.log", tmp_path / f"two_{STEPS // 2}_p0.log", tmp_path / f"two_{STEPS // 2}_p1.log"]
  wait_all(processes, TIMEOUT_SECONDS)
  assert_succeeded(processes, logs)
  resumed = launch_two_processes(two, STEPS, tmp_path)
  wait_all(resumed, TIMEOUT_SECONDS)
  assert_succeeded(resumed, [tmp_path / f"two_{STEPS}_p{index}.log" for index in range(2)])

  config = tiny_config(STEPS)
  initial, state_one = final_state(one, config)
  _, state_two = final_state(two, config)
  assert int(state_one.step) == int(state_two.step) == STEPS
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(state_one), jax.tree.leaves(state_two)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-7, err_msg=jax.tree_util.keystr(path))
  moved = [np.max(np.abs(np.asarray(a) - np.asarray(before)))
           for a, before in zip(jax.tree.leaves(state_one.params), jax.tree.leaves(initial.params))]
  assert min(moved) > 1e-6, "training left a parameter where it started; the comparison would prove nothing"

  # Each process read, and checkpointed the position of, its own shard of the data.
  data_files = two / "checkpoints" / str(STEPS) / "data"
  for index in range(2):
    pipeline = json.load(open(data_files / f"process_{index}-of-2.json"))["pipeline"]
    assert (pipeline["shard_index"], pipeline["shard_count"], pipeline["batch_size"]) == (index, 2, 4)

  # Process 0 alone reports: one line per logged step, the same losses, and the end-of-training picture.
  records = {name: [json.loads(line) for line in open(workdir / "metrics.jsonl")] for name, workdir in
             (("one", one), ("two", two))}
  assert [r["step"] for r in records["two"]] == [r["step"] for r in records["one"]] == list(range(1, STEPS + 1))
  for a, b in zip(records["one"], records["two"]):
    assert b == pytest.approx(a, rel=1e-5, abs=1e-7)
  assert [json.loads(line)["step"] for line in open(two / "eval.jsonl")] == [STEPS // 2, STEPS]
  assert sorted(os.listdir(two / "samples")) == [f"step_{STEPS // 2:07d}.png", f"step_{STEPS:07d}.png"]


def test_a_checkpoint_of_another_process_count_is_refused_by_name(tmp_path):
  config = tiny_config(steps=1)
  with config.unlocked():
    config.eval.metrics = ()
  trainer.train_and_evaluate(config, str(tmp_path))
  # What two processes leave instead of the one process's data state.
  data_directory = tmp_path / "checkpoints" / "1" / "data"
  state = json.load(open(data_directory / "metadata"))
  os.remove(data_directory / "metadata")
  for index in range(2):
    json.dump({**state, "pipeline": {**state["pipeline"], "shard_index": index, "shard_count": 2}},
              open(data_directory / f"process_{index}-of-2.json", "w"))
  with config.unlocked():
    config.train.steps = 2
  with pytest.raises(checkpoint.CheckpointError, match=r"another number of processes \(process_0-of-2\.json, "
                     r"process_1-of-2\.json; this is process 0 of 1\)\. Resume with as many processes"):
    trainer.train_and_evaluate(config, str(tmp_path))
  # Sampling and evaluation need no data state: they read it with any number of processes.
  _, state, _, step = run.Setup(config).restore_latest(str(tmp_path), with_data=False)
  assert step == 1 and int(state.step) == 1


def test_sigterm_to_one_process_stops_both_at_one_step_with_a_checkpoint(tmp_path):
  """Saving is a collective, so the processes must agree on the step: JAX's preemption service tells the
  other process, and both save the same step and exit with the trainer's message."""
  processes = launch_two_processes(tmp_path / "run", 10**6, tmp_path)
  metrics = tmp_path / "run" / "metrics.jsonl"
  deadline = time.monotonic() + TIMEOUT_SECONDS
  try:
    while not (metrics.exists() and metrics.stat().st_size) and time.monotonic() < deadline:
      if any(p.poll() is not None for p in processes):
        break
      time.sleep(0.2)
    if processes[1].poll() is None:
      processes[1].send_signal(signal.SIGTERM)
  finally:
    wait_all(processes, max(deadline - time.monotonic(), 1.0), expected_returncode=2)  # launch.py's error exit
  logs = [open(tmp_path / f"two_{10**6}_p{index}.log").read() for index in range(2)]
  saved = [re.findall(r"SIGTERM received: saved a checkpoint at step (\d+)", log) for log in logs]
  assert all(len(steps) == 1 for steps in saved), "\n".join(log[-3000:] for log in logs)
  assert [p.returncode for p in processes] == [2, 2]
  step = saved[0][0]
  assert saved[1][0] == step and int(step) >= 1
  assert sorted(os.listdir(tmp_path / "run" / "checkpoints" / step / "data")) == [
      "commit_success.txt", "process_0-of-2.json", "process_1-of-2.json"]
