"""GAN-INT-CLS: the objectives' loss terms by hand, interpolation, the joint embedding loss, the encoder's
pretraining phase, devices, resume, and sampling from typed captions."""
import math
import os
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gans import run, sampling, sharding, steps, trainer
from gans.variants.text2image import gan_int_cls
from tests.test_training import (assert_resumed_equals_straight, synthetic_batches, tiny_config,
                                 train_straight_and_resumed)

REAL, WRONG, FAKE, MIXED = [1.0, -2.0], [0.5, 0.0], [-1.0, 2.0], [0.25, -0.75]


def softplus(x: float) -> float:
  return math.log1p(math.exp(x))


def mean(values) -> float:
  return sum(values) / len(values)


@pytest.mark.parametrize("objective", gan_int_cls.OBJECTIVES)
def test_discriminator_loss_is_algorithm_1_for_matching_aware_objectives(objective):
  loss, metrics = gan_int_cls.discriminator_loss(objective, jnp.array(REAL), jnp.array(WRONG), jnp.array(FAKE))
  real_term = mean([softplus(-r) for r in REAL])  # -log sigmoid(real + right text)
  fake_term = mean([softplus(f) for f in FAKE])  # -log(1 - sigmoid(fake + right text))
  wrong_term = mean([softplus(w) for w in WRONG])  # -log(1 - sigmoid(real + wrong text))
  expected = real_term + 0.5 * (wrong_term + fake_term) if objective.endswith("cls") else real_term + fake_term
  assert float(loss) == pytest.approx(expected, rel=1e-6)
  assert ("wrong_logits" in metrics) == objective.endswith("cls")


@pytest.mark.parametrize("objective", gan_int_cls.OBJECTIVES)
def test_generator_loss_adds_exactly_the_interpolation_term_for_int_objectives(objective):
  loss, _ = gan_int_cls.generator_loss(objective, jnp.array(FAKE), jnp.array(MIXED))
  expected = mean([softplus(-f) for f in FAKE])
  if objective.startswith("gan-int"):
    expected += mean([softplus(-m) for m in MIXED])
  assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_wrong_captions_are_the_previous_examples_and_beta_half_is_the_midpoint():
  embedding = jnp.array([[0.0, 2.0], [4.0, -2.0], [1.0, 1.0]])
  np.testing.assert_array_equal(gan_int_cls.wrong(embedding), embedding[jnp.array([2, 0, 1])])
  mid = gan_int_cls.interpolate(embedding, gan_int_cls.wrong(embedding), 0.5)
  np.testing.assert_allclose(mid, [[0.5, 1.5], [2.0, 0.0], [2.5, -0.5]])


def test_joint_embedding_loss_by_hand():
  image = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  text = jnp.array([[2.0, 0.0], [1.0, 0.5]])
  # F = [[2, 1], [0, 0.5]]. Images (rows): log(e^2 + e^1) - 2 and log(e^0 + e^0.5) - 0.5.
  # Texts (columns): log(e^2 + e^0) - 2 and log(e^1 + e^0.5) - 0.5.
  image_side = mean([math.log(math.exp(2) + math.exp(1)) - 2, math.log(1 + math.exp(0.5)) - 0.5])
  text_side = mean([math.log(math.exp(2) + 1) - 2, math.log(math.exp(1) + math.exp(0.5)) - 0.5])
  assert float(gan_int_cls.joint_embedding_loss(image, text)) == pytest.approx(image_side + text_side, rel=1e-6)
  # Swapping the texts swaps which pairs are right: the loss of the same scores read the other way round.
  swapped = gan_int_cls.joint_embedding_loss(image, text[::-1])
  assert float(swapped) > float(gan_int_cls.joint_embedding_loss(image, text))


def shapes_config(**train):
  config = tiny_config("gan_int_cls_shapes", **train)
  with config.unlocked():
    config.model.update(text_channels=4, text_hidden=8, image_encoder_channels=2, embedding_dim=8,
                        projection_dim=4)
    config.train.num_grid_samples = 16
    config.data.size = 40
    config.eval.metrics = ()  # the caption metrics train a classifier; no test here reads them
  return config


def pretraining_config():
  """Two encoder steps first; SGD for G and D (see the four-devices test). Shared, so that the tests' one-device
  Setups build one initial-state program (the compilation cache serves the second)."""
  config = shapes_config()
  with config.unlocked():
    config.model.pretrain_steps = 2
    # SGD for G and D, not Adam: D's projection bias feeds a BatchNorm that removes nearly all of its effect, so
    # its first gradient is at rounding level, and Adam's first step (lr * g / (|g| + eps)) turns rounding into
    # +-lr, which 4 devices cannot reproduce to the last bit.
    for group in ("g", "d"):
      config.optim[group] = ml_collections.ConfigDict({"name": "sgd", "learning_rate": 0.1})
  return config


