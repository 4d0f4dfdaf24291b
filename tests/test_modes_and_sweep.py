"""2D mode-coverage metrics on constructed samples, and the sweep table."""
import json

import numpy as np
import pytest

from gans import data, sweep
from gans.metrics import modes


def test_ring8_has_eight_distinct_modes_and_grid25_twenty_five():
  ring, ring_std = data.mixture_modes("ring8")
  grid, grid_std = data.mixture_modes("grid25")
  assert len(np.unique(np.round(ring, 6), axis=0)) == 8 and ring_std == 0.01
  assert len(np.unique(np.round(grid, 6), axis=0)) == 25 and grid_std == 0.05


def test_samples_at_every_mode_capture_all_modes_with_zero_kl():
  means, std = data.mixture_modes("ring8")
  samples = np.repeat(means, 10, axis=0) + 0.5 * std  # 10 per mode, 0.5*sqrt(2) std from the mean
  result = modes.mode_metrics(samples, means, std)
  assert result == {"modes": 8, "high_quality": 1.0, "reverse_kl": pytest.approx(0.0, abs=1e-12)}


def test_collapsed_samples_and_far_samples():
  means, std = data.mixture_modes("grid25")
  collapsed = np.concatenate([np.repeat(means[:1], 30, axis=0), np.full((10, 2), 1.0)])  # 1.0 is 20 std away
  result = modes.mode_metrics(collapsed, means, std)
  assert result["modes"] == 1
  assert result["high_quality"] == pytest.approx(0.75)
  assert result["reverse_kl"] == pytest.approx(np.log(25))  # all mass on one of 25 modes


def test_reverse_kl_of_an_uneven_histogram():
  means, std = data.mixture_modes("ring8")
  counts = np.array([3, 1, 0, 0, 0, 0, 0, 0])
  samples = np.repeat(means, counts, axis=0)
  p = np.array([0.75, 0.25])
  expected = float(np.sum(p * np.log(p * 8)))
  assert modes.mode_metrics(samples, means, std)["reverse_kl"] == pytest.approx(expected)


def test_threshold_is_three_standard_deviations():
  means, std = data.mixture_modes("ring8")
  inside = means[:1] + np.array([[2.99 * std, 0.0]])
  outside = means[:1] + np.array([[3.01 * std, 0.0]])
  assert modes.mode_metrics(inside, means, std)["high_quality"] == 1.0
  assert modes.mode_metrics(outside, means, std)["high_quality"] == 0.0


def test_sweep_summarizes_the_last_evaluation_of_each_seed(tmp_path):
  for seed, (first, last) in enumerate([(1, 6), (2, 8)]):
    path = tmp_path / f"gan_ring8_s{seed}"
    path.mkdir()
    lines = [{"step": 10, "modes": first}, {"step": 20, "modes": last, "high_quality": 0.5}]
    (path / "eval.jsonl").write_text("\n".join(json.dumps(l) for l in lines) + "\n")
  rows = sweep.summarize(str(tmp_path), ["gan_ring8", "pacgan_ring8"], ["0", "1", "2"])
  assert rows[0]["runs"] == 2 and rows[0]["steps"] == [20]
  assert rows[0]["modes"] == (7.0, 1.0) and rows[0]["high_quality"] == (0.5, 0.0)
  assert rows[1]["runs"] == 0
  table = sweep.format_table(rows)
  assert "| gan_ring8 | 2 | 20 | 0.5 ± 0 | 7 ± 1 |" in table
