"""A run's pieces built from its config: mesh, variant, optimizers, initial state, checkpoints, random streams.

Training, sampling and evaluation all start here, so a checkpoint is read the
same way by each of them.
"""
import functools
import logging
import os

import jax
import numpy as np

from gans import augment, checkpoint, layers, sharding, steps
from gans.state import GanState, GanVariant
from gans.variants import get_variant

# Independent random streams derived from config.seed.
TRAIN_STREAM, SAMPLE_STREAM, EVAL_STREAM, INIT_STREAM = range(4)


def default_compilation_cache() -> str:
  """A cache already chosen for JAX (JAX_COMPILATION_CACHE_DIR) or $XDG_CACHE_HOME/gans/jax (~/.cache/gans/jax)."""
  return jax.config.jax_compilation_cache_dir or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gans", "jax")


def use_compilation_cache(directory: str) -> None:
  """Keeps compiled programs in JAX's persistent cache under `directory` ("" = off).

  A resumed, sampled or evaluated run then loads its step functions instead of compiling them again
  (StyleGAN2's three step variants take minutes to compile on a CPU). The key covers the program, the
  compiler options and the JAX version, so a stale entry is never used.
  """
  if directory:
    jax.config.update("jax_compilation_cache_dir", directory)
    logging.info("JAX compilation cache: %s", directory)


def stream_key(seed: int, stream: int) -> jax.Array:
  return jax.random.fold_in(jax.random.key(seed), stream)


@functools.lru_cache(maxsize=None)
def _jitted_sampler(sample_fn, n: int):
  # Conditioning values are traced arguments, so --label=3 and --label=4 share one compilation.
  return jax.jit(lambda params, model_state, key, conditioning: sample_fn(params, model_state, key, n,
                                                                        **conditioning))


class ConditioningError(ValueError):
  """Sampling was asked for conditioning (--label, --code) that the variant does not take."""


def check_conditioning(variant: GanVariant, conditioning: dict) -> None:
  """Refuses conditioning the variant's sampler does not take, naming what it does take."""
  unknown = sorted(set(conditioning) - set(variant.conditioning))
  if unknown:
    accepted = ", ".join(variant.conditioning) or "none"
    raise ConditioningError(f"This variant's sampler takes no {', '.join(unknown)}; its conditioning: {accepted}.")


def chunk_conditioning(conditioning: dict, n: int, start: int, size: int) -> dict:
  """The conditioning of samples [start, start + size): per-sample arrays (leading dim n) sliced, ints kept."""
  return {name: value[start:start + size] if np.ndim(value) and np.shape(value)[0] == n else value
          for name, value in conditioning.items()}


def generate(variant: GanVariant, params, model_state, key: jax.Array, n: int, batch_size: int = 500,
             **conditioning) -> np.ndarray:
  """n samples in data space as a host array; chunk c uses fold_in(key, c), so results are independent of
  the device count but not of `batch_size`. `conditioning` (e.g. label=3) goes to the variant's sampler."""
  check_conditioning(variant, conditioning)
  chunks = []
  for chunk, start in enumerate(range(0, n, batch_size)):
    size = min(batch_size, n - start)
    chunk_key = jax.random.fold_in(key, chunk)
    outputs = _jitted_sampler(variant.sample, size)(params, model_state, chunk_key,
                                                    chunk_conditioning(conditioning, n, start, size))
    chunks.append(np.asarray(jax.device_get(outputs)))
  return np.concatenate(chunks)


@functools.lru_cache(maxsize=None)
def _jitted_picture(picture_fn):
  return jax.jit(lambda params, model_state, key, conditioning: picture_fn(params, model_state, key,
                                                                         **conditioning))


