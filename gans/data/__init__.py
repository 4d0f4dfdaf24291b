"""Data: random-access sources and the grain pipeline that batches them.

    source = data.make_source(config.data)
    it = data.make_iterator(config.data, batch_size=B, seed=S,
                            shard_index=jax.process_index(), shard_count=jax.process_count())
    batch = next(it); state = it.get_state(); it.set_state(state)

The config fields and their defaults are documented in gans/data/config.py.
"""
from gans.data.arrays import parse_idx, read_idx
from gans.data.config import DEFAULTS, default_config
from gans.data.errors import DatasetNotFoundError
from gans.data.mixtures import MIXTURES, mixture_modes
from gans.data.pipeline import DataIterator, ShuffledBatches, batched_dataset, make_iterator
from gans.data.sources import SOURCES, make_source
