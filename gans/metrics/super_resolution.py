"""Super-resolution metrics, the literature's protocol: PSNR and SSIM on the Y channel with the border cropped.

As the SR papers' evaluation code (e.g. the MATLAB scripts behind Set5/Set14/BSD100 tables): images are
converted to 8-bit range [0, 255], Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (ITU-R BT.601, MATLAB's
rgb2ycbcr on [0, 1] RGB, times 255), `border` pixels (the scale factor, 4) cropped on every side; PSNR =
10 log10(255^2 / MSE) per image; SSIM on that Y channel with data range 255 (Wang et al. 2004: an 11x11
Gaussian window of sigma 1.5, K1 0.01, K2 0.03, valid positions; gans/metrics/translation.py's).

Sharpness: the high-frequency energy of an image is the mean squared response of the 3x3 Laplacian on its Y
channel (border cropped); `sharpness` = that of the output / that of the HR image, per image. 1 = as much
fine detail (or noise) as the real image; bicubic upsampling is far below 1. PSNR-oriented SRResNet outputs
are smooth (below 1) and SRGAN's, the paper's claim, closer to 1.
"""
import numpy as np

from gans.metrics import translation

BORDER = 4  # the x4 protocol


def y_channel(images_NHWC: np.ndarray) -> np.ndarray:
  """RGB in [-1, 1] -> Y in [16, 235] (BT.601 as MATLAB's rgb2ycbcr), float64 [N, H, W]."""
  rgb = np.clip((np.asarray(images_NHWC, np.float64) + 1.0) / 2.0, 0.0, 1.0)
  rgb = np.round(rgb * 255.0) / 255.0  # the images as 8-bit files, as the evaluation scripts read them
  return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def _crop(y_NHW: np.ndarray, border: int) -> np.ndarray:
  return y_NHW[:, border:y_NHW.shape[1] - border, border:y_NHW.shape[2] - border] if border else y_NHW


def psnr_y(outputs: np.ndarray, targets: np.ndarray, border: int = BORDER) -> np.ndarray:
  """Per-image PSNR (dB) on Y, `border` pixels cropped; identical images give inf."""
  mse = np.mean(np.square(_crop(y_channel(outputs), border) - _crop(y_channel(targets), border)), axis=(1, 2))
  with np.errstate(divide="ignore"):
    return 10.0 * np.log10(255.0 ** 2 / mse)


def ssim_y(outputs: np.ndarray, targets: np.ndarray, border: int = BORDER) -> np.ndarray:
  """Per-image SSIM on Y (data range 255), `border` pixels cropped."""
  # translation.ssim takes [-1, 1] images with data range 1: Y / 255 mapped there has data range 255 in Y units.
  as_signed = lambda y: (_crop(y, border) / 255.0 * 2.0 - 1.0)[..., None]
  return translation.ssim(as_signed(y_channel(outputs)), as_signed(y_channel(targets)))


def high_frequency_energy(images: np.ndarray, border: int = BORDER) -> np.ndarray:
  """Per-image mean squared 3x3 Laplacian of Y (valid positions, after the border crop)."""
  y = _crop(y_channel(images), border)
  laplacian = (y[:, :-2, 1:-1] + y[:, 2:, 1:-1] + y[:, 1:-1, :-2] + y[:, 1:-1, 2:] - 4.0 * y[:, 1:-1, 1:-1])
  return np.mean(np.square(laplacian), axis=(1, 2))


def metrics(outputs: np.ndarray, bicubic: np.ndarray, targets: np.ndarray, border: int = BORDER) -> dict:
  """PSNR, SSIM and sharpness of the outputs and of bicubic upsampling, averaged and per image."""
  if outputs.shape != targets.shape or bicubic.shape != targets.shape:
    raise ValueError(f"outputs {outputs.shape}, bicubic {bicubic.shape} and targets {targets.shape} differ in shape.")
  reference_energy = high_frequency_energy(targets, border)
  results = {}
  for name, images in (("", outputs), ("bicubic_", bicubic)):
    per_image = {"psnr": psnr_y(images, targets, border), "ssim": ssim_y(images, targets, border),
                 "sharpness": high_frequency_energy(images, border) / reference_energy}
    for metric, values in per_image.items():
      results[f"{name}{metric}"] = float(np.mean(values))
      results[f"{name}{metric}_per_image"] = [float(v) for v in values]
  return results
