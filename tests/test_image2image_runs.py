"""pix2pix and CycleGAN as whole runs: resume, devices, the TFDS cycle_gan source, `launch.py --mode=sample --input`."""
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

import test_image2image
import test_training
from gans import data, report, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_config(name, data_path, **train):
  """The experiment at 8x8 on a generated Fashion-MNIST folder, batch 4 (one example per fake device), no
  metrics and no sample pictures. pix2pix keeps its dropout and batch norm (in a one-block ResNet generator:
  the official U-Net needs 32x32 images)."""
  config = test_training.tiny_config(name, batch_size=4, sample_every=0, **train)
  with config.unlocked():
    config.data.path = str(data_path)
    config.eval.metrics = ()
    if name.startswith("cyclegan"):
      config.model.pool_size = 3  # full within the first step of 4 fakes: every later fake may swap
  return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """trained(name) -> (config, workdir of 6 steps straight, workdir of 3 steps + resumed to 6), made once."""
  runs = {}

  def train(name):
    if name not in runs:
      root = tmp_path_factory.mktemp(name)
      test_image2image._fashion_like(str(root), count=16)
      config = _run_config(name, root, steps=6, checkpoint_every=3, log_every=3)
      runs[name] = (config, *test_training.train_straight_and_resumed(config, str(root), stop_at=3))
    return runs[name]
  return train


# ----------------------------------------------------------------------------- resume

@pytest.mark.parametrize("name", ["pix2pix_edges2fashion", "cyclegan_edges2fashion"])
def test_resume_equals_uninterrupted(trained, name):
  b = test_training.assert_resumed_equals_straight(*trained(name))
  if name.startswith("cyclegan"):  # the pools went through the checkpoint full, with swapped images
    assert int(b.model_state["pool_a"]["count"]) == 3
    assert np.abs(np.asarray(b.model_state["pool_b"]["images"])).min() > 0
  else:  # G's batch norm running statistics and the stored step key came back too
    assert not np.allclose(np.asarray(jax.tree.leaves(b.model_state["g"])[0]), 0)


# ----------------------------------------------------------------------------- devices

def test_four_devices_give_the_numbers_of_one_for_pix2pix(tmp_path):
  # Dropout and batch norm over a batch split across devices: the same masks and the same global-batch
  # statistics as on one device. Every conv before a batch norm is bias-free (the official use_bias = norm
  # is instance), so Adam sees no zero-in-exact-arithmetic gradients here.
  config = _run_config("pix2pix_edges2fashion", tmp_path)
  metrics, _ = test_training.assert_four_devices_give_the_numbers_of_one(
      config, compared=lambda state: (state.params, state.model_state))
  assert {"d_main/loss", "g_main/loss"} <= set(metrics)


# ----------------------------------------------------------------------------- TFDS cycle_gan