def test_gan_int_generator_term_is_d_of_g_at_the_midpoint():
  config = pretraining_config()
  initial = run.Setup(config, num_devices=1).initial_state  # the parameters do not depend on the objective
  variants = {}
  for objective in ("gan", "gan-int"):
    with config.unlocked():
      config.model.objective = objective
    variants[objective] = gan_int_cls.make(config)
  generator, discriminator, text = (variants["gan-int"].modules[name] for name in ("g", "d", "text"))
  batch = jax.tree.map(lambda x: x[0], synthetic_batches(config, 1))
  key, prepare_key = jax.random.key(3), jax.random.key(4)

  @jax.jit  # one program for both losses and the term by hand
  def losses_and_term(params, model_state):
    due = ("d_main", "g_main")
    losses = {objective: variant.phases[-1].loss(params, model_state,
                                                 variant.prepare(params, model_state, batch, prepare_key, due), key)[0]
              for objective, variant in variants.items()}
    embedding = text.apply({"params": params["text"]}, batch["caption"])
    mid = 0.5 * embedding + 0.5 * jnp.roll(embedding, 1, axis=0)
    z = jax.random.normal(key, (mid.shape[0], config.model.z_dim))  # the G phase's key draws the midpoint's z
    fake, _ = generator.apply({"params": params["g"], **model_state["g"]}, z, mid, train=True,
                              mutable=["batch_stats"])
    logits, _ = discriminator.apply({"params": params["d"], **model_state["d"]}, fake, mid, train=True,
                                    mutable=["batch_stats"])
    return losses, jnp.mean(jax.nn.softplus(-logits))

  losses, term = losses_and_term(initial.params, initial.model_state)
  assert float(losses["gan-int"] - losses["gan"]) == pytest.approx(float(term), rel=1e-4)


def changed_groups(before, after) -> set:
  return {group for group in before
          if any(np.any(np.asarray(a) != np.asarray(b))
                 for a, b in zip(jax.tree.leaves(before[group]), jax.tree.leaves(after[group])))}


