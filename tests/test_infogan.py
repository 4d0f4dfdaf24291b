"""InfoGAN: code plumbing, the Q head, the MI bound by hand, where its gradient goes, devices, code accuracy."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans.variants import infogan
from test_training import one_step, synthetic_batches, tiny_config


class Echo(nn.Module):
  """A parameter-free "generator" that returns its input, so a test can read what G was fed."""

  @nn.compact
  def __call__(self, latent, train: bool):
    del train
    return latent


def small_model(config):
  """The tiny config with a 3-way categorical code and two continuous codes."""
  with config.unlocked():
    config.model.num_categories = 3
    config.model.num_continuous = 2
  return config


def test_mutual_information_bounds_by_hand():
  # Row 0: softmax([log 2, 0, 0]) = (1/2, 1/4, 1/4), code 0; row 1: uniform over 3, code 2.
  cat_logits = jnp.array([[math.log(2.0), 0.0, 0.0], [0.0, 0.0, 0.0]])
  cont_mean, continuous = jnp.array([[0.5], [0.0]]), jnp.array([[0.0], [1.0]])
  mi_cat, mi_cont = infogan.mutual_information_bounds(cat_logits, cont_mean, jnp.array([0, 2]), continuous)
  expected_cat = 0.5 * (math.log(0.5) + math.log(1.0 / 3.0)) + math.log(3.0)
  # E[log N(c; mean, 1)] over the rows (squared errors 0.25 and 1) plus the entropy log 2 of U(-1, 1).
  expected_cont = -0.5 * 0.5 * (0.25 + 1.0) - 0.5 * math.log(2.0 * math.pi) + math.log(2.0)
  np.testing.assert_allclose(mi_cat, expected_cat, rtol=1e-6)
  np.testing.assert_allclose(mi_cont, expected_cont, rtol=1e-6)


def test_a_perfect_categorical_guess_reaches_the_code_entropy():
  logits = 50.0 * jax.nn.one_hot(jnp.arange(4), 4)
  mi_cat, _ = infogan.mutual_information_bounds(logits, jnp.zeros((4, 1)), jnp.arange(4), jnp.zeros((4, 1)))
  np.testing.assert_allclose(mi_cat, math.log(4.0), atol=1e-5)


def test_generator_input_layout_and_code_fixing():
  model = small_model(tiny_config("infogan_digits")).model
  sample = infogan.make_sampler(Echo(), model)
  fed = sample({"g": {}}, {"g": {}}, jax.random.key(0), 6, code=1)
  z_dim = model.z_dim
  assert fed.shape == (6, z_dim + 3 + 2)
  np.testing.assert_array_equal(fed[:, z_dim:z_dim + 3], np.tile([0, 1, 0], (6, 1)))
  assert np.all(np.abs(fed[:, :z_dim]) <= 1) and np.all(np.abs(fed[:, z_dim + 3:]) <= 1)  # U(-1, 1) priors
  free = sample({"g": {}}, {"g": {}}, jax.random.key(0), 200)
  codes = np.argmax(np.asarray(free[:, z_dim:z_dim + 3]), axis=1).tolist()
  assert np.all(free[:, z_dim:z_dim + 3].sum(axis=1) == 1) and set(codes) == {0, 1, 2}


def test_grid_varies_the_code_by_row_and_the_first_continuous_code_by_column():
  model = small_model(tiny_config("infogan_digits")).model
  fed = infogan.make_grid(Echo(), model, columns=5)({"g": {}}, {"g": {}}, jax.random.key(0))
  z_dim = model.z_dim
  assert fed.shape == (3, 5, z_dim + 5)
  np.testing.assert_array_equal(np.argmax(fed[..., z_dim:z_dim + 3], axis=-1), np.repeat(np.arange(3)[:, None], 5, 1))
  np.testing.assert_allclose(fed[..., z_dim + 3], np.tile(np.linspace(-2, 2, 5), (3, 1)), atol=1e-6)
  np.testing.assert_array_equal(fed[..., z_dim + 4], 0.0)
  np.testing.assert_array_equal(fed[..., :z_dim], np.broadcast_to(fed[0, 0, :z_dim], (3, 5, z_dim)))


def _variant_and_variables(config):
  """The variant and its initial (params, model_state), without a Setup's optimizers and jitted init."""
  variant = infogan.make(config)
  return variant, variant.init(jax.random.key(0))


def test_q_head_and_encoder_shapes_and_groups():
  variant, (params, model_state) = _variant_and_variables(small_model(tiny_config("infogan_digits")))
  assert set(params) == {"g", "d", "q"}
  assert [(p.name, p.updates) for p in variant.phases] == [("d_main", ("d",)), ("g_main", ("g", "q"))]
  codes = variant.encode(params, model_state, {"image": jnp.zeros((5, 8, 8, 1))})
  assert codes["code_logits"].shape == (5, 3) and codes["continuous"].shape == (5, 2)


