"""Fréchet distance: pytorch-fid's reference value, closed forms and failure modes."""
import os

import numpy as np
import pytest

from gans.metrics import frechet

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="module")
def reference():
  with np.load(os.path.join(FIXTURES, "frechet_io.npz")) as data:
    return {name: data[name] for name in data.files}


def test_statistics_are_pytorch_fids_exactly(reference):
  for index in ("1", "2"):
    mu, sigma = frechet.activation_statistics(reference[f"act{index}"])
    np.testing.assert_array_equal(mu, reference[f"mu{index}"])
    np.testing.assert_array_equal(sigma, reference[f"sigma{index}"])


def test_distance_matches_pytorch_fid(reference):
  distance = frechet.frechet_distance(reference["mu1"], reference["sigma1"], reference["mu2"], reference["sigma2"])
  assert abs(distance - reference["fid"]) <= 1e-12 * reference["fid"]


def test_distance_is_symmetric(reference):
  forward = frechet.frechet_distance(reference["mu1"], reference["sigma1"], reference["mu2"], reference["sigma2"])
  backward = frechet.frechet_distance(reference["mu2"], reference["sigma2"], reference["mu1"], reference["sigma1"])
  assert abs(forward - backward) <= 1e-12 * forward


def test_commuting_covariances_have_the_closed_form():
  # Same eigenvectors: FID = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
  rng = np.random.default_rng(0)
  rotation, _ = np.linalg.qr(rng.standard_normal((32, 32)))
  a, b = rng.uniform(0.1, 3.0, 32), rng.uniform(0.1, 3.0, 32)
  mu1, mu2 = rng.standard_normal(32), rng.standard_normal(32)
  sigma1, sigma2 = (rotation * a) @ rotation.T, (rotation * b) @ rotation.T
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert frechet.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-12)


def test_rank_deficient_shifted_sets_differ_by_the_mean_only():
  # Fewer samples than dimensions (singular covariances): where pytorch-fid's sqrtm
  # needs its eps retry, the eigenvalue form stays exact.
  rng = np.random.default_rng(1)
  features = rng.standard_normal((10, 64))
  shift = rng.standard_normal(64)
  mu1, sigma1 = frechet.activation_statistics(features)
  mu2, sigma2 = frechet.activation_statistics(features + shift)
  distance = frechet.frechet_distance(mu1, sigma1, mu2, sigma2)
  assert distance == pytest.approx(np.sum(shift**2), rel=1e-10)


def test_few_samples_match_the_low_rank_closed_form():
  # sigma = A^T A / (n - 1) with centred A (n x d, n << d). The non-zero eigenvalues
  # of sigma1 sigma2 are those of C C^T / (n - 1)^2 with C = A1 A2^T (n x n).
  rng = np.random.default_rng(2)
  features1 = np.maximum(rng.normal(1.0, 1.0, (4, 512)), 0.0)
  features2 = np.maximum(rng.normal(1.2, 1.0, (4, 512)), 0.0)
  mu1, sigma1 = frechet.activation_statistics(features1)
  mu2, sigma2 = frechet.activation_statistics(features2)
  cross = (features1 - mu1) @ (features2 - mu2).T
  trace_sqrt = np.sum(np.sqrt(np.maximum(np.linalg.eigvalsh(cross @ cross.T), 0.0))) / 3
  expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
  assert frechet.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-10)


def test_identical_statistics_are_at_distance_zero(reference):
  distance = frechet.frechet_distance(reference["mu1"], reference["sigma1"], reference["mu1"], reference["sigma1"])
  assert abs(distance) <= 1e-12 * np.trace(reference["sigma1"])


@pytest.mark.parametrize("not_psd", [np.diag([-1.0, 1.0]), np.array([[0.0, 1.0], [1.0, 0.0]])])
def test_not_positive_semidefinite_covariance_is_refused_in_either_place(not_psd):
  with pytest.raises(ValueError, match="positive semi-definite"):
    frechet.frechet_distance(np.zeros(2), not_psd, np.zeros(2), np.eye(2))
  with pytest.raises(ValueError, match="positive semi-definite"):
    frechet.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), not_psd)


def test_mismatched_shapes_are_refused():
  with pytest.raises(ValueError, match="shape"):
    frechet.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_statistics_need_two_samples():
  with pytest.raises(ValueError, match="at least 2"):
    frechet.activation_statistics(np.ones((1, 4)))
