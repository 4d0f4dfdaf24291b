"""Deterministic stand-in FID Inception weights (the reference fixtures' recipe).

The real weights are a 91 MB download. Tests of anything built on the Inception
network (FID, KID, the CLI, evaluation during training) use instead the
deterministic state dict that the project's pytorch-fid reference fixtures were
computed with, regenerated from its table (tests/fixtures/fid_inception_params.json):
for entry i of the pytorch-fid wrapper's state dict, draw once from
numpy.random.default_rng(1000 + i) and scale in float32 (NumPy >= 2 rules).
"""
import json
import math
from typing import Iterable, Mapping

import numpy as np

_F32 = np.float32


def _entry_value(row: Mapping, conv_gain: float) -> np.ndarray:
  shape = tuple(row["shape"])
  kind = row["kind"]
  if kind == "num_batches_tracked":
    return np.zeros(shape, np.int64)
  rng = np.random.default_rng(row["seed"])
  if kind == "running_var":
    return rng.uniform(0.5, 1.5, size=shape).astype(_F32)  # drawn in float64, then cast
  normal = rng.standard_normal(shape).astype(_F32)
  # The scales are rounded to float32 before multiplying (a Python float meets
  # a float32 array under NEP 50); multiplying in float64 and casting back
  # differs by one ulp in ~18 % of the conv weights.
  if kind == "conv_weight":
    return normal * _F32(math.sqrt(conv_gain / row["fan_in"]))
  if kind == "bn_weight":
    return _F32(1.0) + _F32(0.1) * normal
  if kind in ("bias", "running_mean"):
    return _F32(0.1) * normal
  raise ValueError(f"Unknown entry kind {kind!r} in {row['name']}")


def deterministic_state_dict(rows: Iterable[Mapping], he: bool = False) -> dict:
  """The fixture weights as an Inception3 state dict (keys like 'Mixed_5b.branch1x1.conv.weight').

  he=True gives the He-scaled variant (conv gain 2 instead of 1), whose features
  depend strongly on the input.
  """
  conv_gain = 2.0 if he else 1.0
  return {row["inception_name"]: _entry_value(row, conv_gain) for row in rows}


def read_params_table(path: str) -> list:
  with open(path) as f:
    return json.load(f)["params"]