def test_tfds_cycle_gan_reads_its_domain_splits(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  levels = {"trainA": 10, "trainB": 200, "testA": 60, "testB": 90}
  sizes = {"trainA": 3, "trainB": 5, "testA": 2, "testB": 2}
  asked = []

  def as_data_source(builder, split, **kwargs):
    del kwargs
    asked.append((builder.name, builder.builder_config.name, split))
    return [{"image": np.full((12, 10, 3), levels[split], np.uint8), "label": 0} for _ in range(sizes[split])]

  config = ml_collections.ConfigDict({"source": "tfds_cycle_gan", "name": "horse2zebra", "path": str(tmp_path),
                                      "split": "train", "resolution": 4, "channels": 3, "read_threads": 0,
                                      "crop_size": 4, "test_split": "test"})
  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    source = data.make_source(config)
    assert len(source) == 5  # max(|trainA|, |trainB|), as the official unaligned dataset
    iterator = data.make_iterator(config, batch_size=4, seed=0)
    batch = next(iterator)
    iterator.close()
    held = test_image2image.pairs.held_out(config, 8)
    with config.unlocked():
      config.direction = "BtoA"
    swapped = data.make_source(config)[0]
  assert {(name, split) for name, _, split in asked} == {("cycle_gan", s) for s in levels}
  assert {builder_config for _, builder_config, _ in asked} == {"horse2zebra"}
  assert batch["a"].shape == batch["b"].shape == (4, 4, 4, 3)
  np.testing.assert_allclose(batch["a"], 10 / 127.5 - 1, atol=1e-6)  # resized 12x10 -> 4x4, constant stays
  np.testing.assert_allclose(batch["b"], 200 / 127.5 - 1, atol=1e-6)
  # testA as inputs, testB as the real output domain (no known pairs)
  assert set(held) == {"source", "unpaired_target"} and held["source"].shape == (2, 4, 4, 3)
  np.testing.assert_allclose(held["source"], 60 / 127.5 - 1, atol=1e-6)
  np.testing.assert_allclose(held["unpaired_target"], 90 / 127.5 - 1, atol=1e-6)
  np.testing.assert_allclose(swapped["a"], 200 / 127.5 - 1, atol=1e-6)
  np.testing.assert_allclose(swapped["b"], 10 / 127.5 - 1, atol=1e-6)


def test_tfds_cycle_gan_without_a_name_or_prepared_data_says_what_to_do(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  config = ml_collections.ConfigDict({"source": "tfds_cycle_gan", "name": "", "path": str(tmp_path),
                                      "split": "train", "resolution": 4, "channels": 3})
  with pytest.raises(ValueError, match="data.name must name the cycle_gan config"):
    data.make_source(config)
  with config.unlocked():
    config.name = "horse2zebra"
  with pytest.raises(data.DatasetNotFoundError, match=r"cycle_gan/horse2zebra.*tfds build"):
    data.make_source(config)


# ----------------------------------------------------------------------------- launch.py --mode=sample --input

def _overrides(config, name):
  """--config.* flags that turn the experiment `name` into `config` (scalar fields; tuples are left alone)."""
  import experiments  # pylint: disable=import-outside-toplevel
  default = dict(_flat(experiments.get_config(name).to_dict()))
  return [f"--config.{key}={value}" for key, value in _flat(config.to_dict())
          if default.get(key) != value and not isinstance(value, (tuple, list))]


def _flat(tree, prefix=""):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _flat(value, f"{prefix}{key}.")
    else:
      yield prefix + key, value


@pytest.mark.parametrize("name, direction", [("pix2pix_edges2fashion", None), ("cyclegan_edges2fashion", "BtoA")])
def test_launch_translates_a_folder_of_images(trained, tmp_path, name, direction):
  config, _, workdir = trained(name)
  config = config.copy_and_resolve_references()
  if direction:  # trained AtoB; translating the other way is a sampling choice, not another model
    with config.unlocked():
      config.model.sample_direction = direction
  inputs = tmp_path / "inputs"
  os.makedirs(inputs)
  for index, level in enumerate((0, 128, 255)):  # RGB files of another size: read as grey at the model's size
    Image.new("RGB", (12, 12), (level,) * 3).save(inputs / f"{index}.png")
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch.py"), f"--experiment={name}", f"--workdir={workdir}",
       "--mode=sample", f"--input={inputs}", f"--compilation_cache={jax.config.jax_compilation_cache_dir}",
       *_overrides(config, name)],
      capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  saved = np.load(os.path.join(workdir, "samples.npz"))
  side = config.data.resolution
  assert saved["samples"].shape == saved["inputs"].shape == (3, side, side, 1)
  assert "targets" not in saved and "labels" not in saved  # a folder: no known targets
  np.testing.assert_allclose(saved["inputs"][:, 0, 0, 0], np.array([0, 128, 255]) / 127.5 - 1, atol=1e-6)
  # The outputs are the restored generator's on these inputs (the direction's generator for CycleGAN).
  setup = run.Setup(config)
  _, state, _, _ = setup.restore_latest(workdir, with_data=False)
  np.testing.assert_allclose(saved["samples"], setup.generate(state, 3, source=saved["inputs"]), rtol=1e-5, atol=1e-5)
  if name.startswith("cyclegan"):
    with config.unlocked():
      config.model.sample_direction = "AtoB"
    other = run.Setup(config).generate(state, 3, source=saved["inputs"])
    assert np.abs(other - saved["samples"]).max() > 1e-3  # G_AB would have given other images
  # translations.png: one row per input, input | output (no target column).
  with Image.open(os.path.join(workdir, "translations.png")) as picture:
    strip = np.asarray(picture)
  expected = report.image_grid(np.stack([saved["inputs"], saved["samples"]], axis=1).reshape(6, side, side, 1),
                               columns=2)
  assert strip.shape == expected.shape == (3 * (side + 1) + 1, 2 * (side + 1) + 1)
  np.testing.assert_array_equal(strip, expected)


# ----------------------------------------------------------------------------- the PyTorch references

@pytest.mark.parametrize("name", ["pix2pix_edges2fashion", "cyclegan_edges2fashion", "pix2pix_facades",
                                  "cyclegan_horse2zebra"])
def test_the_torch_references_have_our_parameter_counts(name):
  pytest.importorskip("torch")
  import experiments  # pylint: disable=import-outside-toplevel
  from benchmarks import torch_cyclegan, torch_pix2pix  # pylint: disable=import-outside-toplevel
  from gans.variants import get_variant  # pylint: disable=import-outside-toplevel
  config = experiments.get_config(name)
  with config.unlocked():
    config.data.resolution = config.data.crop_size  # shapes only; the counts do not depend on the side
  params, _ = jax.eval_shape(get_variant(config.variant)(config).init, jax.random.key(0))
  make = torch_pix2pix.make_torch_pix2pix_step if name.startswith("pix2pix") else torch_cyclegan.make_torch_cyclegan_step
  with config.unlocked():
    config.train.batch_size = 1
  networks = make(config).networks
  assert set(networks) == set(params)
  for group, net in networks.items():
    ours = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params[group]))
    assert torch_pix2pix.parameter_count(net) == ours > 0, group
