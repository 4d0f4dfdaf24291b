"""The FID/KID command line end to end, and its statistics cache."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gans.metrics import fid, inception, kid, testing, weights

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_pngs(folder, images_uint8):
  os.makedirs(folder, exist_ok=True)
  for index, image in enumerate(images_uint8):
    Image.fromarray(image).save(os.path.join(folder, f"{index:03d}.png"))


def _to_uint8_like_a_png_export(samples):
  return np.clip(np.floor(samples * 127.5 + 128.0), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_sets(tmp_path_factory):
  root = tmp_path_factory.mktemp("sets")
  rng = np.random.default_rng(0)
  _write_pngs(str(root / "real"), rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8))
  # Generated samples: floats in data space, slightly out of range in places.
  samples = np.clip(rng.normal(0.3, 0.5, (4, 32, 32, 3)), -1.2, 1.2).astype(np.float32)
  np.savez(root / "samples.npz", samples=samples)
  _write_pngs(str(root / "samples_png"), _to_uint8_like_a_png_export(samples))
  return root


def test_samples_reach_the_network_exactly_as_their_png_export(image_sets):
  (from_npz,) = fid.image_batches(str(image_sets / "samples.npz"), batch_size=10)
  (from_pngs,) = fid.image_batches(str(image_sets / "samples_png"), batch_size=10)
  np.testing.assert_array_equal(np.asarray(inception.data_to_unit_range(from_npz)),
                                np.asarray(inception.data_to_unit_range(from_pngs)))


def test_command_line_prints_fid_and_kid_of_the_cached_statistics(image_sets, tmp_path):
  rows = testing.read_params_table(os.path.join(FIXTURES, "fid_inception_params.json"))
  weights_npz = str(tmp_path / "inception_he.npz")
  weights.save_variables_npz(weights_npz, weights.state_dict_to_variables(testing.deterministic_state_dict(rows, he=True)))
  cache_dir = tmp_path / "cache"
  command = [sys.executable, "-m", "gans.metrics.fid", str(image_sets / "real"), str(image_sets / "samples.npz"),
             f"--inception_weights={weights_npz}", "--batch_size=4", f"--cache_dir={cache_dir}", "--kid_subsets=10"]
  env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"}
  completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert completed.returncode == 0, completed.stderr
  result = json.loads(completed.stdout.strip().splitlines()[-1])
  assert set(result) == {"fid", "kid", "kid_std", "num_a", "num_b"}
  assert result["num_a"] == result["num_b"] == 4

  network_id = fid.file_sha256(weights_npz)
  cached = {}
  for name in ("real", "samples.npz"):
    file = cache_dir / f"fid_stats_{fid.cache_key(str(image_sets / name), network_id)}.npz"
    with np.load(file) as data:
      cached[name] = {key: data[key] for key in data.files}
    assert cached[name]["features"].shape == (4, inception.FEATURE_DIM)
  real, samples = cached["real"]["features"], cached["samples.npz"]["features"]
  assert (result["kid"], result["kid_std"]) == kid.kernel_inception_distance(real, samples, num_subsets=10)
  assert result["fid"] == pytest.approx(_few_sample_fid(real, samples), rel=1e-9)
  assert result["fid"] > 1.0  # random images and brighter noisy samples are far apart for the He weights


def _few_sample_fid(features1, features2):
  """FID for n << d samples in closed form: eig(sigma1 sigma2) != 0 are eig(C C^T) / (n-1)^2, C = A1 A2^T."""
  mu1, mu2 = features1.mean(0, dtype=np.float64), features2.mean(0, dtype=np.float64)
  centred1, centred2 = features1 - mu1, features2 - mu2
  cross = centred1 @ centred2.T
  n = len(features1)
  trace_sqrt = np.sum(np.sqrt(np.maximum(np.linalg.eigvalsh(cross @ cross.T), 0.0))) / (n - 1)
  traces = (np.sum(centred1**2) + np.sum(centred2**2)) / (n - 1)
  mean_diff = features1.mean(0) - features2.mean(0)  # float32, as pytorch-fid's statistics keep it
  return mean_diff.dot(mean_diff) + traces - 2 * trace_sqrt


# ------------------------------------------------------------------ cache behaviour (no network)

class _CountingStatistics:
  """Stands in for compute_statistics: counts calls, returns statistics unique per call."""

  def __init__(self):
    self.calls = 0

  def __call__(self, path, extractor):
    self.calls += 1
    features = np.full((3, 2), float(self.calls), np.float32)
    features[0] += 1.0
    return {"mu": features.mean(0), "sigma": np.cov(features, rowvar=False), "features": features}


@pytest.fixture
def counting(monkeypatch):
  counter = _CountingStatistics()
  monkeypatch.setattr(fid, "compute_statistics", counter)
  return counter


def test_unchanged_set_is_served_from_cache(image_sets, tmp_path, counting):
  path = str(image_sets / "real")
  first = fid.cached_statistics(path, None, "network-a", str(tmp_path))
  second = fid.cached_statistics(path, None, "network-a", str(tmp_path))
  assert counting.calls == 1
  np.testing.assert_array_equal(first["features"], second["features"])


def test_changed_folder_is_recomputed(image_sets, tmp_path, counting):
  folder = tmp_path / "changing"
  _write_pngs(str(folder), np.zeros((2, 8, 8, 3), np.uint8))
  fid.cached_statistics(str(folder), None, "network-a", str(tmp_path / "cache"))
  _write_pngs(str(folder), np.full((3, 8, 8, 3), 255, np.uint8))  # rewrites two files, adds one
  fid.cached_statistics(str(folder), None, "network-a", str(tmp_path / "cache"))
  assert counting.calls == 2


def test_rewritten_npz_is_recomputed(tmp_path, counting):
  path = tmp_path / "samples.npz"
  np.savez(path, samples=np.zeros((2, 8, 8, 3), np.float32))
  fid.cached_statistics(str(path), None, "network-a", str(tmp_path / "cache"))
  os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))  # same bytes, new mtime
  fid.cached_statistics(str(path), None, "network-a", str(tmp_path / "cache"))
  assert counting.calls == 2


def test_other_network_or_resolution_gets_its_own_entry(image_sets, tmp_path, counting):
  fid.cached_statistics(str(image_sets / "real"), None, "network-a", str(tmp_path))
  fid.cached_statistics(str(image_sets / "real"), None, "network-b", str(tmp_path))
  assert counting.calls == 2
  small = tmp_path / "small"
  _write_pngs(str(small), np.zeros((2, 8, 8, 3), np.uint8))
  key = fid.cache_key(str(small), "network-a")
  _write_pngs(str(small), np.zeros((2, 16, 16, 3), np.uint8))
  assert fid.cache_key(str(small), "network-a") != key


def test_without_cache_dir_nothing_is_written(image_sets, tmp_path, counting):
  fid.cached_statistics(str(image_sets / "real"), None, "network-a", None)
  fid.cached_statistics(str(image_sets / "real"), None, "network-a", None)
  assert counting.calls == 2 and not os.listdir(tmp_path)


def test_folder_of_mixed_sizes_is_refused(tmp_path):
  _write_pngs(str(tmp_path), np.zeros((2, 8, 8, 3), np.uint8))
  Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(tmp_path / "002.png")
  with pytest.raises(ValueError, match="002.png"):
    list(fid.image_batches(str(tmp_path), batch_size=2))


def test_grayscale_npz_is_read_as_rgb(tmp_path):
  path = tmp_path / "gray.npz"
  np.savez(path, samples=np.linspace(-1, 1, 2 * 4 * 4).reshape(2, 4, 4, 1).astype(np.float32))
  (batch,) = fid.image_batches(str(path), batch_size=8)
  assert batch.shape == (2, 4, 4, 3)
  np.testing.assert_array_equal(batch[..., 0], batch[..., 2])
