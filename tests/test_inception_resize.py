"""The Inception input pipeline: PyTorch's bilinear resize and the [-1, 1] -> [0, 1] step."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans.metrics import inception

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
FLOAT32_ULP_AT_ONE = 2.0**-23


@pytest.fixture(scope="module")
def reference():
  with np.load(os.path.join(FIXTURES, "resize_reference.npz")) as data:
    return {name: data[name] for name in data.files}


def _to_NHWC(x_NCHW):
  return np.transpose(x_NCHW, (0, 2, 3, 1))


@pytest.mark.parametrize("case", ["down", "up"])
def test_resize_matches_torch_interpolate_to_one_ulp(case, reference):
  # F.interpolate(bilinear, align_corners=False) output from torch 2.13 (make_torch_fixtures.py).
  unit = _to_NHWC(reference[f"{case}_uint8_NCHW"]).astype(np.float32) / np.float32(255.0)
  resized = np.asarray(jax.jit(inception.resize_bilinear)(unit))
  expected = _to_NHWC(reference[f"{case}_resized_NCHW"])
  assert resized.shape == expected.shape == (1, 299, 299, 2)
  assert np.abs(resized - expected).max() <= FLOAT32_ULP_AT_ONE


def test_resize_is_not_antialiased(reference):
  # jax.image.resize antialiases when shrinking by default; PyTorch's bilinear does not,
  # so a 341 -> 299 pixel is still a two-tap blend, far from an antialiased one.
  unit = _to_NHWC(reference["down_uint8_NCHW"]).astype(np.float32) / np.float32(255.0)
  antialiased = np.asarray(jax.image.resize(unit, (1, 299, 299, 2), "linear", antialias=True))
  expected = _to_NHWC(reference["down_resized_NCHW"])
  assert np.abs(antialiased - expected).max() > 0.1


def test_resize_weights_are_pytorchs_half_pixel_formula():
  lower, upper, lower_weight, upper_weight = inception._source_indices_and_weights(64, 299)
  source = np.maximum((np.arange(299) + 0.5) * 64 / 299 - 0.5, 0.0)  # exact, float64
  np.testing.assert_array_equal(lower, np.floor(source).astype(int))
  np.testing.assert_array_equal(upper, np.minimum(lower + 1, 63))
  # PyTorch takes in/out in float32; its rounding moves the coordinate by at most
  # (dst + 0.5) * |ratio error|, plus one rounding of the coordinate itself.
  ratio_error = abs(float(np.float32(64) / np.float32(299)) - 64 / 299)
  bound = 299.5 * ratio_error + 64 * 2.0**-24
  np.testing.assert_allclose(upper_weight, source - lower, rtol=0, atol=bound)
  np.testing.assert_array_equal(lower_weight + upper_weight, np.ones(299, np.float32))
  assert upper_weight[0] == 0.0 and lower[-1] == 63  # both edges clamp


def test_resize_of_299_is_the_identity():
  images = np.random.default_rng(0).random((2, 299, 299, 3), np.float32)
  np.testing.assert_array_equal(np.asarray(inception.resize_bilinear(images)), images)


def test_data_space_maps_to_exact_8bit_levels():
  # A PNG's uint8 value u is data value u / 127.5 - 1; the network must see u / 255 exactly,
  # as pytorch-fid does after reading the PNG.
  levels = np.arange(256, dtype=np.uint8)
  data = levels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
  unit = np.asarray(jax.jit(inception.data_to_unit_range)(jnp.asarray(data)))
  np.testing.assert_array_equal(unit, levels.astype(np.float32) / np.float32(255.0))


def test_data_space_rounds_to_nearest_level_and_clips():
  data = jnp.asarray([-1.5, -1.0, -1.0 + 0.49 / 127.5, -1.0 + 0.51 / 127.5, 0.0, 1.0, 3.0])
  unit = np.asarray(inception.data_to_unit_range(data))
  np.testing.assert_array_equal(unit * 255.0, np.float32([0, 0, 0, 1, 128, 255, 255]))
