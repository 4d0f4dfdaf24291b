"""StyleGAN2 as a trainable variant: devices agree, buffers are explicit state, the config is the paper's.

One tiny training step (8x8, every phase due) is compiled once per device count and shared by
the tests; variables are drawn with numpy because jax.random compiles slowly on CPU.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiments
from gans import run, sharding, steps
from gans.variants.stylegan2 import Generator, PL_DECAY, W_AVG_BETA, ema_decay_for

BATCH = 8


def tiny_config():
  config = experiments.get_config("stylegan2_digits")
  with config.unlocked():
    config.data.resolution = 8
    config.model.update(z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8)
    config.train.batch_size = BATCH
  return config


def one_step(num_devices):
  config = tiny_config()
  setup = run.Setup(config, num_devices=num_devices)
  phases = steps.due_phases(setup.variant, 0)
  train_step = jax.jit(steps.make_train_step(setup.variant, setup.optimizers, phases, config.ema.decay))
  images = np.random.default_rng(0).uniform(-1, 1, (1, BATCH, 8, 8, 1)).astype(np.float32)
  batches = jax.device_put({"image": images}, sharding.batch_sharding(setup.mesh, batch_axis=1))
  state, metrics = train_step(setup.initial_state, batches, jax.random.key(3))
  return setup, phases, jax.device_get(state), jax.device_get(metrics)


@pytest.fixture(scope="module")
def step_on_one():
  return one_step(1)


def test_step_zero_runs_every_phase_and_four_devices_give_the_numbers_of_one(step_on_one):
  _, phases, state_1, metrics_1 = step_on_one
  assert phases == ("d_main", "d_r1", "g_main", "g_pl")
  _, _, state_4, metrics_4 = one_step(4)
  assert sorted(metrics_1) == sorted(metrics_4)
  for name in metrics_1:
    np.testing.assert_allclose(metrics_4[name], metrics_1[name], rtol=1e-4, atol=1e-6, err_msg=name)
  for part in ("params", "ema_params", "model_state"):
    leaves_1 = jax.tree_util.tree_leaves_with_path(getattr(state_1, part))
    leaves_4 = jax.tree.leaves(getattr(state_4, part))
    for (path, a), b in zip(leaves_1, leaves_4):
      np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=f"{part}{jax.tree_util.keystr(path)}")


def test_pl_mean_is_returned_state_and_r1_carries_the_lazy_weight(step_on_one):
  setup, _, state, metrics = step_on_one
  assert float(setup.initial_state.model_state["pl_mean"]) == 0.0
  # From 0, one EMA update of the path lengths: pl_mean = decay * mean length.
  np.testing.assert_allclose(state.model_state["pl_mean"], PL_DECAY * metrics["g_pl/pl_length"], rtol=1e-5)
  assert metrics["g_pl/pl_length"] > 0
  # The lazy R1 term is gamma / 2 times the penalty, times the 16 steps it stands for.
  gamma = setup.config.model.r1_gamma
  np.testing.assert_allclose(metrics["d_r1/loss"], metrics["d_r1/r1_penalty"] * gamma / 2 * 16, rtol=1e-5)
  assert not np.allclose(state.model_state["w_avg"], 0)


def test_d_main_returns_w_avg_updated_from_the_given_state(step_on_one):
  setup = step_on_one[0]
  variant, config = setup.variant, setup.config
  params, model_state = setup.initial_state.params, setup.initial_state.model_state
  w_dim, z_dim = config.model.w_dim, config.model.z_dim
  w_avg = np.random.default_rng(1).standard_normal(w_dim).astype(np.float32)
  images = np.random.default_rng(2).uniform(-1, 1, (BATCH, 8, 8, 1)).astype(np.float32)
  d_main = next(phase for phase in variant.phases if phase.name == "d_main")
  key = jax.random.key(5)

  @jax.jit
  def run_d_main_and_map(params, model_state):
    _, (_, new_state) = d_main.loss(params, model_state, {"image": images}, key)
    # The latents d_main draws (its key split as the variant splits it), mapped without mixing.
    z = jax.random.normal(jax.random.split(key)[0], (BATCH, z_dim), jnp.float32)
    w = variant.modules["g"].apply({"params": params["g"]}, z, method=Generator.map)[:, 0]
    return new_state, w

  new_state, w = run_d_main_and_map(params, dict(model_state, w_avg=w_avg, pl_mean=np.float32(0.37)))
  expected = w.mean(axis=0) + (w_avg - w.mean(axis=0)) * W_AVG_BETA
  np.testing.assert_allclose(new_state["w_avg"], expected, rtol=1e-5, atol=1e-6)
  assert float(new_state["pl_mean"]) == np.float32(0.37)  # passed through untouched by the D phase


def test_regularisation_phases_run_lazily():
  variant = run.get_variant("stylegan2")(tiny_config())
  due = {step: steps.due_phases(variant, step) for step in (1, 4, 16, 17)}
  assert due == {1: ("d_main", "g_main"), 4: ("d_main", "g_main", "g_pl"),
                 16: ("d_main", "d_r1", "g_main", "g_pl"), 17: ("d_main", "g_main")}


def test_ffhq_config_has_the_official_lazy_optimizer_correction_and_ema_half_life():
  config = experiments.get_config("stylegan2_ffhq")
  assert (config.data.source, config.data.resolution, config.train.batch_size) == ("folder", 1024, 32)
  g, d = config.optim.g, config.optim.d
  np.testing.assert_allclose([g.learning_rate, g.b1, g.b2], [0.002 * 4 / 5, 0.0, 0.99 ** (4 / 5)], rtol=1e-12)
  np.testing.assert_allclose([d.learning_rate, d.b1, d.b2], [0.002 * 16 / 17, 0.0, 0.99 ** (16 / 17)], rtol=1e-12)
  assert config.model.r1_gamma == 10.0 and config.ema.enabled
  # Half-life of 10k images at batch 32: 312.5 steps halve the old weights' influence.
  np.testing.assert_allclose(config.ema.decay ** (10_000 / 32), 0.5, rtol=1e-12)
  assert ema_decay_for(64, 10.0) == pytest.approx(config.ema.decay ** 2, rel=1e-12)


def test_truncation_and_the_style_pictures():
  variant = run.get_variant("stylegan2")(tiny_config())
  rng = np.random.default_rng(4)
  params, model_state = jax.tree.map(lambda s: (0.5 * rng.standard_normal(s.shape)).astype(s.dtype),
                                     jax.eval_shape(variant.init, jax.random.key(0)))
  key = jax.random.key(9)
  sample = jax.jit(lambda psi: variant.sample(params, model_state, key, 3, truncation_psi=psi))
  untruncated, collapsed = np.asarray(sample(1.0)), np.asarray(sample(0.0))
  # psi = 0 puts every w at w_avg (noise is the constant buffer), so all samples coincide.
  np.testing.assert_allclose(collapsed, np.broadcast_to(collapsed[:1], collapsed.shape), rtol=1e-5, atol=1e-6)
  assert np.abs(untruncated[0] - untruncated[1]).max() > 1e-3
  assert variant.conditioning == ("truncation_psi",) and sorted(variant.pictures) == ["interpolation", "style_mixing"]
  mixing = np.asarray(jax.jit(lambda k: variant.pictures["style_mixing"](params, model_state, k))(key))
  assert mixing.shape == (5, 5, 8, 8, 1) and np.all(mixing[0, 0] == -1)
  # Mixing the column source's coarse styles into row source i changes it; the row header is source i.
  assert np.abs(mixing[1, 1] - mixing[1, 0]).max() > 1e-4
  walk = jax.jit(lambda k: variant.pictures["interpolation"](params, model_state, k, truncation_psi=0.0))(key)
  assert walk.shape == (4, 8, 8, 8, 1)
  np.testing.assert_allclose(walk, np.broadcast_to(walk[:1, :1], walk.shape), rtol=1e-5, atol=1e-6)
