"""Conditional GAN: label plumbing, the projection discriminator, conditioned sampling, the label-accuracy metric."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans import run, sampling, trainer
from gans.variants import cgan
from test_training import one_step, tiny_config

Z_DIM, K = 3, 4


class Echo(nn.Module):
  """A parameter-free "generator" that returns its input, so a test can read what G was fed."""

  @nn.compact
  def __call__(self, z, train: bool):
    del train
    return z


def test_concat_label_appends_one_hot_features_and_constant_planes():
  onehot = cgan.one_hot(jnp.array([2, 0]), K)
  vectors = cgan.concat_label(jnp.ones((2, 5)), onehot)
  assert vectors.shape == (2, 5 + K)
  np.testing.assert_array_equal(vectors[:, 5:], [[0, 0, 1, 0], [1, 0, 0, 0]])
  images = cgan.concat_label(jnp.ones((2, 3, 3, 1)), onehot)
  assert images.shape == (2, 3, 3, 1 + K)
  # Every pixel of the label planes holds the example's one-hot vector.
  np.testing.assert_array_equal(images[:, :, :, 1:], np.broadcast_to(onehot[:, None, None, :], (2, 3, 3, K)))


def test_labels_for_broadcasts_or_cycles():
  np.testing.assert_array_equal(cgan.labels_for(None, 6, K), [0, 1, 2, 3, 0, 1])
  np.testing.assert_array_equal(cgan.labels_for(3, 2, K), [3, 3])
  np.testing.assert_array_equal(cgan.labels_for(np.array([1, 2]), 2, K), [1, 2])


def test_sampling_a_label_feeds_the_generator_that_label_one_hot():
  sample = cgan.make_sampler(cgan.ConditionalGenerator(body=Echo(), num_classes=K), Z_DIM, K)
  fed = sample({"g": {}}, {"g": {}}, jax.random.key(0), 5, label=2)
  assert fed.shape == (5, Z_DIM + K)
  np.testing.assert_array_equal(fed[:, Z_DIM:], np.tile([0, 0, 1, 0], (5, 1)))
  cycled = sample({"g": {}}, {"g": {}}, jax.random.key(0), 5)
  np.testing.assert_array_equal(np.argmax(cycled[:, Z_DIM:], axis=1), [0, 1, 2, 3, 0])
  np.testing.assert_array_equal(fed[:, :Z_DIM], cycled[:, :Z_DIM])  # the label changes nothing else


def test_grid_rows_are_classes_and_columns_share_a_latent():
  grid = cgan.make_grid(cgan.ConditionalGenerator(body=Echo(), num_classes=K), Z_DIM, K, columns=3)
  fed = grid({"g": {}}, {"g": {}}, jax.random.key(1))
  assert fed.shape == (K, 3, Z_DIM + K)
  np.testing.assert_array_equal(np.argmax(fed[..., Z_DIM:], axis=-1), np.repeat(np.arange(K)[:, None], 3, 1))
  for row in range(1, K):
    np.testing.assert_array_equal(fed[row, :, :Z_DIM], fed[0, :, :Z_DIM])
  assert not np.allclose(fed[0, 0, :Z_DIM], fed[0, 1, :Z_DIM])


def test_projection_discriminator_adds_the_label_embedding_dot_features():
  trunk = cgan.MLPTrunk(hidden=(6,), maxout_pieces=1)
  d = cgan.ConditionalDiscriminator(trunk=trunk, num_classes=K, conditioning="projection")
  x, labels = jax.random.normal(jax.random.key(0), (3, 5)), jnp.array([0, 1, 3])
  params = d.init(jax.random.key(1), x, labels, train=False)["params"]
  logits = d.apply({"params": params}, x, labels, train=False)
  features = trunk.apply({"params": params["trunk"]}, x, train=False)
  head = params["Dense_0"]
  expected = features @ head["kernel"][:, 0] + head["bias"][0] + jnp.sum(
      params["Embed_0"]["embedding"][labels] * features, axis=1)
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_concat_discriminator_reads_the_label(architecture):
  config = tiny_config("cgan_digits")
  with config.unlocked():
    config.model.architecture = architecture
  _, d = cgan.make_modules(config)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
  variables = d.init(jax.random.key(1), x, jnp.array([0, 0]), train=False)
  first_layer = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(variables["params"]["trunk"])[0]
                 if path[-1].key == "kernel"][0]
  # MLP: 64 pixels + K one-hot inputs; conv: 1 image channel + K label planes into the first conv.
  assert first_layer.shape[-2] == (64 + 10 if architecture == "mlp" else 1 + 10)
  same = d.apply(variables, x, jnp.array([0, 0]), train=False)
  other = d.apply(variables, x, jnp.array([5, 5]), train=False)
  assert not np.allclose(same, other)


def test_one_step_on_four_devices_equals_one_device():
  config = tiny_config("cgan_digits")
  with config.unlocked():
    config.model.conditioning = "projection"
  state_1, metrics_1 = one_step(config, num_devices=1)
  state_4, metrics_4 = one_step(config, num_devices=4)
  for a, b in zip(jax.tree.leaves(state_1.params), jax.tree.leaves(state_4.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  for name in metrics_1:
    np.testing.assert_allclose(metrics_1[name], metrics_4[name], rtol=1e-4, atol=1e-6)


def test_the_label_changes_the_loss():
  config = tiny_config("cgan_digits")
  setup = run.Setup(config, num_devices=1)
  d_phase = setup.variant.phases[0]
  image = jax.random.uniform(jax.random.key(0), (8, 8, 8, 1), minval=-1, maxval=1)
  loss = lambda label: d_phase.loss(setup.initial_state.params, setup.initial_state.model_state,
                                    {"image": image, "label": jnp.full((8,), label, jnp.int32)}, jax.random.key(1))[0]
  assert not np.isclose(loss(0), loss(7))


def test_label_accuracy_per_class_and_overall():
  # A "generator" that writes its label into the image, and a classifier that reads it but calls every 2 a 0.
  generate = lambda n, label: np.full((n,), label)
  classify = lambda images: np.where(images == 2, 0, images)
  results = cgan.label_accuracy(generate, classify, num_classes=5, num_samples=50)
  assert results["label_accuracy/2"] == 0.0 and results["label_accuracy/4"] == 1.0
  assert results["label_accuracy"] == pytest.approx(0.8)


def test_sample_mode_label_and_grid(tmp_path):
  config = tiny_config("cgan_digits", steps=1, sample_every=0)
  with config.unlocked():
    config.eval.metrics = ()
    config.train.num_grid_samples = 30  # 10 classes x 3 columns
  trainer.train_and_evaluate(config, str(tmp_path))
  setup = run.Setup(config)
  _, state, _, _ = setup.restore_latest(str(tmp_path), with_data=False)
  stored = np.load(sampling.write_samples(config, str(tmp_path), 6, label=4))
  assert int(stored["label"]) == 4 and stored["samples"].shape == (6, 8, 8, 1)
  np.testing.assert_array_equal(stored["samples"], setup.generate(state, 6, label=np.full(6, 4)))
  assert not np.allclose(stored["samples"], setup.generate(state, 6, label=5))
  # Per-sample labels are sliced with the chunks: chunked and unchunked runs agree sample for sample.
  labels = np.arange(6) % 10
  params = {**state.params, **state.ema_params}
  chunked = run.generate(setup.variant, params, state.model_state, jax.random.key(0), 6, batch_size=4, label=labels)
  for k in range(6):
    single = run.generate(setup.variant, params, state.model_state, jax.random.key(0), 6, batch_size=4,
                          label=int(labels[k]))
    np.testing.assert_allclose(chunked[k], single[k], atol=1e-6)
  from PIL import Image
  grid = np.asarray(Image.open(tmp_path / "grid.png"))
  assert grid.shape[:2] == (10 * 9 + 1, 3 * 9 + 1)  # one row per class, 8-pixel images with 1-pixel borders
  sample_grid = np.asarray(Image.open(tmp_path / "samples" / "step_0000001.png"))
  np.testing.assert_array_equal(sample_grid, grid)


def test_conditioning_a_variant_does_not_take_is_refused_by_name():
  setup = run.Setup(tiny_config("dcgan_digits"), num_devices=1)
  with pytest.raises(run.ConditioningError, match="takes no label; its conditioning: none"):
    setup.generate(setup.initial_state, 2, label=1)
  cgan_setup = run.Setup(tiny_config("cgan_digits"), num_devices=1)
  with pytest.raises(run.ConditioningError, match="takes no code; its conditioning: label"):
    cgan_setup.generate(cgan_setup.initial_state, 2, code=1)
