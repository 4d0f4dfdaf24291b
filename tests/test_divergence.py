"""The divergence guard: a non-finite update stops the run (keeping the last good checkpoint) or is skipped."""
import json

import jax
import numpy as np
import pytest

from gans import checkpoint, run, steps, trainer
from tests.test_training import params_of, synthetic_batches, tiny_config


class _PoisonedIterator:
  """The trainer's data iterator with NaN in the batch it reads at index `at` (one batch per step here)."""

  def __init__(self, iterator, at: int):
    self._iterator, self._at, self._count = iterator, at, 0

  def __next__(self):
    batch = next(self._iterator)
    if self._count == self._at:
      batch = {name: np.full_like(x, np.nan) if x.dtype.kind == "f" else x for name, x in batch.items()}
    self._count += 1
    return batch

  def __getattr__(self, name):  # get_state, set_state, close
    return getattr(self._iterator, name)


def _poison_batch(monkeypatch, at: int):
  make_iterator = trainer.data.make_iterator
  monkeypatch.setattr(trainer.data, "make_iterator", lambda *a, **k: _PoisonedIterator(make_iterator(*a, **k), at))


def _all_finite(state) -> bool:
  return all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves((state.params, state.opt_state))
             if np.issubdtype(np.asarray(x).dtype, np.floating))


def test_a_nan_stops_the_run_naming_step_and_phase_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  # NaN data at the fifth step (the metrics' step 5); the next checkpoint due (step 6) must not be written.
  _poison_batch(monkeypatch, at=4)
  config = tiny_config("gan_ring8", steps=12, log_every=4, checkpoint_every=3, sample_every=0)
  with pytest.raises(trainer.Diverged, match=r"phase d_main .* at step 5; no checkpoint of it .* step 3, is kept"):
    trainer.train_and_evaluate(config, str(tmp_path))
  assert checkpoint.Checkpointer(str(tmp_path)).latest_step() == 3
  step, state = params_of(str(tmp_path), config)
  assert step == 3 and _all_finite(state)
  logged = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in logged] == [4]  # the error came at the first read-back after the NaN (step 8 not run)


def test_nan_policy_skip_drops_the_update_counts_it_and_trains_on(tmp_path, monkeypatch):
  _poison_batch(monkeypatch, at=2)
  config = tiny_config("gan_ring8", steps=4, log_every=1, checkpoint_every=4, sample_every=0)
  with config.unlocked():
    config.train.nan_policy = "skip"
    config.eval.metrics = ()
  state = trainer.train_and_evaluate(config, str(tmp_path))
  skipped = [json.loads(line)["train/skipped_updates"] for line in open(tmp_path / "metrics.jsonl")]
  assert skipped == [0, 0, 1, 1]  # D's update at the third step; G's update on that step was finite
  assert int(state.first_nonfinite[0]) == 2 and _all_finite(state)
  assert {int(c) for c in jax.tree.leaves(state.opt_state["d"]) if c.dtype == np.int32} == {3}


def test_an_unknown_nan_policy_is_refused_by_name_before_anything_is_written(tmp_path):
  config = tiny_config("gan_ring8")
  with config.unlocked():
    config.train.nan_policy = "ignore"
  with pytest.raises(ValueError, match="nan_policy 'ignore'; valid: stop, skip"):
    trainer.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("nan_policy", ["stop", "skip"])
def test_a_non_finite_update_is_withheld_and_stop_freezes_every_later_one(nan_policy):
  config = tiny_config("gan_ring8")
  setup = run.Setup(config, num_devices=1)
  train_step = jax.jit(steps.make_train_step(setup.variant, setup.optimizers, ("d_main", "g_main"), 0.9, nan_policy))
  good = synthetic_batches(config, 1)
  bad = jax.tree.map(lambda x: x * np.nan, good)
  state, _ = train_step(setup.initial_state, bad, jax.random.key(0))
  # D's update saw NaN data and is withheld; G's (no real data in its loss) is withheld only under "stop".
  assert np.asarray(state.first_nonfinite).tolist() == [0, 0]
  assert _same(state.params["d"], setup.initial_state.params["d"])
  assert _same(state.params["g"], setup.initial_state.params["g"]) == (nan_policy == "stop")
  after, _ = train_step(state, good, jax.random.key(0))
  assert _same(after.params, state.params) == (nan_policy == "stop")
  assert int(after.skipped_updates) == (4 if nan_policy == "stop" else 1)


def _same(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
