"""Vectorised sweeps: run k of a vmapped sweep computes what its config trained alone computes."""
import json
import shutil

import jax
import numpy as np
import pytest

from gans import sweep, trainer, vectorize
from tests.test_training import params_of, tiny_config


def _configs(name: str, steps: int, **varying):
  """Two runs of `name` differing in seed and in each of `varying` (dotted field -> two values)."""
  configs = []
  for k in range(2):
    config = tiny_config(name, steps=steps, log_every=1, checkpoint_every=2, sample_every=0)
    with config.unlocked():
      config.eval.metrics = ()
      config.ema.enabled = True
    config.seed = 10 + k
    for field, values in varying.items():
      sweep.apply_override(config, field, str(values[k]))
    configs.append(config)
  return configs


def _assert_states_close(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-5, atol=2e-6)


VARYING = {"optim.d.learning_rate": (1e-3, 3e-3), "optim.g.b1": (0.5, 0.0), "ema.decay": (0.5, 0.9)}


# StyleGAN2 trains with SGD here: vmapping reorders its float32 sums, and Adam turns a gradient entry of
# rounding size into an update of any size up to the learning rate (with Adam one weight of 36,864 differed
# by 3e-5 after 3 steps), which says nothing about the vectorisation.
@pytest.mark.parametrize("name,num_devices,loss_weights,optimizer", [
    ("gan_ring8", 1, {"model.gp_weight": (1.0, 10.0)}, "adam"), ("pacgan_ring8", 4, {}, "adam"),
    ("dcgan_digits", 4, {}, "adam"),
    ("stylegan2_digits", 1, {"model.r1_gamma": (10.0, 1.0), "model.pl_weight": (2.0, 0.5)}, "sgd")])
def test_run_k_of_a_vectorised_sweep_is_that_run_trained_alone(tmp_path, name, num_devices, loss_weights, optimizer):
  configs = _configs(name, steps=3, **VARYING, **loss_weights)
  for config in configs:
    for group in config.optim:
      config.optim[group].name = optimizer
  together = trainer.train_runs(configs, [str(tmp_path / f"v{k}") for k in range(2)], num_devices=num_devices)
  for k, config in enumerate(configs):
    alone = trainer.train_and_evaluate(config, str(tmp_path / f"a{k}"), num_devices=num_devices)
    _assert_states_close(together[k], alone)
    logged = [json.loads(line) for line in open(tmp_path / f"v{k}" / "metrics.jsonl")]
    expected = [json.loads(line) for line in open(tmp_path / f"a{k}" / "metrics.jsonl")]
    assert [r["step"] for r in logged] == [1, 2, 3]
    for got, want in zip(logged, expected):
      np.testing.assert_allclose([got[m] for m in sorted(want)], [want[m] for m in sorted(want)], rtol=1e-4)
  # The runs really differ: different seeds and hyperparameters give different generators.
  assert not np.allclose(jax.tree.leaves(together[0].params["g"])[0], jax.tree.leaves(together[1].params["g"])[0])


def test_a_vectorised_sweep_resumes_vectorised_or_alone(tmp_path):
  configs = _configs("gan_ring8", steps=2, **VARYING)
  workdirs = [str(tmp_path / f"v{k}") for k in range(2)]
  trainer.train_runs(configs, workdirs)
  shutil.copytree(workdirs[1], tmp_path / "alone1")
  for config in configs:
    with config.unlocked():
      config.train.steps = 4
  resumed = trainer.train_runs(configs, workdirs)
  resumed_alone = trainer.train_and_evaluate(configs[1], str(tmp_path / "alone1"))
  straight = [trainer.train_and_evaluate(c, str(tmp_path / f"a{k}")) for k, c in enumerate(configs)]
  _assert_states_close(resumed[0], straight[0])
  _assert_states_close(resumed[1], straight[1])
  _assert_states_close(resumed_alone, straight[1])
  assert params_of(workdirs[0], configs[0])[0] == 4


