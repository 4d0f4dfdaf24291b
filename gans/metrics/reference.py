"""Statistics of the real data an experiment trains on: computed once per (dataset, resolution, network), cached.

The cache is the FID command line's (fid.cached, files fid_stats_<key>.npz);
the key holds the data config (minus reader settings), the number of reference
images, the size and modification time of the data path and the feature
network's identity, so a changed dataset or network is recomputed, not served
stale.
"""
import hashlib
import os
from typing import Iterator

import numpy as np

from gans import data
from gans.data.config import DEFAULTS, field
from gans.metrics import extract, fid, frechet
from gans.metrics.progress import Progress

# Data config fields that change how elements are read, not what they are.
_READER_FIELDS = ("num_workers", "read_threads")
REFERENCE_SEED = 0  # which subset of a large source serves as reference (num_reference > 0)


def default_cache_dir() -> str:
  return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gans")


def path_stamp(path: str) -> str:
  """Size and modification time of a data path: a replaced file or an added image changes it."""
  if not path or not os.path.exists(path):
    return ""
  stat = os.stat(path)
  return f"{stat.st_size}:{stat.st_mtime_ns}"


def data_key(data_config) -> str:
  fields = [f"{name}={field(data_config, name)!r}" for name in sorted(DEFAULTS) if name not in _READER_FIELDS]
  return "\n".join(fields + [f"stamp={path_stamp(field(data_config, 'path'))}"])


def reference_indices(num_elements: int, num_reference: int) -> np.ndarray:
  """Every element (num_reference 0 or at least the size), else a fixed random subset in source order."""
  if num_reference <= 0 or num_reference >= num_elements:
    return np.arange(num_elements)
  rng = np.random.default_rng(REFERENCE_SEED)
  return np.sort(rng.choice(num_elements, num_reference, replace=False))


def source_batches(source, indices: np.ndarray, batch_size: int, description: str) -> Iterator[np.ndarray]:
  """Image batches of source[indices], skipping elements the source cannot read (None), with progress."""
  with Progress(len(indices), description) as progress:
    for start in range(0, len(indices), batch_size):
      elements = [source[int(i)] for i in indices[start:start + batch_size]]
      images = [element["image"] for element in elements if element is not None]
      progress.update(len(elements))
      if images:
        yield np.stack(images)


def statistics(features_ND: np.ndarray, logits_NK: np.ndarray | None = None) -> dict[str, np.ndarray]:
  mu, sigma = frechet.activation_statistics(features_ND)
  result = {"mu": mu, "sigma": sigma, "features": features_ND}
  if logits_NK is not None:
    result["logits"] = logits_NK
  return result


def reference_statistics(data_config, extractor: extract.FeatureExtractor, feature_name: str, network_id: str,
                         cache_dir: str, num_reference: int = 0, logits_name: str | None = None) -> dict:
  """{"mu", "sigma", "features"[, "logits"]} of the experiment's real images under one network.

  feature_name: the extractor output the statistics are of ("pool3", "features");
  logits_name: an output kept as well (the classifier's "logits", for real-data
  class coverage); network_id: changes whenever the network's weights do.
  """
  key_text = "\n".join([network_id, feature_name, str(logits_name), f"num_reference={num_reference}",
                        data_key(data_config)])
  key = hashlib.sha256(key_text.encode()).hexdigest()

  def compute():
    source = data.make_source(data_config)
    indices = reference_indices(len(source), num_reference)
    outputs = extractor(source_batches(source, indices, extractor.batch_size, "Reference statistics of the real data"))
    return statistics(outputs[feature_name], outputs[logits_name] if logits_name else None)

  return fid.cached(cache_dir, key, compute)
