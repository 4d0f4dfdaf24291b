"""Checkpoints: a thin wrapper over orbax's CheckpointManager.

A checkpoint holds three items: the GanState, the data iterators' states (one
file per process: each process reads its own shard of the data) and a
"meta" record (the run's model-defining config and the state's shapes). The
meta record is checked before anything is restored, so a checkpoint from
another config fails with a message naming what differs instead of an orbax
traceback or, worse, a silent restart.
"""
import json
import logging
import os

import jax
import orbax.checkpoint as ocp

# Config sections that define the state's structure; a checkpoint is only valid for the same values.
# Learning rates and EMA decay may change on resume; the shapes check still catches a different optimizer.
MODEL_DEFINING_SECTIONS = ("variant", "model", "data.source", "data.resolution", "data.channels")
# Fields of those sections that change how the state is computed, not what it is: model.dtype (the
# computation dtype; the state is float32 either way, which the shapes check confirms), so a float32 run
# may resume in bfloat16 and back, and checkpoints written before the field existed stay readable;
# pix2pix/CycleGAN's model.sample_direction and model.test_mode (how a trained model translates), so a
# CycleGAN trained with the default AtoB can translate BtoA; StackGAN's model.sample_stage (which stage's
# pictures sampling returns), so a run's Stage-I pictures can be evaluated.
STATE_NEUTRAL_FIELDS = {"model": ("dtype", "sample_direction", "test_mode", "sample_stage")}


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be used; the message says what to do."""


def _section(config, dotted: str):
  value = config
  for part in dotted.split("."):
    value = value.get(part) if hasattr(value, "get") else None
  return value.to_dict() if hasattr(value, "to_dict") else value


def _shapes(tree) -> dict:
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  return {jax.tree_util.keystr(path): [list(leaf.shape), str(leaf.dtype)] for path, leaf in leaves}


def make_meta(config, state) -> dict:
  sections = {name: _section(config, name) for name in MODEL_DEFINING_SECTIONS}
  for name, fields in STATE_NEUTRAL_FIELDS.items():
    if isinstance(sections.get(name), dict):
      sections[name] = {k: v for k, v in sections[name].items() if k not in fields}
  # Round-trip through JSON so tuples compare equal to the lists read back from disk.
  return json.loads(json.dumps({"config": sections, "shapes": _shapes(state)}, default=str))


def _differences(saved, expected, prefix: str) -> list[str]:
  if isinstance(saved, dict) and isinstance(expected, dict):
    keys = sorted(set(saved) | set(expected))
    return [d for k in keys for d in _differences(saved.get(k), expected.get(k), _join(prefix, k))]
  return [] if saved == expected else [f"{prefix}: checkpoint has {saved!r}, this run has {expected!r}"]


def _join(prefix: str, key: str) -> str:
  return f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"


class Checkpointer:
  """Saves and restores (state, data iterator state) under `<workdir>/checkpoints`."""

  def __init__(self, workdir: str, max_to_keep: int = 3):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self._data_file = _data_file_name(jax.process_index(), jax.process_count())
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    for item, save, restore, handler in (
        ("state", ocp.args.StandardSave, ocp.args.StandardRestore, ocp.StandardCheckpointHandler()),
        ("meta", ocp.args.JsonSave, ocp.args.JsonRestore, ocp.JsonCheckpointHandler()),
        # Every process writes its own iterator's state; orbax's default lets process 0 alone write.
        ("data", ocp.args.JsonSave, ocp.args.JsonRestore, ocp.JsonCheckpointHandler(
            self._data_file, multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=None))),
    ):
      registry.add(item, save, handler)
      registry.add(item, restore, handler)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        handler_registry=registry)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state, data_state: dict, meta: dict) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state), meta=ocp.args.JsonSave(meta)),
        force=True)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def restore(self, step: int, target_state, expected_meta: dict, with_data: bool = True):
    """Returns (state, data iterator state or None) of checkpoint `step`, shaped like `target_state`."""
    where = os.path.join(self.directory, str(step))
    try:
      saved_meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    except Exception as error:  # orbax raises many types for unreadable files
      raise CheckpointError(
          f"The checkpoint at {where} cannot be read ({type(error).__name__}: {str(error)[:200]}). "
          f"Delete that directory to resume from an earlier checkpoint, or start over with a new --workdir.") from error
    # Config differences explain shape differences, so they are shown alone when there are any.
    differences = (_differences(saved_meta.get("config"), expected_meta["config"], "config")
                   or _differences(saved_meta.get("shapes"), expected_meta["shapes"], "state"))
    if differences:
      shown = "\n  ".join(differences[:10]) + ("\n  ..." if len(differences) > 10 else "")
      raise CheckpointError(
          f"The checkpoint at {where} was written by a different configuration:\n  {shown}\n"
          f"Resume with the same config, or use a new --workdir for this one.")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_state)
    items = {"state": ocp.args.StandardRestore(abstract)}
    if with_data:
      self._check_data_file(where)
      items["data"] = ocp.args.JsonRestore()
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as error:
      raise CheckpointError(
          f"The checkpoint at {where} is incomplete or corrupt ({type(error).__name__}: {str(error)[:200]}). "
          f"Delete that directory to resume from an earlier checkpoint, or start over with a new --workdir.") from error
    logging.info("Restored checkpoint %s", where)
    return restored.state, (restored.data if with_data else None)

  def _check_data_file(self, where: str) -> None:
    """Refuses, with what to do, a checkpoint written by another number of processes (no data state for this one)."""
    data_directory = os.path.join(where, "data")
    if not os.path.isdir(data_directory) or os.path.exists(os.path.join(data_directory, self._data_file)):
      return  # a missing item is reported by the restore itself
    written = sorted(name for name in os.listdir(data_directory) if name != "commit_success.txt")
    raise CheckpointError(
        f"The checkpoint at {where} holds the data state of another number of processes ({', '.join(written)}; "
        f"this is process {jax.process_index()} of {jax.process_count()}). Resume with as many processes as "
        f"wrote it, or start over with a new --workdir.")


def _data_file_name(process_index: int, process_count: int) -> str:
  """One process keeps orbax's default name, so checkpoints written before multi-process runs still resume."""
  return "metadata" if process_count == 1 else f"process_{process_index}-of-{process_count}.json"
