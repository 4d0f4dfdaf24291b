"""FID and KID between two image sets, with cached reference statistics.

    python -m gans.metrics.fid A B --inception_weights=pt_inception-2015-12-05-6726825d.pth \
        [--batch_size=50] [--cache_dir=/tmp/fid_cache]

A and B are each a folder of images (bmp/jpg/jpeg/pgm/png/ppm/tif/tiff/webp, not
recursive, read as RGB like pytorch-fid) or an .npz whose `samples` array holds
NHWC images in data space [-1, 1] (1 or 3 channels). A is taken as the real set
for KID. Prints one JSON line: {"fid", "kid", "kid_std", "num_a", "num_b"}.

--inception_weights is pytorch-fid's released .pth, or an .npz of converted
Flax variables (weights.save_variables_npz), e.g. deterministic test weights.

With --cache_dir, each set's statistics (mu, sigma and the pool3 features KID
and precision/recall need) are stored under a key made of the set's absolute
path, its fingerprint (file names, sizes and modification times), its image
resolution and the weights file's sha256, so a changed dataset or network is
recomputed rather than served stale.
"""
import hashlib
import json
import os
import sys
import zipfile
from typing import Callable, Iterator, Optional

import jax
import numpy as np
from absl import app, flags
from jax.sharding import Mesh
from PIL import Image

from gans.metrics import extract, frechet, kid, weights

IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
# Bump when anything that changes cached features changes (preprocessing, network code).
FEATURE_VERSION = "fid-inception-v3-pool3/8bit-v1"


# ----------------------------------------------------------------------------- image sets

def _image_files(folder: str) -> list[str]:
  files = sorted(name for name in os.listdir(folder) if name.lower().endswith(IMAGE_EXTENSIONS))
  if not files:
    raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
  return [os.path.join(folder, name) for name in files]


def _read_rgb_uint8(path: str) -> np.ndarray:
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"))


def _uint8_to_data_space(images_NHWC: np.ndarray) -> np.ndarray:
  # Exact inverse of the extractor's 8-bit rounding: a folder's images reach the
  # network as uint8 / 255, as in pytorch-fid.
  return images_NHWC.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def _folder_batches(folder: str, batch_size: int) -> Iterator[np.ndarray]:
  files = _image_files(folder)
  first_shape = None
  for start in range(0, len(files), batch_size):
    images = [_read_rgb_uint8(path) for path in files[start:start + batch_size]]
    first_shape = first_shape or images[0].shape
    for path, image in zip(files[start:start + batch_size], images):
      if image.shape != first_shape:
        raise ValueError(f"{path} is {image.shape[:2]}, not {first_shape[:2]} like the first image of "
                         f"{folder}: resize the set to one size first")
    yield _uint8_to_data_space(np.stack(images))


def _npz_samples_shape(path: str) -> tuple:
  """Shape of `samples` in an .npz, read from the .npy header without loading the array."""
  with zipfile.ZipFile(path) as archive, archive.open("samples.npy") as f:
    major, _ = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, _, _ = read_header(f)
  return shape


def _npz_batches(path: str, batch_size: int) -> Iterator[np.ndarray]:
  with np.load(path) as data:
    samples = data["samples"]
  if samples.ndim != 4 or samples.shape[-1] not in (1, 3):
    raise ValueError(f"{path}: samples must be NHWC with 1 or 3 channels, got shape {samples.shape}")
  if samples.shape[-1] == 1:
    samples = np.repeat(samples, 3, axis=-1)  # as PIL's convert("RGB") does for grayscale files
  for start in range(0, len(samples), batch_size):
    yield samples[start:start + batch_size]


def image_batches(path: str, batch_size: int) -> Iterator[np.ndarray]:
  """Data-space float32 NHWC batches of a folder or .npz."""
  return _npz_batches(path, batch_size) if path.endswith(".npz") else _folder_batches(path, batch_size)


def image_resolution(path: str) -> tuple[int, int]:
  if path.endswith(".npz"):
    return tuple(_npz_samples_shape(path)[1:3])
  with Image.open(_image_files(path)[0]) as image:
    return image.height, image.width


