"""Improved precision/recall against brute-force numpy and its limiting cases."""
import numpy as np
import pytest

from gans.metrics import precision_recall


def _brute_force(real, fake, k):
  def radii(points):
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    return np.sort(distances, axis=1)[:, k]  # column 0 is the point itself

  def coverage(queries, centres):
    distances = np.linalg.norm(queries[:, None] - centres[None], axis=-1)
    return np.mean(np.any(distances <= radii(centres)[None], axis=1))

  return coverage(fake, real), coverage(real, fake)


@pytest.mark.parametrize("block_size", [1024, 7])
def test_matches_brute_force(block_size):
  rng = np.random.default_rng(0)
  real = rng.standard_normal((60, 8))
  fake = rng.standard_normal((45, 8)) * 1.3 + 0.4
  expected = _brute_force(real, fake, k=3)
  assert 0.0 < expected[0] < 1.0 and 0.0 < expected[1] < 1.0  # a non-trivial case
  assert precision_recall.precision_recall(real, fake, k=3, block_size=block_size) == pytest.approx(expected)


def test_knn_radii_match_sorted_distances():
  rng = np.random.default_rng(1)
  points = rng.standard_normal((40, 5))
  distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
  expected = np.sort(distances, axis=1)[:, 3] ** 2
  np.testing.assert_allclose(precision_recall.knn_squared_radii(points, k=3, block_size=16), expected, rtol=1e-5)


def test_identical_sets_have_full_precision_and_recall():
  features = np.random.default_rng(2).standard_normal((50, 16))
  assert precision_recall.precision_recall(features, features.copy()) == (1.0, 1.0)


def test_distant_sets_have_zero_precision_and_recall():
  rng = np.random.default_rng(3)
  real = rng.standard_normal((50, 16))
  assert precision_recall.precision_recall(real, rng.standard_normal((50, 16)) + 100.0) == (0.0, 0.0)


def test_needs_more_than_k_samples():
  with pytest.raises(ValueError, match="k=3"):
    precision_recall.knn_squared_radii(np.zeros((3, 2)), k=3)
