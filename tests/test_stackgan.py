"""StackGAN training: the official loss terms and KL by hand, the learning-rate halving, Stage-I frozen during
Stage-II, devices, resume across the stage switch, sampling either stage, and the refused settings."""
import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gans import checkpoint, layers, run, sampling, steps
from gans.variants.text2image import networks, stackgan
from experiments import stackgan_configs
from tests.test_training import (assert_resumed_equals_straight, one_step,
                                 synthetic_batches, tiny_config, train_straight_and_resumed)

REAL, WRONG, FAKE = [1.0, -2.0], [0.5], [-1.0, 2.0]
UNCOND_REAL, UNCOND_FAKE = [0.25, 3.0], [-0.5, 1.5]


def softplus(x: float) -> float:
  return math.log1p(math.exp(x))


def mean(values) -> float:
  return sum(values) / len(values)


def bce(probability: float, label: float) -> float:
  """PyTorch's BCELoss of one sigmoid output, as the official trainer computes it."""
  return -(label * math.log(probability) + (1 - label) * math.log(1 - probability))


def sigmoid(x: float) -> float:
  return 1 / (1 + math.exp(-x))


def test_stage1_discriminator_loss_is_the_official_bce_of_the_sigmoid():
  loss, metrics = stackgan.discriminator_loss(jnp.array(REAL), jnp.array(WRONG), jnp.array(FAKE))
  real = mean([bce(sigmoid(r), 1) for r in REAL])
  wrong = mean([bce(sigmoid(w), 0) for w in WRONG])
  fake = mean([bce(sigmoid(f), 0) for f in FAKE])
  assert float(loss) == pytest.approx(real + (fake + wrong) * 0.5, rel=1e-6)
  assert float(metrics["wrong"]) == pytest.approx(wrong, rel=1e-6)


def test_stage2_discriminator_loss_adds_the_unconditional_head_as_the_official_code():
  loss, metrics = stackgan.discriminator_loss(jnp.array(REAL), jnp.array(WRONG), jnp.array(FAKE),
                                              jnp.array(UNCOND_REAL), jnp.array(UNCOND_FAKE))
  real, uncond_real = mean([softplus(-r) for r in REAL]), mean([softplus(-r) for r in UNCOND_REAL])
  fake, uncond_fake = mean([softplus(f) for f in FAKE]), mean([softplus(f) for f in UNCOND_FAKE])
  wrong = mean([softplus(w) for w in WRONG])
  assert float(loss) == pytest.approx((real + uncond_real) / 2 + (fake + wrong + uncond_fake) / 3, rel=1e-6)
  assert float(metrics["real"]) == pytest.approx((real + uncond_real) / 2, rel=1e-6)
  assert float(metrics["fake"]) == pytest.approx((fake + uncond_fake) / 2, rel=1e-6)


def test_kl_loss_by_hand():
  mu, logvar = jnp.array([[0.5, 1.0], [0.0, -1.0]]), jnp.array([[0.0, math.log(2.0)], [-1.0, 0.5]])
  # Elements of 1 + logvar - mu^2 - exp(logvar):
  elements = [1 + 0 - 0.25 - 1, 1 + math.log(2) - 1 - 2, 1 - 1 - 0 - math.exp(-1), 1 + 0.5 - 1 - math.exp(0.5)]
  assert float(networks.kl_loss(mu, logvar)) == pytest.approx(-0.5 * mean(elements), rel=1e-6)
  assert float(networks.kl_loss(jnp.zeros((3, 4)), jnp.zeros((3, 4)))) == 0.0  # N(0, I) itself


@pytest.mark.parametrize("uncond", [None, UNCOND_FAKE])
def test_generator_loss_is_the_adversarial_terms_plus_kl_times_its_coefficient(uncond):
  mu, logvar = jnp.array([[0.5, 1.0]]), jnp.array([[0.0, math.log(2.0)]])
  loss, metrics = stackgan.generator_loss(jnp.array(FAKE), None if uncond is None else jnp.array(uncond), mu, logvar,
                                          2.0)
  adversarial = mean([bce(sigmoid(f), 1) for f in FAKE]) + (0 if uncond is None else mean([softplus(-u) for u in uncond]))
  kl = -0.5 * mean([1 + 0 - 0.25 - 1, 1 + math.log(2) - 1 - 2])
  assert float(loss) == pytest.approx(adversarial + 2.0 * kl, rel=1e-6)
  assert float(metrics["kl"]) == pytest.approx(kl, rel=1e-6)