def _variants(configs):
  return [trainer.get_variant(config.variant)(config) for config in configs]


@pytest.mark.parametrize("field,values", [("model.g_hidden", ((16,), (32,))), ("train.batch_size", (8, 16)),
                                          ("model.gp_weight", (0.0, 10.0))])  # 0 turns the penalty off
def test_fields_that_change_the_program_are_refused_by_name(field, values):
  configs = _configs("gan_ring8", steps=1)
  for config, value in zip(configs, values):
    sweep.apply_override(config, field, str(value))
  with pytest.raises(vectorize.VectorizeError, match=rf"config\.{field} differs between the runs"):
    vectorize.check_vectorizable(configs, _variants(configs))
  allowed = _configs("gan_ring8", steps=1, **VARYING, **{"model.gp_weight": (1.0, 10.0)})
  vectorize.check_vectorizable(allowed, _variants(allowed))  # seeds, VARYING and nonzero loss weights may differ


def test_runs_at_different_steps_are_not_resumed_together(tmp_path):
  configs = _configs("gan_ring8", steps=1)
  trainer.train_and_evaluate(configs[0], str(tmp_path / "v0"))
  with pytest.raises(trainer.checkpoint.CheckpointError, match="must resume from the same step"):
    trainer.train_runs(configs, [str(tmp_path / "v0"), str(tmp_path / "v1")])


def test_the_mesh_puts_as_many_runs_side_by_side_as_divide_the_devices():
  assert vectorize.make_mesh(8, 4).shape == {"runs": 4, "data": 1}
  assert vectorize.make_mesh(2, 4).shape == {"runs": 2, "data": 2}
  assert vectorize.make_mesh(3, 4).shape == {"runs": 1, "data": 4}


def test_sweep_points_workdirs_and_typed_overrides(tmp_path):
  grid = sweep.parse_set_flags(["optim.d.learning_rate=1e-4,2e-4", "ema.decay=0.9"])
  assert grid == [(("optim.d.learning_rate", "1e-4"), ("ema.decay", "0.9")),
                  (("optim.d.learning_rate", "2e-4"), ("ema.decay", "0.9"))]
  assert sweep.workdir("r", "gan_ring8", "3", grid[1]).endswith("gan_ring8_s3_optim.d.learning_rate=2e-4_ema.decay=0.9")
  config = sweep.point_config("gan_ring8", "3", grid[1], ["--config.train.steps=7", "--config.model.g_hidden=(8,8)"])
  assert (config.seed, config.optim.d.learning_rate, config.ema.decay) == (3, 2e-4, 0.9)
  assert config.train.steps == 7 and config.model.g_hidden == (8, 8)
  with pytest.raises(ValueError, match="Unknown config field 'optim.d.learning_rat'"):
    sweep.apply_override(config, "optim.d.learning_rat", "1")
  with pytest.raises(ValueError, match="config.train.steps='many'"):
    sweep.apply_override(config, "train.steps", "many")
  with pytest.raises(ValueError, match="expected FIELD=V1,V2"):
    sweep.parse_set_flags(["ema.decay"])


def test_a_resumed_run_takes_the_hyperparameters_of_its_config_not_of_the_checkpoint(tmp_path):
  # Learning rates live in the optimizer state (optax.inject_hyperparams), so the checkpoint holds them too.
  config = _configs("gan_ring8", steps=1)[0]
  trainer.train_and_evaluate(config, str(tmp_path))
  sweep.apply_override(config, "optim.d.learning_rate", "0.125")
  _, state, _, step = trainer.Setup(config).restore_latest(str(tmp_path))
  assert step == 1
  assert float(state.opt_state["d"].hyperparams["learning_rate"]) == 0.125
  assert float(state.opt_state["g"].hyperparams["learning_rate"]) == np.float32(config.optim.g.learning_rate)