def _phase_loss_and_grads(config, phase_index, batch):
  variant, (params, model_state) = _variant_and_variables(config)
  phase = variant.phases[phase_index]

  def loss(trainable):
    return phase.loss({**params, **trainable}, model_state, batch, jax.random.key(3))

  trainable = {group: params[group] for group in phase.updates}
  (value, (metrics, _)), grads = jax.value_and_grad(loss, has_aux=True)(trainable)
  return value, metrics, grads


def test_the_mi_term_trains_the_trunk_in_the_d_phase_and_leaves_the_d_head_alone():
  config = small_model(tiny_config("infogan_digits"))
  batch = jax.tree.map(lambda x: x[0], synthetic_batches(config, 1))
  with_mi, metrics, grads_with = _phase_loss_and_grads(config, 0, batch)
  with config.unlocked():
    config.model.mi_through_trunk = False
  without_mi, metrics_without, grads_without = _phase_loss_and_grads(config, 0, batch)
  assert "mi_categorical" in metrics and "mi_categorical" not in metrics_without
  weighted_mi = (config.model.mi_weight_categorical * metrics["mi_categorical"]
                 + config.model.mi_weight_continuous * metrics["mi_continuous"])
  np.testing.assert_allclose(with_mi - without_mi, -weighted_mi, rtol=1e-5, atol=1e-6)
  head = "Dense_1"  # D's logit layer: Q reads the features before it, so the MI term must not reach it
  for a, b in zip(jax.tree.leaves(grads_with["d"][head]), jax.tree.leaves(grads_without["d"][head])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  trunk = grads_with["d"]["Dense_0"]["kernel"] - grads_without["d"]["Dense_0"]["kernel"]
  assert float(jnp.max(jnp.abs(trunk))) > 1e-6


def test_the_g_phase_trains_q_on_the_mi_term_and_reads_no_labels():
  config = small_model(tiny_config("infogan_digits"))
  batch = jax.tree.map(lambda x: x[0], synthetic_batches(config, 1))
  loss, metrics, grads = _phase_loss_and_grads(config, 1, batch)
  assert set(grads) == {"g", "q"}
  assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads["q"]))
  # The minibatch estimate E[log Q(c|x)] + H(c) can dip below 0 near initialisation, but never exceeds H(c).
  assert -math.log(3.0) < float(metrics["mi_categorical"]) <= math.log(3.0) + 1e-6
  unlabelled = {"image": batch["image"]}
  np.testing.assert_array_equal(loss, _phase_loss_and_grads(config, 1, unlabelled)[0])
  np.testing.assert_array_equal(_phase_loss_and_grads(config, 0, batch)[0],
                                _phase_loss_and_grads(config, 0, unlabelled)[0])


def test_one_step_on_four_devices_equals_one_device():
  config = small_model(tiny_config("infogan_digits"))
  state_1, metrics_1 = one_step(config, num_devices=1)
  state_4, metrics_4 = one_step(config, num_devices=4)
  assert set(state_1.params) == {"g", "d", "q"}
  for a, b in zip(jax.tree.leaves(state_1.params), jax.tree.leaves(state_4.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  for name in metrics_1:
    np.testing.assert_allclose(metrics_1[name], metrics_4[name], rtol=1e-4, atol=1e-6)


def test_matched_accuracy_is_one_to_one_and_ignores_code_names():
  labels = np.array([0, 0, 1, 1, 2, 2])
  assert infogan.matched_accuracy((labels + 1) % 3, labels, 3, 3) == (1.0, {0: 2, 1: 0, 2: 1})
  # Code 1 covers four examples of class 0 and one of class 1: a many-to-one map would score 4/5,
  # the one-to-one matching can give class 0 to only one code.
  accuracy, _ = infogan.matched_accuracy(np.array([0, 0, 1, 1, 1]), np.array([0, 0, 0, 0, 1]), 2, 2)
  assert accuracy == pytest.approx(3 / 5)


def test_code_accuracy_reads_the_encoder_in_batches():
  images = np.arange(7, dtype=np.float32)[:, None, None, None]
  labels = np.array([0, 1, 2, 0, 1, 2, 0])
  # An "encoder" whose code is the class shifted by one, except that the last image is misread.
  def encode(batch):
    true = (labels[batch["image"][:, 0, 0, 0].astype(int)] + 1) % 3
    true = np.where(batch["image"][:, 0, 0, 0] == 6, 2, true)
    return {"code_logits": np.eye(3)[true]}
  results = infogan.code_accuracy(encode, images, labels, 3, 3, batch_size=3)
  assert results["code_accuracy"] == pytest.approx(6 / 7) and results["code_to_class"] == [2, 0, 1]


def test_generated_code_accuracy():
  # Codes 0 and 1 draw classes 1 and 0; code 2 draws class 0 too, so one of codes 1 and 2 cannot be matched.
  generate = lambda n, code: np.full((n,), code)
  classify = lambda images: np.array([1, 0, 0])[images]
  results = infogan.generated_code_accuracy(generate, classify, 3, 3, num_samples=30)
  assert results["generated_code_accuracy"] == pytest.approx(2 / 3)
