"""The grain pipeline: globally shuffled per epoch, sharded, repeated forever, batched, resumable.

Batch b of shard s is a pure function of (source, batch_size, seed, s,
shard_count, b), computed by `ShuffledBatches`; grain iterates over b, reads
batches ahead in threads or worker processes, and checkpoints how far it got.
Batching whole index arrays, rather than letting grain shuffle and batch one
element at a time, matters for cheap elements: grain's per-element bookkeeping
cost ~100 us per element here, 50 ms per 512-point batch of a 2D mixture whose
vectorised read takes 0.1 ms.

Each epoch is one global permutation of the source shared by every process;
shard s takes every shard_count-th element of it. So shards are disjoint within
an epoch, each epoch partitions the data differently, and all shards have the
same epoch length (len(source) // shard_count: the few elements left over
differ from epoch to epoch). Batches straddle epoch boundaries, so every batch
is full: training counts steps, not epochs.
"""
import sys

import grain
import numpy as np
from absl import flags

from gans.data.config import field
from gans.data.mixtures import MIXTURES
from gans.data.sources import make_source

# Beyond this many unreadable files in a row the folder is broken, not unlucky.
MAX_CONSECUTIVE_UNREADABLE = 100


def epoch_permutation(seed: int, epoch: int, num_elements: int) -> np.ndarray:
  """The order in which epoch `epoch` visits the whole source (before sharding)."""
  return np.random.default_rng([seed, epoch]).permutation(num_elements)


def stack_elements(elements: list[dict]) -> dict:
  return {key: np.stack([element[key] for element in elements]) for key in elements[0]}


class ShuffledBatches:
  """Random access to one shard's infinite sequence of batches: batches[b] -> dict of arrays.

  A source that defines read_batch(indices) -> dict of stacked arrays (the 2D
  mixtures) is read one batch per call; any other source one element at a time.
  """

  def __init__(self, source, *, batch_size: int, seed: int, shard_index: int = 0, shard_count: int = 1):
    if not 0 <= shard_index < shard_count:
      raise ValueError(f"shard_index {shard_index} is not in [0, {shard_count})")
    if batch_size < 1:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    self._source = source
    self._batch_size = batch_size
    self._seed = seed
    self._shard_index = shard_index
    self._shard_count = shard_count
    self._num_elements = len(source)
    self.epoch_length = self._num_elements // shard_count  # elements this shard reads per epoch
    if self.epoch_length == 0:
      raise ValueError(f"{shard_count} shards need at least as many elements; the source has {self._num_elements}")
    self._permutations = {}  # the last epochs' permutations: consecutive batches reuse them

  def __len__(self) -> int:
    return sys.maxsize  # infinite, as far as grain is concerned

  def __getstate__(self):
    return {**self.__dict__, "_permutations": {}}  # workers recompute rather than unpickle megabytes

  def _permutation(self, epoch: int) -> np.ndarray:
    permutation = self._permutations.get(epoch)
    if permutation is None:
      permutation = epoch_permutation(self._seed, epoch, self._num_elements)
      # Replacing, not mutating, the dict keeps concurrent reader threads safe.
      self._permutations = {e: p for e, p in self._permutations.items() if e >= epoch - 1} | {epoch: permutation}
    return permutation

  def source_indices(self, positions: np.ndarray) -> np.ndarray:
    """The source index read at each position of this shard's element stream."""
    positions = np.asarray(positions, dtype=np.int64)
    epochs, offsets = np.divmod(positions, self.epoch_length)
    indices = np.empty_like(positions)
    for epoch in np.unique(epochs):
      in_epoch = epochs == epoch
      indices[in_epoch] = self._permutation(int(epoch))[self._shard_index + offsets[in_epoch] * self._shard_count]
    return indices

  def batch_positions(self, batch_index: int) -> np.ndarray:
    return np.arange(batch_index * self._batch_size, (batch_index + 1) * self._batch_size, dtype=np.int64)

  def _readable_element(self, position: int, index: int) -> dict:
    element = self._source[index]
    if element is not None:
      return element
    # An unreadable file's slot goes to the next readable element of the stream:
    # every batch stays full and batch b stays a pure function of b.
    later_positions = np.arange(position + 1, position + MAX_CONSECUTIVE_UNREADABLE)
    for later_index in self.source_indices(later_positions):
      element = self._source[int(later_index)]
      if element is not None:
        return element
    raise ValueError(f"{MAX_CONSECUTIVE_UNREADABLE} unreadable elements in a row from {self._source!r}")

  def __getitem__(self, batch_index: int) -> dict:
    positions = self.batch_positions(batch_index)
    indices = self.source_indices(positions)
    if hasattr(self._source, "read_batch"):  # vectorised sources never skip elements
      return self._source.read_batch(indices)
    return stack_elements([self._readable_element(int(p), int(i)) for p, i in zip(positions, indices)])

