"""KID: the unbiased MMD^2 against a brute-force sum, unbiasedness, subsets."""
import numpy as np
import pytest

from gans.metrics import kid


def _brute_force_mmd2(x, y):
  d = x.shape[1]
  k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3
  n, m = len(x), len(y)
  within_x = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  within_y = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  cross = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
  return within_x + within_y - 2 * cross


def test_mmd2_matches_brute_force_sum():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((7, 5)).astype(np.float32)
  y = (rng.standard_normal((9, 5)) + 0.3).astype(np.float32)
  assert kid.mmd2_unbiased(x, y) == pytest.approx(_brute_force_mmd2(x, y), rel=1e-6)


def test_full_size_subsets_all_equal_the_whole_set_estimate():
  rng = np.random.default_rng(1)
  real, fake = rng.standard_normal((30, 6)), rng.standard_normal((30, 6)) + 0.5
  mean, std = kid.kernel_inception_distance(real, fake, num_subsets=5, max_subset_size=1000)
  assert mean == pytest.approx(kid.mmd2_unbiased(fake, real), rel=1e-12)
  assert std == pytest.approx(0.0, abs=1e-12 * abs(mean))


def test_same_distribution_is_zero_on_average_unlike_the_biased_estimate():
  rng = np.random.default_rng(2)
  unbiased, biased = [], []
  for _ in range(300):
    x, y = rng.standard_normal((2, 20, 8))
    unbiased.append(kid.mmd2_unbiased(x, y))
    k = lambda a, b: (a @ b.T / 8 + 1.0) ** 3
    biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())  # V-statistic, with i == j
  standard_error = np.std(unbiased) / np.sqrt(len(unbiased))
  assert abs(np.mean(unbiased)) < 3 * standard_error
  assert np.mean(biased) > 10 * standard_error  # the check above could fail for a biased estimator


def test_shifted_distribution_stands_out_from_the_same_distribution():
  rng = np.random.default_rng(3)
  real, same, shifted = rng.standard_normal((3, 400, 8)) + np.array([0.0, 0.0, 0.5])[:, None, None]
  shifted_mean, shifted_std = kid.kernel_inception_distance(real, shifted, num_subsets=20, max_subset_size=200)
  same_mean, same_std = kid.kernel_inception_distance(real, same, num_subsets=20, max_subset_size=200)
  assert shifted_mean - same_mean > 5 * (shifted_std + same_std)


def test_subsets_are_seeded():
  rng = np.random.default_rng(4)
  real, fake = rng.standard_normal((50, 4)), rng.standard_normal((50, 4))
  first = kid.kernel_inception_distance(real, fake, num_subsets=3, max_subset_size=10, seed=7)
  assert first == kid.kernel_inception_distance(real, fake, num_subsets=3, max_subset_size=10, seed=7)
  assert first != kid.kernel_inception_distance(real, fake, num_subsets=3, max_subset_size=10, seed=8)


def test_needs_two_samples_per_set():
  with pytest.raises(ValueError, match="at least 2"):
    kid.mmd2_unbiased(np.ones((1, 3)), np.ones((4, 3)))