def test_the_encoder_trains_first_alone_then_stays_frozen_and_four_devices_give_the_numbers_of_one():
  # One test, so the GAN step of one device compiles once for both properties.
  config = pretraining_config()
  setup = run.Setup(config, num_devices=1)
  assert steps.due_phases(setup.variant, 1) == ("encoder",)
  assert steps.due_phases(setup.variant, 2) == ("d_main", "g_main")
  encoder_step = jax.jit(steps.make_train_step(setup.variant, setup.optimizers, ("encoder",), config.ema.decay))
  pretrained, metrics = encoder_step(setup.initial_state, synthetic_batches(config, 1), jax.random.key(0))
  assert changed_groups(setup.initial_state.params, pretrained.params) == {"text", "image_encoder"}
  assert all(np.isfinite(float(v)) for v in metrics.values())
  results = {}
  for num_devices in (1, 4):  # the GAN step from the pretrained state
    on = setup if num_devices == 1 else run.Setup(config, num_devices=4)
    gan_step = jax.jit(steps.make_train_step(on.variant, on.optimizers, ("d_main", "g_main"), config.ema.decay))
    batches = jax.device_put(synthetic_batches(config, 1), sharding.batch_sharding(on.mesh, batch_axis=1))
    results[num_devices] = gan_step(jax.device_put(pretrained, sharding.replicated(on.mesh)), batches,
                                    jax.random.key(2))
  (state_1, metrics_1), (state_4, metrics_4) = results[1], results[4]
  assert changed_groups(pretrained.params, state_1.params) == {"g", "d"}
  assert all(np.isfinite(float(v)) for v in metrics_1.values()) and {"d_main/loss", "g_main/loss"} <= set(metrics_1)
  for a, b in zip(jax.tree.leaves(state_1.params), jax.tree.leaves(state_4.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  for name in metrics_1:
    np.testing.assert_allclose(metrics_1[name], metrics_4[name], rtol=1e-4, atol=1e-6)
  assert len(jax.tree.leaves(state_4.params)[0].sharding.device_set) == 4


def test_resume_across_the_encoder_to_gan_boundary_equals_uninterrupted_and_typed_captions_sample(tmp_path):
  # One test, so the sampling reads the resumed run's checkpoint instead of training a run of its own.
  config = shapes_config(steps=4, checkpoint_every=2, log_every=2, sample_every=0)
  with config.unlocked():
    config.model.pretrain_steps = 2
  straight, interrupted = train_straight_and_resumed(config, str(tmp_path), stop_at=2)
  assert_resumed_equals_straight(config, straight, interrupted)
  typed = ["a large blue square at the bottom", "A small red circle in the top left corner"]
  ids = sampling.caption_ids(typed, config.data.caption_length)
  path = sampling.write_samples(config, straight, 6, pictures=("interpolation",), caption=ids)
  written = np.load(path)
  assert written["samples"].shape == (6, 8, 8, 3)
  assert list(written["caption_text"]) == [typed[0]] * 3 + [typed[1].lower()] * 3
  assert os.path.exists(os.path.join(straight, "captions.png"))
  assert os.path.exists(os.path.join(straight, "interpolation.png"))
  # The same checkpoint and captions give the same samples (the run's sample stream).
  same = np.load(sampling.write_samples(config, straight, 6, caption=ids))["samples"]
  np.testing.assert_array_equal(same, written["samples"])
  with pytest.raises(ValueError, match="outside the alphabet"):
    sampling.caption_ids(["a red circle \u2603"], config.data.caption_length)
  with pytest.raises(ValueError, match="empty"):
    sampling.caption_ids(["   "], config.data.caption_length)


def test_unknown_objective_missing_embeddings_and_several_d_updates_are_refused():
  config = shapes_config()
  with config.unlocked():
    config.model.objective = "gan-cls-int"
  with pytest.raises(ValueError, match="valid: gan, gan-cls, gan-int, gan-int-cls"):
    gan_int_cls.make(config)
  config = tiny_config("gan_int_cls_cub")
  variant = gan_int_cls.make(config)
  params, model_state = jax.eval_shape(variant.init, jax.random.key(0))
  with pytest.raises(ValueError, match="reads the batch's \"embedding\""):
    variant.prepare(params, model_state, {"image": jnp.zeros((2, 8, 8, 3))}, jax.random.key(0), ("d_main", "g_main"))
  with config.unlocked():
    config.train.n_critic = 2
  with pytest.raises(ValueError, match="set config.train.n_critic=1"):
    gan_int_cls.make(config)


def test_launch_refuses_a_caption_the_encoder_cannot_read_in_one_line(tmp_path):
  from tests.test_launch import launch  # pylint: disable=import-outside-toplevel
  result = launch("--experiment=gan_int_cls_shapes", f"--workdir={tmp_path}", "--mode=sample",
                  "--caption=a red circle \u2603")
  assert result.returncode == 2 and "outside the alphabet" in result.stderr and "Traceback" not in result.stderr
  result = launch("--experiment=gan_int_cls_shapes", f"--workdir={tmp_path}", "--mode=sample",
                  f"--captions={tmp_path}/missing.txt")
  assert result.returncode == 2 and "is not a file" in result.stderr


def test_precomputed_typed_captions_take_their_released_embedding_and_others_are_refused(tmp_path):
  from tests.test_captions import write_stackgan_folder  # pylint: disable=import-outside-toplevel
  (tmp_path / "birds").mkdir()
  _, _, vectors = write_stackgan_folder(tmp_path / "birds", embeddings=True)  # images 0, 3 readable
  config = tiny_config("gan_int_cls_cub", steps=1, sample_every=0, batch_size=4)
  with config.unlocked():
    config.data.update(path=str(tmp_path / "birds"), caption_length=40, read_threads=0)
    config.model.update(embedding_dim=6, projection_dim=4)
  workdir = str(tmp_path / "run")
  # Not a caption of the dataset: refused before any checkpoint is read, saying why and what to do.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the folder's missing caption file and corrupt image
    with pytest.raises(run.ConditioningError, match=r"Torch7 char-CNN-RNN.*'a red bird'.*--embeddings=FILE.npy"
                                                    r".*text_encoder=char_cnn_rnn"):
      sampling.write_samples(config, workdir, 2, caption=sampling.caption_ids(["a red bird"], 40))
    trainer.train_and_evaluate(config, workdir)
    typed = ["  BIRD 3,  caption 1. ", "bird 0, caption 2."]  # case and whitespace ignored
    written = np.load(sampling.write_samples(config, workdir, 4, caption=sampling.caption_ids(typed, 40)))
    released = vectors[[3, 0], [1, 2]]
    np.testing.assert_array_equal(written["embedding"], np.repeat(released, 2, axis=0))
    # The same pictures as from the released embeddings given directly (--embeddings=FILE.npy).
    np.save(tmp_path / "released.npy", released)
    rows = sampling.embedding_rows(str(tmp_path / "released.npy"), 6)
    given = np.load(sampling.write_samples(config, workdir, 4, embedding=rows))
  np.testing.assert_array_equal(given["samples"], written["samples"])
  assert os.path.exists(os.path.join(workdir, "captions.png"))
  np.save(tmp_path / "wrong.npy", np.zeros((2, 5)))
  with pytest.raises(ValueError, match=r"shape \(2, 5\); expected \[N, 6\]"):
    sampling.embedding_rows(str(tmp_path / "wrong.npy"), 6)


def test_the_pytorch_reference_has_the_networks_parameter_counts():
  pytest.importorskip("torch")
  from benchmarks import torch_gan_int_cls  # pylint: disable=import-outside-toplevel
  config = tiny_config("gan_int_cls_cub")
  with config.unlocked():
    config.data.resolution = 16  # two strided convs in D, one transposed conv after G's 4x4 map
    config.model.update(embedding_dim=12, projection_dim=4)
  params, _ = jax.eval_shape(gan_int_cls.make(config).init, jax.random.key(0))
  generator, discriminator = torch_gan_int_cls.make_networks(config)
  for name, network in (("g", generator), ("d", discriminator)):
    assert sum(p.numel() for p in network.parameters()) == sum(np.prod(p.shape) for p in jax.tree.leaves(params[name]))
