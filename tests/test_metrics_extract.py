"""Feature extraction: batching, padding and sharding over a "data" mesh change no number."""
import os

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from gans.metrics import extract, inception, testing, weights

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="module")
def variables():
  # The He-scaled fixture weights: their features depend strongly on the input.
  rows = testing.read_params_table(os.path.join(FIXTURES, "fid_inception_params.json"))
  return weights.state_dict_to_variables(testing.deterministic_state_dict(rows, he=True))


@pytest.fixture(scope="module")
def images_uint8():
  return np.random.default_rng(0).integers(0, 256, (5, 40, 40, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def reference_features(variables, images_uint8):
  """All five images in one direct call of the network on uint8 / 255, as pytorch-fid feeds it."""
  unit = images_uint8.astype(np.float32) / np.float32(255.0)
  apply = jax.jit(lambda v, x: inception.FIDInceptionV3().apply(v, x)["pool3"])
  return np.asarray(apply(variables, unit))


@pytest.fixture(scope="module")
def mesh():
  devices = jax.devices()
  if len(devices) < 2:
    pytest.skip("needs several (fake) devices; tests/conftest.py provides four")
  return Mesh(np.array(devices[:4]), (extract.DATA_AXIS,))


def test_sharded_padded_streamed_extraction_equals_one_direct_call(variables, images_uint8, reference_features,
                                                                     mesh):
  extractor = extract.FeatureExtractor(variables, batch_size=4, mesh=mesh)
  data = images_uint8.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
  # Chunks of 2 and 3 regroup into a full batch of 4 and a last batch of 1 padded to 4.
  features = extractor([data[:2], data[2:]])["pool3"]
  assert features.shape == (5, inception.FEATURE_DIM)
  between_images = np.abs(reference_features[0] - reference_features[1]).max()
  assert np.abs(features - reference_features).max() <= 1e-5 * between_images


def test_batches_are_split_over_every_device_of_the_mesh(variables, mesh):
  extractor = extract.FeatureExtractor(variables, batch_size=4, mesh=mesh)
  pool3 = extractor.run_batch(np.zeros((4, 40, 40, 3), np.float32))["pool3"]
  assert pool3.sharding.device_set == set(mesh.devices.flat)
  assert [shard.data.shape[0] for shard in pool3.addressable_shards] == [1, 1, 1, 1]  # one image per device


def test_batch_size_must_divide_over_the_mesh(variables, mesh):
  with pytest.raises(ValueError, match="multiple"):
    extract.FeatureExtractor(variables, batch_size=6, mesh=mesh)


def test_fixed_size_batches_pad_with_the_last_image():
  chunks = [np.arange(3)[:, None], np.arange(3, 5)[:, None]]
  batches = list(extract._fixed_size_batches(chunks, 4))
  assert [rows for _, rows in batches] == [4, 1]
  np.testing.assert_array_equal(batches[1][0][:, 0], [4, 4, 4, 4])
