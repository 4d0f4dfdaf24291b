"""Sources that hold a whole dataset as one uint8 array: digits and IDX files."""
import gzip
import os
import struct

import numpy as np

from gans.data import images
from gans.data.errors import DatasetNotFoundError

# IDX element type codes (Y. LeCun's MNIST page); all multi-byte values are big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
# Files are named after the MNIST release: the test split is called t10k.
_IDX_SPLIT_PREFIX = {"train": "train", "test": "t10k", "t10k": "t10k"}
IDX_INSTALL_HINT = (
    "Fashion-MNIST: `apt-get install dataset-fashion-mnist` installs it in "
    "/usr/share/datasets/fashion-mnist; any MNIST-format IDX files "
    "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...) in one directory work too."
)


class ArrayImageSource:
  """source[i] -> {"image": f32[R, R, C] in [-1, 1], "label": int32 scalar (if labels)}."""

  def __init__(self, pixels_NHW: np.ndarray, labels_N: np.ndarray | None, *, resolution: int, channels: int,
               center_crop: int = 0):
    if labels_N is not None and len(labels_N) != len(pixels_NHW):
      raise ValueError(f"{len(pixels_NHW)} images but {len(labels_N)} labels")
    self._pixels_NHW = pixels_NHW  # uint8, kept small; converted per element
    self._labels_N = labels_N
    self._resolution = resolution
    self._channels = channels
    self._center_crop = center_crop

  def __len__(self) -> int:
    return len(self._pixels_NHW)

  def __getitem__(self, index: int) -> dict:
    image = images.model_image(images.pil_image(self._pixels_NHW[index]), resolution=self._resolution,
                               channels=self._channels, center_crop=self._center_crop)
    element = {"image": image}
    if self._labels_N is not None:
      element["label"] = np.int32(self._labels_N[index])
    return element


def digits_pixels() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's 1797 8x8 digits as uint8 [0, 255] and their int labels."""
  import sklearn.datasets  # pylint: disable=import-outside-toplevel  (slow import, only this source needs it)
  digits = sklearn.datasets.load_digits()
  # The 17 grey levels 0..16 stay distinct after scaling to 0..255.
  pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
  return pixels, digits.target


def parse_idx(raw: bytes) -> np.ndarray:
  """The array stored in the bytes of one IDX file (after gunzip)."""
  if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
    raise ValueError(f"not an IDX file: header {raw[:4]!r}")
  ndim = raw[3]
  header_size = 4 + 4 * ndim
  shape = struct.unpack(f">{ndim}I", raw[4:header_size])
  dtype = np.dtype(_IDX_DTYPES[raw[2]])
  body = raw[header_size:]
  expected_size = int(np.prod(shape)) * dtype.itemsize
  if len(body) != expected_size:
    raise ValueError(f"IDX body has {len(body)} bytes, shape {shape} of {dtype} needs {expected_size}")
  return np.frombuffer(body, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file, gzipped or not (told apart by content, not by name)."""
  with open(path, "rb") as file:
    raw = file.read()
  if raw[:2] == _GZIP_MAGIC:
    raw = gzip.decompress(raw)
  return parse_idx(raw)


def _find_idx_file(directory: str, prefix: str, kind: str, rank: int) -> str | None:
  # The original MNIST release names files `train-images-idx3-ubyte`; some
  # unpackers turn the second dash into a dot.
  for stem in (f"{prefix}-{kind}-idx{rank}-ubyte", f"{prefix}-{kind}.idx{rank}-ubyte"):
    for name in (stem + ".gz", stem):
      if os.path.isfile(os.path.join(directory, name)):
        return os.path.join(directory, name)
  return None


def idx_files(directory: str, split: str) -> tuple[str, str | None]:
  """(images path, labels path or None) of one split in an IDX directory."""
  if split not in _IDX_SPLIT_PREFIX:
    raise ValueError(f"IDX split must be one of {sorted(_IDX_SPLIT_PREFIX)}, got {split!r}")
  prefix = _IDX_SPLIT_PREFIX[split]
  images_path = _find_idx_file(directory, prefix, "images", 3) if directory else None
  if images_path is None:
    raise DatasetNotFoundError(
        f"No IDX images for split {split!r} in {directory!r} "
        f"(looked for {prefix}-images-idx3-ubyte[.gz]). {IDX_INSTALL_HINT}")
  return images_path, _find_idx_file(directory, prefix, "labels", 1)


def idx_source(directory: str, split: str, **image_options) -> ArrayImageSource:
  """An IDX split as a source; labels are included when the labels file exists."""
  images_path, labels_path = idx_files(directory, split)
  pixels = read_idx(images_path)
  if pixels.dtype != np.uint8 or pixels.ndim not in (3, 4):
    raise ValueError(f"{images_path}: expected uint8 images N x H x W [x C], got {pixels.dtype} {pixels.shape}")
  labels = read_idx(labels_path) if labels_path else None
  return ArrayImageSource(pixels, labels, **image_options)


def digits_source(**image_options) -> ArrayImageSource:
  pixels, labels = digits_pixels()
  return ArrayImageSource(pixels, labels, **image_options)