class MirroredSource:
  """Elements [0, n) are the source's, [n, 2n) the same images flipped left-right (labels kept)."""

  def __init__(self, source):
    self._source = source

  def __len__(self) -> int:
    return 2 * len(self._source)

  def __getitem__(self, index: int) -> dict | None:
    mirrored, index = divmod(int(index), len(self._source))
    element = self._source[index]
    if element is None or not mirrored:
      return element
    return {**element, "image": np.ascontiguousarray(element["image"][:, ::-1])}

  def __repr__(self) -> str:
    return f"MirroredSource({self._source!r})"


class LimitedSource:
  """The first `limit` elements of a source."""

  def __init__(self, source, limit: int):
    self._source, self._limit = source, min(limit, len(source))

  def __len__(self) -> int:
    return self._limit

  def __getitem__(self, index: int):
    if not 0 <= index < self._limit:
      raise IndexError(f"index {index} outside the first {self._limit} elements")
    return self._source[index]

  def __getattr__(self, name):  # read_batch of vectorised sources, which index the same way
    if name.startswith("_"):  # not set yet while unpickling in a worker
      raise AttributeError(name)
    return getattr(self._source, name)

  def __repr__(self) -> str:
    return f"LimitedSource({self._source!r}, {self._limit})"


def training_source(config):
  """The source the training pipeline reads: make_source's, cut to data.limit, doubled by data.mirror."""
  source = make_source(config)
  limit = field(config, "limit")
  if limit < 0:
    raise ValueError(f"data.limit must be 0 (all) or a number of elements, got {limit}.")
  if limit:
    source = LimitedSource(source, limit)
  if not field(config, "mirror"):
    return source
  if field(config, "source") == "captioned_shapes":
    raise ValueError("data.mirror flips pictures left-right, but captioned_shapes captions say left and right; "
                     "set data.mirror=False.")
  if field(config, "source") in MIXTURES:
    raise ValueError(f"data.mirror flips images; the {field(config, 'source')!r} source has none. "
                     f"Set data.mirror=False.")
  return MirroredSource(source)


def batched_dataset(source, *, batch_size: int, seed: int, shard_index: int = 0, shard_count: int = 1,
                    num_workers: int = 0, read_threads: int = 2) -> grain.IterDataset:
  """This shard's infinite grain dataset of batches."""
  batches = ShuffledBatches(source, batch_size=batch_size, seed=seed, shard_index=shard_index,
                            shard_count=shard_count)
  # The buffer counts batches, not images: a few batches ahead keep the
  # accelerator fed without holding gigabytes of decoded high-resolution images.
  read_options = grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=2 * read_threads)
  dataset = grain.MapDataset.source(batches).to_iter_dataset(read_options)
  if num_workers > 0:
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return dataset


class DataIterator:
  """Batches as dicts of numpy arrays; its state is a JSON-serialisable dict.

  The state records the pipeline's arguments so that resuming with, say, a
  different batch size fails loudly instead of silently reading other data.
  """

  def __init__(self, dataset: grain.IterDataset, pipeline: dict):
    self._iterator = iter(dataset)
    self._pipeline = pipeline  # the arguments that determine the sequence of batches

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    return next(self._iterator)

  def get_state(self) -> dict:
    return {"pipeline": dict(self._pipeline), "grain": self._iterator.get_state()}

  def set_state(self, state: dict) -> None:
    saved = state["pipeline"]
    if saved != self._pipeline:
      changed = sorted(k for k in saved.keys() | self._pipeline.keys() if saved.get(k) != self._pipeline.get(k))
      raise ValueError(f"The data state was saved by a different pipeline (differs in {changed}): "
                       f"saved {saved}, now {self._pipeline}; it cannot resume exactly.")
    self._iterator.set_state(state["grain"])

  def close(self) -> None:
    """Stops grain's reader threads and worker processes."""
    self._iterator.close()


def make_iterator(config, *, batch_size: int, seed: int, shard_index: int = 0, shard_count: int = 1) -> DataIterator:
  """This process's infinite iterator of batches with leading dimension batch_size.

  `batch_size` is this process's share of the global batch; `seed` fixes the
  shuffle. The batches do not depend on data.num_workers or data.read_threads,
  but the saved state does, so resume with the same num_workers.
  """
  num_workers = field(config, "num_workers")
  if num_workers > 0 and not flags.FLAGS.is_parsed():
    # grain's worker processes read absl flags; unparsed, they fail deep inside a thread.
    raise RuntimeError("data.num_workers > 0 needs absl flags parsed (run under absl.app.run, as launch.py does)")
  source = training_source(config)
  dataset = batched_dataset(source, batch_size=batch_size, seed=seed, shard_index=shard_index,
                            shard_count=shard_count, num_workers=num_workers, read_threads=field(config, "read_threads"))
  pipeline = dict(source=field(config, "source"), limit=field(config, "limit"), mirror=field(config, "mirror"),
                  num_elements=len(source), batch_size=batch_size, seed=seed, shard_index=shard_index, shard_count=shard_count, num_workers=num_workers)
  return DataIterator(dataset, pipeline)
