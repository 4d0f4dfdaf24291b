"""Kernel Inception Distance (Bińkowski et al. 2018).

The unbiased estimate of MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets as in the paper and in
StyleGAN2-ADA's kid50k_full (100 subsets of at most 1000 samples); the spread
over subsets is reported too.
"""
import numpy as np


def polynomial_kernel(x_ND: np.ndarray, y_MD: np.ndarray) -> np.ndarray:
  """k(x, y) = (x.y / d + 1)^3 for all pairs, float64.

  The Gram matrix is a float32 BLAS product (the features are float32, as in
  StyleGAN2-ADA); the cube and later the sums are float64, because MMD^2 is a
  small difference of large kernel sums.
  """
  gram = np.asarray(x_ND, np.float32) @ np.asarray(y_MD, np.float32).T
  return (gram.astype(np.float64) / x_ND.shape[1] + 1.0) ** 3


def mmd2_unbiased(x_ND: np.ndarray, y_MD: np.ndarray) -> float:
  """Unbiased MMD^2: mean of k over distinct pairs within each set, minus twice the cross mean."""
  n, m = len(x_ND), len(y_MD)
  if n < 2 or m < 2:
    raise ValueError(f"Unbiased MMD^2 needs at least 2 samples per set, got {n} and {m}")
  k_xx, k_yy, k_xy = polynomial_kernel(x_ND, x_ND), polynomial_kernel(y_MD, y_MD), polynomial_kernel(x_ND, y_MD)
  within_x = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
  within_y = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
  return float(within_x + within_y - 2.0 * k_xy.mean())


def kernel_inception_distance(real_ND: np.ndarray, fake_MD: np.ndarray, num_subsets: int = 100,
                              max_subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
  """(mean, std) over subsets of the unbiased MMD^2 between real and generated features.

  Each subset draws min(max_subset_size, len(real), len(fake)) samples without
  replacement from each set, independently, with numpy.random.default_rng(seed).
  """
  subset_size = min(max_subset_size, len(real_ND), len(fake_MD))
  rng = np.random.default_rng(seed)
  estimates = []
  for _ in range(num_subsets):
    x = fake_MD[rng.choice(len(fake_MD), subset_size, replace=False)]
    y = real_ND[rng.choice(len(real_ND), subset_size, replace=False)]
    estimates.append(mmd2_unbiased(x, y))
  return float(np.mean(estimates)), float(np.std(estimates))
