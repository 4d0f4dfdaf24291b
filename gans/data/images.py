"""Pure pixel transforms shared by every image source.

Every source ends in `model_image`: uint8 pixels in, float32 HWC in [-1, 1] out,
square and at the configured resolution and channel count.
"""
import numpy as np
from PIL import Image

_MODE_FOR_CHANNELS = {1: "L", 3: "RGB"}


def pil_image(pixels: np.ndarray) -> Image.Image:
  """A PIL image of uint8 pixels shaped HW, HW1 or HW3."""
  if pixels.ndim == 3 and pixels.shape[-1] == 1:
    pixels = pixels[..., 0]  # PIL has no single-channel HW1 mode
  return Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))


def central_square(image: Image.Image, center_crop: int) -> Image.Image:
  """The central `center_crop` square, or the largest central square when 0."""
  width, height = image.size
  side = center_crop or min(width, height)
  if side > min(width, height):
    raise ValueError(f"center_crop={side} exceeds the {width}x{height} image")
  left, top = (width - side) // 2, (height - side) // 2
  return image.crop((left, top, left + side, top + side))


def resize_square(image: Image.Image, resolution: int) -> Image.Image:
  """Resizes a square image; antialiased when shrinking, smooth when enlarging."""
  if image.size == (resolution, resolution):
    return image
  # Lanczos when shrinking (as the StyleGAN dataset tool does) keeps detail
  # without aliasing; bilinear when enlarging avoids Lanczos' ringing on the
  # hard edges of tiny inputs such as the 8x8 digits.
  shrinking = image.size[0] > resolution
  resample = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BILINEAR
  return image.resize((resolution, resolution), resample=resample)


def to_signed_unit(pixels_HWC: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1], the range of a tanh generator."""
  return pixels_HWC.astype(np.float32) / 127.5 - 1.0


def model_image(image: Image.Image, *, resolution: int, channels: int, center_crop: int = 0) -> np.ndarray:
  """Any PIL image -> float32[resolution, resolution, channels] in [-1, 1]."""
  if channels not in _MODE_FOR_CHANNELS:
    raise ValueError(f"channels must be 1 or 3, got {channels}")
  # Converting first makes palette, alpha and 16-bit files behave like plain L/RGB.
  image = image.convert(_MODE_FOR_CHANNELS[channels])
  image = resize_square(central_square(image, center_crop), resolution)
  pixels = np.asarray(image, dtype=np.uint8)
  return to_signed_unit(pixels.reshape(resolution, resolution, channels))