class Setup:
  """Everything built from a config before the first step; shared by training, sampling and evaluation."""

  def __init__(self, config, num_devices: int | None = None):
    self.config = config
    steps.check_nan_policy(config.train.nan_policy)  # before anything is built or written
    self.mesh = sharding.make_mesh(num_devices)
    # config.augment wraps the variant's phases so that D sees augmented images (gans/augment).
    self.variant: GanVariant = augment.augment_variant(get_variant(config.variant)(config), config)
    groups = jax.eval_shape(self.variant.init, jax.random.key(0))[0].keys()
    self.optimizers = steps.make_optimizers(config.optim, groups)
    use_ema = config.ema.enabled
    hyperparameters = self.hyperparameters()
    init = jax.jit(lambda key: steps.init_state(self.variant, self.optimizers, key, use_ema, hyperparameters),
                   out_shardings=sharding.replicated(self.mesh))
    self._init = lambda: init(stream_key(config.seed, INIT_STREAM))
    self.initial_state: GanState = self._init()
    self.meta = checkpoint.make_meta(config, self.initial_state)
    self._train_steps = {}

  def reinitialised_state(self) -> GanState:
    """`initial_state` computed again: training from step 0 donates its buffers to the first step."""
    return self._init()

  def train_step(self, phases: tuple[str, ...]):
    """The jitted step running `phases` (built once per distinct set): state donated, outputs replicated.

    On the CPU it compiles with layers.xla_cpu_compiler_options() (Eigen convolutions), which
    benchmarks/conv_transpose.py measures faster for these networks; other backends get no options.
    """
    if phases not in self._train_steps:
      self._train_steps[phases] = jax.jit(
          steps.make_train_step(self.variant, self.optimizers, phases, self.config.ema.decay,
                                self.config.train.nan_policy),
          donate_argnums=0, out_shardings=(sharding.replicated(self.mesh), sharding.replicated(self.mesh)),
          compiler_options=layers.xla_cpu_compiler_options())
    return self._train_steps[phases]

  def generate(self, state: GanState, n: int, key: jax.Array | None = None, **conditioning) -> np.ndarray:
    key = stream_key(self.config.seed, SAMPLE_STREAM) if key is None else key
    return generate(self.variant, steps.sampling_params(state), state.model_state, key, n, **conditioning)

  def grid(self, state: GanState) -> np.ndarray | None:
    """The variant's sample grid (outputs[rows, columns, ...]) on the sample stream, or None if it has none."""
    return None if self.variant.grid is None else self.picture(state, self.variant.grid)

  def picture(self, state: GanState, picture_fn, **conditioning) -> np.ndarray:
    """picture_fn(params, model_state, key, **conditioning) -> outputs[rows, columns, ...] of `state`, drawn
    with the sampling parameters on the sample stream (the grid, or one of GanVariant.pictures)."""
    key = stream_key(self.config.seed, SAMPLE_STREAM)
    return np.asarray(jax.device_get(_jitted_picture(picture_fn)(steps.sampling_params(state), state.model_state,
                                                                 key, conditioning)))

  def restore_latest(self, workdir: str, with_data: bool = True):
    """(state, data state, step) of the latest checkpoint in workdir, or the initial state when there is none."""
    checkpointer = checkpoint.Checkpointer(workdir, self.config.train.max_checkpoints)
    step = checkpointer.latest_step()
    if step is None:
      return checkpointer, self.initial_state, None, 0
    state, data_state = checkpointer.restore(step, self.initial_state, self.meta, with_data=with_data)
    return checkpointer, self._with_config_hyperparameters(state), data_state, step

  def hyperparameters(self) -> dict[str, float]:
    """The config's values of the variant's run-time loss weights (GanVariant.hyperparameters)."""
    return {name: self.config.model[name] for name in self.variant.hyperparameters}

  def _with_config_hyperparameters(self, state: GanState) -> GanState:
    """The optimizers' hyperparameters (learning rates, betas) and the variant's loss weights of this config,
    not of the checkpoint's: they live in the state (steps.make_optimizer, GanVariant.hyperparameters), and a
    resumed run may change them."""
    opt_state = {group: group_state._replace(hyperparams=self.initial_state.opt_state[group].hyperparams)
                 for group, group_state in state.opt_state.items()}
    model_state = state.model_state
    if self.variant.hyperparameters:
      model_state = {**model_state, "hyperparameters": self.initial_state.model_state["hyperparameters"]}
    return state.replace(opt_state=opt_state, model_state=model_state)
