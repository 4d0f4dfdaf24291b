"""FID Inception weights: PyTorch state dict <-> Flax variables, .pth and .npz files.

The standard weights are pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`,
a PyTorch state dict of the FID Inception3 (the 2015-12-05 TensorFlow Inception
graph ported to PyTorch), published as a release asset of the pytorch-fid GitHub
repository. It is read here without torch (see torch_pickle.py).
"""
import os
from typing import Mapping

import numpy as np

from gans.metrics import torch_pickle

# State-dict suffix -> (Flax collection, variable name). Everything in the
# network is BasicConv (conv + bn) except the final fully connected layer.
_CONV_BN_SUFFIXES = {
    "conv.weight": ("params", "kernel"),
    "bn.weight": ("params", "scale"),
    "bn.bias": ("params", "bias"),
    "bn.running_mean": ("batch_stats", "mean"),
    "bn.running_var": ("batch_stats", "var"),
}
_FC_NAMES = {"fc.weight": "kernel"}
# Entries of the distributed file the FID network does not use. The fc bias is
# among them: the standard Inception Score applies the softmax to pool3 @ W only.
_IGNORED_NAMES = ("fc.bias",)
_IGNORED_SUFFIXES = ("num_batches_tracked",)
_IGNORED_PREFIXES = ("AuxLogits.",)


def _to_flax_layout(array, variable_name: str):
  if variable_name == "kernel" and array.ndim == 4:
    return np.transpose(array, (2, 3, 1, 0))  # conv OIHW -> HWIO
  if variable_name == "kernel" and array.ndim == 2:
    return np.transpose(array)  # linear (out, in) -> (in, out)
  return array


def _flax_location(name: str):
  """'Mixed_5b.branch1x1.bn.running_var' -> ('batch_stats', ('Mixed_5b', 'branch1x1', 'bn', 'var'))."""
  if name in _FC_NAMES:
    return "params", ("fc", _FC_NAMES[name])
  for suffix, (collection, variable) in _CONV_BN_SUFFIXES.items():
    if name.endswith("." + suffix):
      modules = name[:-len(suffix) - 1].split(".") + [suffix.split(".")[0], variable]
      return collection, tuple(modules)
  raise ValueError(f"Unexpected FID Inception state-dict entry {name!r}")


def state_dict_to_variables(state_dict: Mapping[str, np.ndarray]) -> dict:
  """Convert Inception3 state-dict names/layouts to FIDInceptionV3 variables.

  Returns {"params": ..., "batch_stats": ...} as nested dicts of float32 numpy
  arrays. The `fc` kernel is included when present (it is in the distributed
  file); without it only pool3 features can be computed.
  """
  variables = {"params": {}, "batch_stats": {}}
  for name, array in state_dict.items():
    if name in _IGNORED_NAMES or name.endswith(_IGNORED_SUFFIXES) or name.startswith(_IGNORED_PREFIXES):
      continue
    collection, path = _flax_location(name)
    node = variables[collection]
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = np.ascontiguousarray(_to_flax_layout(np.asarray(array, np.float32), path[-1]))
  return variables


def _flatten(tree: Mapping, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f"{prefix}{key}/"))
    else:
      flat[f"{prefix}{key}"] = np.asarray(value)
  return flat


def _unflatten(flat: Mapping[str, np.ndarray]) -> dict:
  tree = {}
  for path, value in flat.items():
    *parents, leaf = path.split("/")
    node = tree
    for key in parents:
      node = node.setdefault(key, {})
    node[leaf] = value
  return tree


def save_variables_npz(path: str, variables: Mapping) -> None:
  """Save converted Flax variables as an .npz keyed 'params/Mixed_5b/branch1x1/conv/kernel'."""
  with open(path, "wb") as f:
    np.savez(f, **_flatten(variables))


def load_fid_inception(path: str) -> dict:
  """Load FID Inception variables for FIDInceptionV3.apply.

  `path` is either pytorch-fid's released weights file
  `pt_inception-2015-12-05-6726825d.pth` (a PyTorch state dict; both the zip
  format of torch >= 1.6 and the legacy format are read, without importing
  torch), or an .npz written by `save_variables_npz` (already converted Flax
  variables, e.g. to skip the conversion or to use test weights).
  """
  if os.fspath(path).endswith(".npz"):
    with np.load(path, allow_pickle=False) as flat:
      return _unflatten({key: flat[key] for key in flat.files})
  return state_dict_to_variables(torch_pickle.load(path))