def fingerprint(path: str) -> str:
  """Changes whenever a file of the set is added, removed, resized or rewritten."""
  files = [path] if path.endswith(".npz") else _image_files(path)
  digest = hashlib.sha256()
  for file in files:
    stat = os.stat(file)
    digest.update(f"{os.path.basename(file)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
  return digest.hexdigest()


# ----------------------------------------------------------------------------- statistics

def file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def cache_key(path: str, network_id: str) -> str:
  parts = [FEATURE_VERSION, os.path.abspath(path), fingerprint(path), repr(image_resolution(path)), network_id]
  return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def compute_statistics(path: str, extractor: extract.FeatureExtractor) -> dict[str, np.ndarray]:
  features = extractor(image_batches(path, extractor.batch_size))["pool3"]
  mu, sigma = frechet.activation_statistics(features)
  return {"mu": mu, "sigma": sigma, "features": features}


def _save_atomically(file: str, statistics: dict) -> None:
  temporary = f"{file}.{os.getpid()}.tmp"
  with open(temporary, "wb") as f:
    np.savez(f, **statistics)
  os.replace(temporary, file)  # readers never see a half-written cache entry


def cached(cache_dir: Optional[str], key: str, compute: Callable[[], dict]) -> dict[str, np.ndarray]:
  """compute()'s statistics, read from cache_dir/fid_stats_<key>.npz when that exists, else stored there."""
  if cache_dir is None:
    return compute()
  file = os.path.join(cache_dir, f"fid_stats_{key}.npz")
  if os.path.exists(file):
    with np.load(file) as stored:
      return {name: stored[name] for name in stored.files}
  statistics = compute()
  os.makedirs(cache_dir, exist_ok=True)
  _save_atomically(file, statistics)
  return statistics


def cached_statistics(path: str, extractor: extract.FeatureExtractor, network_id: str,
                      cache_dir: Optional[str]) -> dict[str, np.ndarray]:
  """Statistics of a set, from cache_dir when its key matches, else computed (and stored)."""
  return cached(cache_dir, cache_key(path, network_id), lambda: compute_statistics(path, extractor))


def compare(stats_a: dict, stats_b: dict, kid_subsets: int = 100, kid_subset_size: int = 1000,
            seed: int = 0) -> dict:
  """FID and KID of set B against set A (A plays the real set)."""
  kid_mean, kid_std = kid.kernel_inception_distance(stats_a["features"], stats_b["features"], kid_subsets,
                                                    kid_subset_size, seed)
  return {
      "fid": frechet.frechet_distance(stats_a["mu"], stats_a["sigma"], stats_b["mu"], stats_b["sigma"]),
      "kid": kid_mean,
      "kid_std": kid_std,
      "num_a": len(stats_a["features"]),
      "num_b": len(stats_b["features"]),
  }


# ----------------------------------------------------------------------------- command line

FLAGS = flags.FLAGS


def _define_flags() -> None:
  # Only when run as a command: evaluation imports this module inside launch.py, whose flags must not clash.
  flags.DEFINE_string("inception_weights", None, "pytorch-fid's pt_inception-2015-12-05-6726825d.pth, "
                      "or an .npz of converted Flax variables.")
  flags.DEFINE_integer("batch_size", 50, "Images per jitted call; rounded up to a multiple of the device count.")
  flags.DEFINE_string("cache_dir", None, "Where to keep per-set statistics; no caching when unset.")
  flags.DEFINE_integer("kid_subsets", 100, "Number of KID subsets.")
  flags.DEFINE_integer("kid_subset_size", 1000, "Largest KID subset (smaller sets use their size).")
  flags.DEFINE_integer("seed", 0, "Seed of the KID subset sampling.")
  flags.mark_flag_as_required("inception_weights")


def data_mesh() -> Optional[Mesh]:
  """All local devices on the "data" axis; None on a single device.

  Local, not global: in a multi-process run each process extracts the features of all the samples on its own
  devices (the same work on every process, and no cross-process traffic), so every process gets the results.
  """
  devices = jax.local_devices()
  return Mesh(np.array(devices), (extract.DATA_AXIS,)) if len(devices) > 1 else None


def main(argv):
  if len(argv) != 3:
    raise app.UsageError("Usage: python -m gans.metrics.fid A B --inception_weights=FILE")
  path_a, path_b = argv[1:]
  mesh = data_mesh()
  shards = 1 if mesh is None else mesh.shape[extract.DATA_AXIS]
  batch_size = -(-FLAGS.batch_size // shards) * shards
  extractor = extract.FeatureExtractor(weights.load_fid_inception(FLAGS.inception_weights), batch_size, mesh)
  network_id = file_sha256(FLAGS.inception_weights)
  stats_a, stats_b = (cached_statistics(path, extractor, network_id, FLAGS.cache_dir) for path in (path_a, path_b))
  result = compare(stats_a, stats_b, FLAGS.kid_subsets, FLAGS.kid_subset_size, FLAGS.seed)
  print(json.dumps(result), file=sys.stdout, flush=True)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
