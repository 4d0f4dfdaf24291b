"""Devices: one data-parallel code path for 1 CPU, N GPUs and many hosts.

The update functions are written for the global batch and jitted over a Mesh
with one "data" axis: batches are split along their batch dimension, the state
is replicated. XLA inserts the gradient all-reduce itself.
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def maybe_initialize_distributed(enabled: bool, coordinator_address: str | None = None,
                                 num_processes: int | None = None, process_id: int | None = None) -> None:
  """Joins a multi-host run. What is None, `jax.distributed.initialize()` reads from the cluster's
  environment (SLURM, Cloud TPU, Open MPI, Kubernetes; JAX_COORDINATOR_ADDRESS)."""
  if enabled:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def make_mesh(num_devices: int | None = None) -> Mesh:
  devices = jax.devices()
  if num_devices is not None:
    if num_devices > len(devices):
      raise ValueError(f"Asked for {num_devices} devices but JAX sees {len(devices)}: {devices}.")
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
  """Splits dimension `batch_axis` over the devices (1 when a step stacks n_critic batches)."""
  return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh) -> int:
  """Returns this process's share of the global batch, after checking that it divides evenly."""
  n_devices, n_processes = mesh.devices.size, jax.process_count()
  if global_batch_size % n_devices:
    raise ValueError(f"config.train.batch_size={global_batch_size} is the global batch and must be a "
                     f"multiple of the number of devices ({n_devices}); pick e.g. "
                     f"{max(n_devices, global_batch_size - global_batch_size % n_devices)}.")
  return global_batch_size // n_processes


def to_global(host_batch, sharding: NamedSharding):
  """Assembles each process's slice of the batch into one global, sharded jax.Array."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), host_batch)


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, replicated(mesh))
