"""The official augmentation code as the PyTorch reference for `benchmarks/train_step.py --augment`.

Nothing of it is copied here: the code is imported at run time from a checkout the user names,

  --torch_augment_code=DIR   for --augment=ada: a checkout of NVlabs/stylegan2-ada-pytorch (its
                             training/augment.py AugmentPipe, the preset's augmentations, fixed p);
                             for a DiffAugment policy: a checkout of mit-han-lab/data-efficient-gans
                             (its DiffAugment_pytorch.py, at the repository's top level),

so the PyTorch side of the augmented step is the papers' own pipeline, not a re-implementation. Both run
on the CPU: the ADA pipe falls back to its reference (non-CUDA) resampling ops there.
"""
import importlib
import os
import sys
from typing import Callable

import torch

from gans.augment import ada


def _import_from(directory: str, module: str, needs: str):
  if not os.path.isfile(os.path.join(directory, needs)):
    raise FileNotFoundError(f"--torch_augment_code={directory} has no {needs}: give a checkout of "
                            + ("NVlabs/stylegan2-ada-pytorch" if module == "training.augment"
                               else "mit-han-lab/data-efficient-gans") + ".")
  sys.path.insert(0, os.path.abspath(directory))
  try:
    return importlib.import_module(module)
  finally:
    sys.path.pop(0)


def official_augment(policy: str, ada_p: float, ada_pipe: str, directory: str) -> Callable[[torch.Tensor], torch.Tensor]:
  """images NCHW -> augmented images, by the official code of ADA (policy "ada") or DiffAugment."""
  if policy == "ada":
    augment = _import_from(directory, "training.augment", os.path.join("training", "augment.py"))
    pipe = augment.AugmentPipe(**{name: 1 for name in ada.preset(ada_pipe)})  # every preset's multipliers are 1
    pipe.p.copy_(torch.as_tensor(ada_p))
    return pipe
  diffaugment = _import_from(directory, "DiffAugment_pytorch", "DiffAugment_pytorch.py")
  return lambda images: diffaugment.DiffAugment(images, policy=policy)
