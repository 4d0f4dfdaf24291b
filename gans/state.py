"""The contract between a variant and the trainer: a variant is data.

A variant module builds a `GanVariant` (its Linen modules, how to initialise
them, its phases and how to sample). The trainer owns everything else: the
optimizers, the EMA copy of the generator, the step counter, the mesh and the
checkpoints. Adding a variant never requires editing the trainer.
"""
from typing import Any, Callable, Mapping, NamedTuple

import flax.struct
import jax

PyTree = Any
Params = Mapping[str, PyTree]  # group name ("g", "d", "q", ...) -> that group's parameters

# loss(params, model_state, batch, key) -> (loss, (metrics, new_model_state))
#   params:      every group's parameters; gradients flow only into the phase's `updates` groups.
#   model_state: the non-trainable variables (BatchNorm statistics, w_avg, pl_mean, ...), a dict.
#   batch:       the global batch, a dict of arrays (e.g. {"image": f32[N,H,W,C]} or {"x": f32[N,2]}), with
#                "label": int32[N] where the data source has labels (digits, IDX, most TFDS sets).
#   metrics:     dict of scalars, logged as "<phase name>/<metric name>".
LossFn = Callable[[Params, PyTree, PyTree, jax.Array], tuple[jax.Array, tuple[dict, PyTree]]]


class Phase(NamedTuple):
  """One optimisation phase: a pure loss and the parameter groups it updates."""
  name: str  # metrics prefix, e.g. "d_main"
  loss: LossFn  # see LossFn above
  updates: tuple[str, ...]  # parameter groups differentiated and updated by this phase
  every: int = 1  # runs on generator steps where step % every == 0 (lazy regularisation)
  repeats: int = 1  # runs this many times per step, each on its own batch (n_critic for D)
  start: int = 0  # first generator step the phase may run on (a progressive-growing stage's first step)
  stop: int | None = None  # the phase runs only on steps < stop; None = to the end of training
  # Metrics prefix; None = name. Phases that never run together (one per progressive-growing stage)
  # can log as one curve, e.g. "d_main@16" and "d_main@32" both as "d_main".
  log_as: str | None = None
  # Each run reads this many global batches (config.train.batch_size each) as one batch: a larger
  # minibatch for this phase only (StyleGAN's 256 images per step at 8x8 with a base batch of 32).
  batch_multiple: int = 1
  # Multiplies the phase's optimizer update, i.e. its learning rate for optax's adam, sgd and rmsprop
  # (their learning rate is the last, linear scaling): per-resolution learning rates.
  lr_multiple: float = 1.0
  # Name of a scalar metric the loss returns; the phase's update (its groups' parameters and optimizer state,
  # and the model_state it returns) is applied only when that metric is nonzero, chosen inside jit. The
  # 3D-GAN's adaptive rule (Wu et al. 2016): D learns only while its accuracy on the batch is below 80%.
  # None = always applied. A per-step condition computed from the batch cannot be a Python-side `every`.
  apply_if: str | None = None


class GanVariant(NamedTuple):
  """Everything the trainer needs to know about one GAN variant."""
  # init(key) -> (params, model_state): params maps group name -> that group's parameters.
  init: Callable[[jax.Array], tuple[Params, PyTree]]
  phases: tuple[Phase, ...]  # in execution order: discriminator phases before generator phases
  # sample(params, model_state, key, n, **conditioning) -> outputs in data space, leading dim n.
  sample: Callable[..., PyTree]
  ema_groups: tuple[str, ...] = ("g",)  # groups whose EMA copy is kept and used for sampling
  modules: Mapping[str, Any] = {}  # group name -> Linen module, for inspection and tests
  # The keyword arguments `sample` accepts, e.g. ("label",) for a conditional GAN, ("code",) for InfoGAN;
  # each takes an int (the same for every sample) or one value per sample. Others are refused by name.
  # Text to image: ("caption",), int32[n, L] character ids (gans/data/captions.py), one caption per sample; the
  # caption metrics (gans/evaluation.py) sample with held-out captions through it.
  conditioning: tuple[str, ...] = ()
  # grid(params, model_state, key) -> outputs[rows, columns, ...]: the variant's own sample picture (one
  # row per class, a code varied along the columns); None = `sample` laid out in a square.
  grid: Callable[..., PyTree] | None = None
  # encode(params, model_state, batch) -> dict of what the networks infer from data (InfoGAN's code logits,
  # the 3D-GAN's D features), for evaluators; None = the variant has no encoder.
  encode: Callable[..., PyTree] | None = None
  # name -> fn(params, model_state, key, **conditioning) -> outputs[rows, columns, ...]: further pictures
  # `--mode=sample --pictures=name` writes as <name>.png (StyleGAN: "style_mixing", "interpolation").
  pictures: Mapping[str, Callable[..., PyTree]] = {}
  # config.model fields (loss weights) the losses read at run time from model_state["hyperparameters"][name]
  # instead of compiling them in as constants, so the runs of a vectorised sweep may differ in them. The
  # trainer puts the config's values there at initialisation and on resume.
  hyperparameters: tuple[str, ...] = ()
  # held_out(n) -> dict of up to n held-out examples, for variants whose conditioning comes from data
  # (image-to-image: a source image per sample): the `sample` keywords (e.g. "source") plus "target" and
  # "label" where the data knows them. `--mode=sample` translates these when no --input is given, and the
  # translation metrics compare outputs with the targets (or, where no pairs are known, with
  # "unpaired_target": real images of the output domain). None = the variant samples without data.
  held_out: Callable[[int], dict] | None = None
  # prepare(params, model_state, batch, key, due) -> batch: work the step's phases share, done once per step
  # before them with the step's key; `due` names the phases this step runs (StackGAN's stages generate
  # different pictures); every phase's loss gets the returned dict as its batch. pix2pix: the jittered pair
  # and G(A) with its VJP, so D and G learn from one G forward pass, as the official code's iteration
  # (`common.forward_once`; `Prepared.replay` differentiates through it). Only for variants whose phases read one batch once per step.
  prepare: Callable[..., dict] | None = None


@flax.struct.dataclass
class GanState:
  """All mutable training state, one pytree; orbax saves it as it is."""
  step: jax.Array  # generator steps taken, int32 scalar
  params: dict  # group -> parameters
  opt_state: dict  # group -> optax state
  ema_params: dict  # group in ema_groups -> EMA parameters ({} when EMA is off)
  model_state: dict  # non-trainable collections and buffers (batch_stats, w_avg, pl_mean)
  # The divergence guard (config.train.nan_policy, gans/steps.py): updates not applied because their loss
  # or a value they produced was not finite, and (generator step, phase index) of the first, -1s if none.
  skipped_updates: jax.Array  # int32 scalar
  first_nonfinite: jax.Array  # int32[2]
