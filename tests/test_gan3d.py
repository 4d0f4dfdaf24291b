"""3D-GAN: the paper's networks, and the adaptive rule (D learns only below 80% accuracy) inside jit."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiments
from gans import run, steps
from gans.data import voxels
from gans.variants import common, gan3d
from tests.test_training import tiny_config


def test_paper_networks_have_the_paper_shapes():
  config = experiments.get_config("gan3d_modelnet10")
  variant = gan3d.make(config)
  params, _ = jax.eval_shape(variant.init, jax.random.key(0))
  g_kernels = [leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(params["g"])
               if "kernel" in jax.tree_util.keystr(path)]
  assert g_kernels == [(200, 4 ** 3 * 512), (4, 4, 4, 512, 256), (4, 4, 4, 256, 128), (4, 4, 4, 128, 64),
                       (4, 4, 4, 64, 1)]
  d_kernels = [leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(params["d"])
               if "kernel" in jax.tree_util.keystr(path)]
  assert d_kernels == [(4 ** 3 * 512, 1), (4, 4, 4, 1, 64), (4, 4, 4, 64, 128), (4, 4, 4, 128, 256),
                       (4, 4, 4, 256, 512)]  # Dense_0 first: leaves in name order
  samples = jax.eval_shape(lambda p, s: variant.sample(p, s, jax.random.key(0), 2),
                           *jax.eval_shape(variant.init, jax.random.key(0)))
  assert samples.shape == (2, 64, 64, 64, 1)


def test_discriminator_accuracy_counts_both_batches():
  accuracy = common.discriminator_accuracy(jnp.array([1.0, -1.0, 2.0, 3.0]), jnp.array([-1.0, -2.0, 0.5, 1.0]))
  assert float(accuracy) == pytest.approx(0.5 * (3 / 4 + 2 / 4))


def _config(threshold):
  config = tiny_config("gan3d_shapes")
  with config.unlocked():
    config.model.d_accuracy_threshold = threshold
    config.optim.d.learning_rate = 0.02  # D reaches a high accuracy in a few steps
  return config


def _d_step(config, optimizers):
  variant = gan3d.make(config)
  return jax.jit(steps.make_train_step(variant, optimizers, ("d_main",), 0.9))


def test_discriminator_learns_only_below_80_percent_accuracy():
  always = _config(threshold=2.0)
  setup = run.Setup(always, num_devices=1)
  source = voxels.ShapesSource(resolution=8, size=8, seed=0)
  batches = {"voxels": jnp.stack([source[i]["voxels"] for i in range(8)])[None]}
  key = jax.random.key(0)
  gated_step = _d_step(_config(threshold=0.8), setup.optimizers)

  below, metrics = gated_step(setup.initial_state, batches, key)
  assert float(metrics["d_main/accuracy"]) < 0.8 and float(metrics["d_main/updated"]) == 1.0
  for before, after in zip(jax.tree.leaves(setup.initial_state.params["d"]), jax.tree.leaves(below.params["d"])):
    assert not np.array_equal(before, after)

  state, train_step = setup.initial_state, _d_step(always, setup.optimizers)
  for _ in range(15):  # D alone, updated every step, learns to tell these solids from G's noise
    state, metrics = train_step(state, batches, key)
  above, metrics = gated_step(state, batches, key)
  assert float(metrics["d_main/accuracy"]) > 0.8 and float(metrics["d_main/updated"]) == 0.0
  for group in ("params", "opt_state", "model_state"):
    for before, after in zip(jax.tree.leaves(getattr(state, group)), jax.tree.leaves(getattr(above, group))):
      np.testing.assert_array_equal(before, after)
  assert int(above.step) == int(state.step) + 1


def test_voxel_probe_pieces_have_their_closed_forms():
  from gans.metrics import voxel_probe
  h = jnp.arange(2 * 4 ** 3 * 3, dtype=jnp.float32).reshape(2, 4, 4, 4, 3)
  pooled = np.asarray(gan3d.pooled_features([h]))
  assert pooled.shape == (2, 8 * 3)
  # Cell (1, 1, 1) of channel c of example n holds the block's last element: h[n, 3, 3, 3, c].
  np.testing.assert_array_equal(pooled.reshape(2, 2, 2, 2, 3)[:, 1, 1, 1], h[:, 3, 3, 3])
  a = np.zeros((2, 4, 4, 4), bool)
  a[0, :2] = True  # 32 voxels
  a[1, :, :1] = True  # 16 voxels
  shapes = np.zeros((2, 4, 4, 4), bool)
  shapes[0, :1] = True  # 16 voxels, inside a[0]: IoU 16/32
  shapes[1] = a[1]
  np.testing.assert_allclose(voxel_probe.nearest_neighbour_iou(a, shapes), [0.5, 1.0])


def test_voxel_probe_metric_compares_trained_and_initial_d(tmp_path):
  """--mode=eval's voxel_probe: after training, trained_d probes the trained D and random_d the run's initial
  one (so they differ); the raw-voxel probe beats chance (7 classes) on the procedural solids."""
  from gans import evaluation, trainer
  config = tiny_config("gan3d_shapes", steps=2, log_every=1, sample_every=0, checkpoint_every=2)
  with config.unlocked():
    config.optim.d.learning_rate = 0.02
    config.model.d_accuracy_threshold = 2.0  # D learns every step, so its features change
    config.eval.update(metrics=(), num_samples=10, probe_train=70, probe_test=35)
  trainer.train_and_evaluate(config, str(tmp_path))
  with config.unlocked():
    config.eval.metrics = ("voxel_probe",)
  results = evaluation.evaluate_checkpoint(config, str(tmp_path))
  assert results["step"] == 2 and results["table1/num_train"] == 70 and results["table1/num_test"] == 35
  assert results["table1/trained_d"] != results["table1/random_d"]
  assert results["table1/raw_voxels"] > 2 / 7
  assert 0 < results["samples/class_coverage"] <= 1 and len(results["samples/class_histogram"]) == 7
  setup = run.Setup(config)
  initial = setup.variant.encode(setup.initial_state.params, setup.initial_state.model_state,
                                 jnp.zeros((2, 8, 8, 8, 1)))["d_features"]
  again = setup.reinitialised_state()
  np.testing.assert_array_equal(initial, setup.variant.encode(again.params, again.model_state,
                                                              jnp.zeros((2, 8, 8, 8, 1)))["d_features"])