def test_the_learning_rate_halves_every_decay_steps_of_the_groups_own_updates():
  optim = ml_collections.ConfigDict({"learning_rate": 2e-4, "schedule": stackgan_configs.halving_schedule(5, 18)})
  schedule = steps.learning_rate_of(optim)
  # The official rule lr * 0.5 ** (epoch // LR_DECAY_EPOCH), with 5 updates per decay period.
  for count in (0, 4, 5, 9, 10, 14, 15, 17):
    assert float(schedule(count)) == pytest.approx(2e-4 * 0.5 ** (count // 5), rel=1e-6), count


def shapes_config(**train):
  config = tiny_config("stackgan_shapes", **train)
  with config.unlocked():
    config.model.update(text_channels=4, text_hidden=8, image_encoder_channels=2, embedding_dim=8, condition_dim=4,
                        r_num=1, stage1_steps=1)
    config.train.num_grid_samples = 16
    config.data.size = 40
    config.eval.metrics = ()
  return config


def changed_groups(before, after):
  return {group for group in before
          if any(np.any(np.asarray(a) != np.asarray(b))
                 for a, b in zip(jax.tree.leaves(before[group]), jax.tree.leaves(after[group])))}


def unchanged_parameters(before, after):
  """The paths of the parameters (whole arrays) that an update left exactly as they were."""
  return [jax.tree_util.keystr(path) for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(before)[0],
                                                             jax.tree.leaves(after)) if np.all(np.asarray(a) == np.asarray(b))]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """(config, straight workdir, interrupted workdir) of 3 steps, Stage-II from step 1: once straight, once stopped
  after 2 (in Stage-II) and resumed. The runs' checkpoints serve the resume, frozen-Stage-I and sampling tests."""
  config = shapes_config(steps=3, checkpoint_every=1, log_every=1, sample_every=0)
  straight, interrupted = train_straight_and_resumed(config, str(tmp_path_factory.mktemp("stackgan")), stop_at=2)
  return config, straight, interrupted


def test_resume_across_the_stage1_to_stage2_switch_equals_uninterrupted(trained):
  assert_resumed_equals_straight(*trained)


def test_stage1_trains_first_then_stays_frozen_while_stage2_trains(trained):
  config, straight, _ = trained
  setup = run.Setup(config, num_devices=1)
  assert steps.due_phases(setup.variant, 0) == ("d_stage1", "g_stage1")
  assert steps.due_phases(setup.variant, 1) == ("d_stage2", "g_stage2")
  checkpointer = checkpoint.Checkpointer(straight, config.train.max_checkpoints)
  initial = setup.initial_state
  after_stage1, _ = checkpointer.restore(1, initial, setup.meta, with_data=False)
  final, _ = checkpointer.restore(3, initial, setup.meta, with_data=False)
  assert int(initial.model_state["stage"]) == 1 and int(after_stage1.model_state["stage"]) == 1
  assert changed_groups(initial.params, after_stage1.params) == {"g1", "d1"}
  # Two Stage-II steps left every Stage-I parameter bitwise as it was; Stage-I's BatchNorm statistics moved
  # (train mode inside STAGE2_G, as the official netG.train()), and the run now samples Stage-II pictures.
  assert changed_groups(after_stage1.params, final.params) == {"g2", "d2"}
  # Every Stage-II parameter is optimised (none masked or left out of its group): each array moved.
  assert unchanged_parameters(after_stage1.params["g2"], final.params["g2"]) == []
  assert unchanged_parameters(after_stage1.params["d2"], final.params["d2"]) == []
  assert "g1" in changed_groups(after_stage1.model_state, final.model_state)
  assert int(final.model_state["stage"]) == 2
  records = [json.loads(line) for line in open(os.path.join(straight, "metrics.jsonl"))]
  assert [r["step"] for r in records] == [1, 2, 3]
  assert all("d_main/wrong" in r and r["g_main/kl"] >= 0.0 for r in records)


def test_the_wrong_pairs_are_each_image_with_the_next_examples_condition():
  """d_stage1's loss equals the official terms computed from the networks directly: wrong pairs are
  real_features[:N-1] with mu[1:]."""
  config = shapes_config()
  setup = run.Setup(config, num_devices=1)
  params, model_state = setup.initial_state.params, setup.initial_state.model_state
  batch = jax.tree.map(lambda x: x[0], synthetic_batches(config, 1))
  key = jax.random.key(5)
  prepared = setup.variant.prepare(params, model_state, batch, key, ("d_stage1", "g_stage1"))  # G, once per step
  loss, _ = setup.variant.phases[0].loss(params, model_state, prepared, key)  # d_stage1 (no encoder phase here)
  g, d, text = setup.variant.modules["g1"], setup.variant.modules["d1"], setup.variant.modules["text"]
  embedding = text.apply({"params": params["text"]}, batch["caption"])
  z_key, eps_key = jax.random.split(key)
  z = jax.random.normal(z_key, (embedding.shape[0], config.model.z_dim))
  (_, fake, mu, _), _ = g.apply({"params": params["g1"], **model_state["g1"]}, embedding, z, train=True,
                                rngs={"noise": eps_key}, mutable=["batch_stats"])
  real = layers.downsample_box(batch["image"], 2)
  variables = {"params": params["d1"], **model_state["d1"]}

  def call(method, *args):
    nonlocal variables
    out, updates = d.apply(variables, *args, train=True, method=method, mutable=["batch_stats"])
    variables = {**variables, **updates}
    return out
  real_h, fake_h = call("encode", real), call("encode", fake)
  logits = [call("cond_logits", real_h, mu), call("cond_logits", real_h[:-1], mu[1:]), call("cond_logits", fake_h, mu)]
  expected = (jnp.mean(jax.nn.softplus(-logits[0]))
              + 0.5 * (jnp.mean(jax.nn.softplus(logits[2])) + jnp.mean(jax.nn.softplus(logits[1]))))
  assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_four_devices_give_the_numbers_of_one_in_stage2():
  config = shapes_config()
  with config.unlocked():
    config.model.stage1_steps = 0  # step 0 is Stage-II's: both generators run in it
    # SGD, not Adam: a gradient at rounding level (a bias before a BatchNorm) is +-lr after Adam's first step.
    for group in config.optim:
      config.optim[group] = ml_collections.ConfigDict({"name": "sgd", "learning_rate": 0.1})
  initial = run.Setup(config, num_devices=1).initial_state.params
  state_1, metrics_1 = one_step(config, num_devices=1)
  state_4, metrics_4 = one_step(config, num_devices=4)
  for p0, p1, p4 in zip(*(jax.tree.leaves(params) for params in (initial, state_1.params, state_4.params))):
    update_1, update_4 = np.asarray(p1) - np.asarray(p0), np.asarray(p4) - np.asarray(p0)
    # Per-device partial sums add the gradients' terms in another order: the rounding scales with the size of the
    # summed terms, i.e. with the leaf's update, not with each element (Stage-II's conv kernels differ by up to
    # 4e-6 of updates up to ~1, elements near zero included); and an update is resolved to its parameter's ulp.
    resolution = 2 * np.spacing(np.abs(np.asarray(p0)).max())
    np.testing.assert_allclose(update_4, update_1, rtol=0, atol=1e-5 * np.abs(update_1).max() + resolution)
  for name in metrics_1:
    np.testing.assert_allclose(metrics_1[name], metrics_4[name], rtol=1e-4, atol=1e-6)


def test_sampling_draws_either_stage_and_the_stages_picture(trained):
  config, _, workdir = trained  # trained into Stage-II: the run samples Stage-II pictures
  config = config.copy_and_resolve_references()
  ids = sampling.caption_ids(["a large blue square at the bottom", "a small red circle"], config.data.caption_length)
  latest = np.load(sampling.write_samples(config, workdir, 16, pictures=("stages",), caption=ids))["samples"]
  assert latest.shape == (16, 8, 8, 3) and os.path.exists(os.path.join(workdir, "stages.png"))
  pictures = {}
  for stage in (1, 2):
    config.model.sample_stage = stage
    pictures[stage] = np.load(sampling.write_samples(config, workdir, 16, caption=ids))["samples"]
  np.testing.assert_array_equal(pictures[2], latest)
  np.testing.assert_array_equal(pictures[1][:, ::2, ::2], pictures[1][:, 1::2, 1::2])  # Stage-I 4x4, upsampled
  assert np.any(pictures[2][:, ::2, ::2] != pictures[2][:, 1::2, 1::2])
  setup = run.Setup(config)
  _, state, _, _ = setup.restore_latest(workdir, with_data=False)
  stages = setup.picture(state, setup.variant.pictures["stages"], caption=np.repeat(ids, 8, axis=0))
  assert stages.shape == (4, 8, 8, 8, 3)  # per caption: its Stage-I row (upsampled) over its Stage-II row
  for row in (0, 2):
    np.testing.assert_array_equal(stages[row][:, ::2, ::2], stages[row][:, 1::2, 1::2])
    assert np.any(stages[row + 1][:, ::2, ::2] != stages[row + 1][:, 1::2, 1::2])


@pytest.mark.parametrize("field, value, message", [
    ("model.stage1_resolution", 8, r"data.resolution \(8\) must be at least twice model.stage1_resolution \(8\)"),
    ("model.stage1_resolution", 6, "model.stage1_resolution must be 4 times a power of 2"),
    ("data.channels", 1, "set data.channels=3"),
    ("model.sample_stage", 3, "model.sample_stage must be 0"),
])
def test_settings_the_networks_cannot_take_are_refused(field, value, message):
  config = shapes_config()
  section, name = field.split(".")
  with config.unlocked():
    config[section][name] = value
  with pytest.raises(ValueError, match=message):
    stackgan.make(config)
