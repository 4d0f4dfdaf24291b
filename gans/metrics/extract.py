"""Batched, jitted (and optionally sharded) feature extraction: the FID Inception or any pure network."""
import functools
from typing import Callable, Iterable, Iterator, Mapping, Optional, Union

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gans.metrics import inception

DATA_AXIS = "data"


def _fixed_size_batches(chunks: Iterable[np.ndarray], batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
  """Regroup arrays of any length into (batch of exactly batch_size, number of real rows).

  The last partial batch is padded by repeating its final image, so every call
  has one shape (one compilation) and the padding rows are valid images.
  """
  pending, pending_rows = [], 0
  for chunk in chunks:
    pending.append(np.asarray(chunk))
    pending_rows += len(chunk)
    while pending_rows >= batch_size:
      stacked = np.concatenate(pending)
      yield stacked[:batch_size], batch_size
      pending, pending_rows = [stacked[batch_size:]], pending_rows - batch_size
  if pending_rows:
    stacked = np.concatenate(pending)
    padding = np.repeat(stacked[-1:], batch_size - pending_rows, axis=0)
    yield np.concatenate([stacked, padding]), pending_rows


_inception_forward = jax.jit(inception.features_from_data_space, static_argnames="with_logits")


@functools.lru_cache(maxsize=None)
def _jitted(forward: Callable):
  # One jitted function per forward, so repeated evaluations (every eval_every steps) reuse its compilation.
  return jax.jit(forward)


class FeatureExtractor:
  """Maps images in data space [-1, 1] (NHWC, any size) to FID Inception outputs.

  With `forward` (a pure, module-level (variables, images) -> dict of arrays,
  e.g. classifier.outputs) the same batching, padding and sharding serve that
  network instead.

  Images are rounded to 8-bit levels and scaled to [0, 1] first (see
  inception.data_to_unit_range), so features equal those pytorch-fid computes
  from the same images saved as PNG. With a mesh, every batch is split over its
  "data" axis (batch_size must then be a multiple of that axis' size) and the
  variables are replicated.
  """

  def __init__(self, variables: Mapping, batch_size: int = 50, mesh: Optional[Mesh] = None,
               with_logits: bool = False, forward: Optional[Callable] = None):
    self.batch_size = batch_size  # images per jitted call; the last batch is padded
    self.with_logits = with_logits  # also return "logits_unbiased" (needs the fc kernel)
    self._batch_sharding = None
    if mesh is not None:
      shards = mesh.shape[DATA_AXIS]
      if batch_size % shards:
        raise ValueError(f"batch_size {batch_size} is not a multiple of the mesh's {shards} '{DATA_AXIS}' shards")
      self._batch_sharding = NamedSharding(mesh, P(DATA_AXIS))
      variables = jax.device_put(variables, NamedSharding(mesh, P()))
    else:
      variables = jax.device_put(variables)
    self._variables = variables
    if forward is None:
      self._forward = functools.partial(_inception_forward, with_logits=with_logits)
    else:
      self._forward = _jitted(forward)

  def run_batch(self, batch_NHWC: np.ndarray) -> dict:
    """Outputs (device arrays, sharded like the batch) of exactly batch_size images."""
    batch = jax.device_put(np.asarray(batch_NHWC, np.float32), self._batch_sharding)
    return self._forward(self._variables, batch)

  def __call__(self, images: Union[np.ndarray, Iterable[np.ndarray]]) -> dict[str, np.ndarray]:
    """images: one NHWC array or an iterable of them (streamed batch by batch)."""
    if isinstance(images, (np.ndarray, jax.Array)):
      images = [images]
    outputs: dict[str, list] = {}
    for batch, rows in _fixed_size_batches(images, self.batch_size):
      for name, value in self.run_batch(batch).items():
        outputs.setdefault(name, []).append(np.asarray(value)[:rows])
    if not outputs:
      raise ValueError("No images to extract features from")
    return {name: np.concatenate(parts) for name, parts in outputs.items()}
