"""Paired translation metrics: L1, PSNR and SSIM of outputs against the true targets.

Images are in data space [-1, 1]. L1 is the mean absolute difference there (pix2pix's L1 term). PSNR and
SSIM are computed on [0, 1] images (data range 1), per image and then averaged: PSNR = 10 log10(1 / MSE);
SSIM as Wang et al. 2004 with an 11x11 Gaussian window of sigma 1.5 (valid positions only), K1 = 0.01,
K2 = 0.03, averaged over positions and channels (the parameters of scikit-image's
`structural_similarity(..., gaussian_weights=True, use_sample_covariance=False)`).

feature_fid is the Frechet distance between Gaussians fitted to two feature sets (pytorch-fid's statistics):
with the project's classifier it is the classifier-FID of translations against the true targets, with
Inception pool3 features the FID.
"""
import numpy as np

from gans.metrics import frechet

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _unit(images: np.ndarray) -> np.ndarray:
  return (np.asarray(images, np.float64) + 1.0) / 2.0


def l1_distance(outputs: np.ndarray, targets: np.ndarray) -> float:
  return float(np.mean(np.abs(np.asarray(outputs, np.float64) - np.asarray(targets, np.float64))))


def psnr(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """Per-image PSNR in dB (data range 1); identical images give inf."""
  mse = np.mean(np.square(_unit(outputs) - _unit(targets)), axis=(1, 2, 3))
  with np.errstate(divide="ignore"):
    return 10.0 * np.log10(1.0 / mse)


def _gaussian_window() -> np.ndarray:
  offsets = np.arange(SSIM_WINDOW) - SSIM_WINDOW // 2
  weights = np.exp(-0.5 * np.square(offsets / SSIM_SIGMA))
  return weights / weights.sum()


def _filter(images_NHWC: np.ndarray) -> np.ndarray:
  """Separable Gaussian filtering over H and W, valid positions only."""
  window = _gaussian_window()
  size = SSIM_WINDOW
  rows = sum(window[i] * images_NHWC[:, i:images_NHWC.shape[1] - size + 1 + i] for i in range(size))
  return sum(window[j] * rows[:, :, j:rows.shape[2] - size + 1 + j] for j in range(size))


def ssim(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """Per-image mean SSIM (data range 1); images need sides >= 11."""
  x, y = _unit(outputs), _unit(targets)
  if min(x.shape[1:3]) < SSIM_WINDOW:
    raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {x.shape[1]}x{x.shape[2]}.")
  c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
  mu_x, mu_y = _filter(x), _filter(y)
  var_x = _filter(x * x) - mu_x ** 2
  var_y = _filter(y * y) - mu_y ** 2
  cov = _filter(x * y) - mu_x * mu_y
  index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
  return index.mean(axis=(1, 2, 3))


def paired_metrics(outputs: np.ndarray, targets: np.ndarray) -> dict:
  """{"l1", "psnr", "ssim"} of outputs against their targets, averaged over the images."""
  if outputs.shape != targets.shape:
    raise ValueError(f"outputs {outputs.shape} and targets {targets.shape} differ in shape")
  return {"l1": l1_distance(outputs, targets), "psnr": float(np.mean(psnr(outputs, targets))),
          "ssim": float(np.mean(ssim(outputs, targets)))}


def label_accuracy(logits_NK: np.ndarray, labels_N: np.ndarray) -> float:
  return float(np.mean(np.argmax(logits_NK, axis=1) == np.asarray(labels_N)))


def feature_fid(features_ND: np.ndarray, reference_ND: np.ndarray) -> float:
  """Frechet distance between the Gaussians (mean, covariance) of two feature sets; 0 for identical sets."""
  mu, sigma = frechet.activation_statistics(features_ND)
  reference_mu, reference_sigma = frechet.activation_statistics(reference_ND)
  return frechet.frechet_distance(reference_mu, reference_sigma, mu, sigma)
