"""Mode coverage of 2D Gaussian mixtures, as measured in the VEEGAN and PacGAN papers.

A sample is high quality when it lies within `threshold` standard deviations
of its nearest mode (Euclidean distance divided by the mode's std). A mode is
captured when at least one high-quality sample is assigned to it. The reverse
KL is KL(p || uniform) for p the histogram of high-quality samples over modes,
so it is 0 for perfect balance and log(K) when every sample sits in one mode.
"""
import numpy as np


def mode_histogram(samples: np.ndarray, means: np.ndarray, std: float, threshold: float = 3.0) -> np.ndarray:
  """Counts of high-quality samples per mode, int[K]."""
  distances = np.linalg.norm(samples[:, None, :] - means[None, :, :], axis=-1) / std
  nearest = np.argmin(distances, axis=1)
  high_quality = distances[np.arange(len(samples)), nearest] < threshold
  return np.bincount(nearest[high_quality], minlength=len(means))


def mode_metrics(samples: np.ndarray, means: np.ndarray, std: float, threshold: float = 3.0) -> dict:
  """{"modes": captured modes, "high_quality": fraction in [0, 1], "reverse_kl": KL(hist || uniform)}."""
  samples = np.asarray(samples, np.float64)
  counts = mode_histogram(samples, np.asarray(means, np.float64), std, threshold)
  total = counts.sum()
  if total == 0:
    reverse_kl = float("inf")
  else:
    p = counts[counts > 0] / total
    reverse_kl = float(np.sum(p * np.log(p * len(means))))
  return {"modes": int(np.count_nonzero(counts)), "high_quality": float(total / len(samples)),
          "reverse_kl": reverse_kl}
