"""Augmenting what D sees: DiffAugment and ADA for every image variant, switched on by config.augment.

`augment_variant(variant, config)` returns the variant with each phase's loss
wrapped: while the loss runs, every top-level call of the variant's
discriminator (modules["d"], however the variant applies it: through
common.apply_module or module.apply) receives its image argument augmented. So
reals and fakes are augmented alike in every phase (D and G phases, R1 and
gradient penalties, whose input gradients flow back through the augmentation to
the unaugmented image, as in the official ADA), and no variant's loss changes.
Each call draws its own parameters from fold_in(phase key, AUGMENT_STREAM) and
the call's index within the loss, so any step still replays from (state, batch, key).

config.augment:
  policy        "" = off; DiffAugment policies as a comma-separated list of color, translation,
                cutout (the paper's default "color,translation,cutout"); "ada" = ADA   ("")
  ada_pipe      ADA preset: blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc   ("bgc")
  ada_p         initial p (the fixed p when ada_target = 0)   (0.0)
  ada_target    target of r_t = E[sign(D(real))]; 0 = fixed p   (0.6)
  ada_interval  D steps between adjustments of p   (4)
  ada_kimg      thousands of images in which p can go from 0 to 1   (500)

ADA's state (p and the sign statistics) is model_state["augment"], so it is
checkpointed and resumed with the rest; the phase logged as "d_main" measures
r_t from its "real_signs" metric (losses.logit_metrics), moves p, and logs it as
"d_main/augment_p".
"""
import itertools

import flax.linen as nn
import jax
import ml_collections

from gans.augment import ada, diffaugment
from gans.state import GanVariant, Phase
from gans.variants import common

AUGMENT_STREAM = 0x61756721  # folded into a phase's key: the augmentation's own random stream
MEASURING_PHASE = "d_main"  # the phase (by log name) whose real_signs drive ADA's p


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({"policy": "", "ada_pipe": "bgc", "ada_p": 0.0, "ada_target": 0.6,
                                    "ada_interval": 4, "ada_kimg": 500.0})


def make_transform(augment_config):
  """transform(key, images_NHWC, model_state) -> images for config.augment, or None when it is off."""
  policy = augment_config.policy.strip()
  if not policy:
    return None
  if policy == "ada":
    augmentations = ada.preset(augment_config.ada_pipe)
    return lambda key, images, model_state: ada.ada_augment(key, images, model_state["augment"]["p"],
                                                            augmentations)
  names = diffaugment.parse_policy(policy)
  return lambda key, images, model_state: diffaugment.diff_augment(key, images, names)


def _is_top_level_call(context: nn.module.InterceptorContext, module_type) -> bool:
  # Applied modules have a Scope, not a Module, as parent; submodules of the same type stay untouched.
  return (context.method_name == "__call__" and type(context.module) is module_type
          and not isinstance(context.module.parent, nn.Module))


def _augmented_phase(phase: Phase, transform, d_type, ada_settings) -> Phase:
  measures = (phase.log_as or phase.name) == MEASURING_PHASE

  def loss(params, model_state, batch, key):
    augment_key = jax.random.fold_in(key, AUGMENT_STREAM)
    calls = itertools.count()

    def interceptor(next_fun, args, kwargs, context):
      if not _is_top_level_call(context, d_type):
        return next_fun(*args, **kwargs)
      images = transform(jax.random.fold_in(augment_key, next(calls)), args[0], model_state)
      return next_fun(images, *args[1:], **kwargs)

    with nn.intercept_methods(interceptor):
      value, (metrics, new_model_state) = phase.loss(params, model_state, batch, key)
    if measures and next(calls) == 0:
      raise ValueError(f"config.augment is on but phase {phase.name!r} never called the discriminator "
                       f"modules['d'] ({d_type.__name__}) at top level, so nothing was augmented.")
    if measures and ada_settings is not None:
      if "real_signs" not in metrics:
        raise ValueError(f"ADA needs phase {phase.name!r} to report metrics['real_signs'] = E[sign(D(real))]; "
                         f"build its metrics with gans.losses.logit_metrics.")
      ada_state = ada.update_p(model_state["augment"], jax.lax.stop_gradient(metrics["real_signs"]),
                               common.real_data(batch).shape[0], **ada_settings)
      new_model_state = {**new_model_state, "augment": ada_state}
      metrics = {**metrics, "augment_p": ada_state["p"]}
    return value, (metrics, new_model_state)

  return phase._replace(loss=loss)


def augment_variant(variant: GanVariant, config) -> GanVariant:
  """The variant with DiffAugment or ADA on every image its discriminator sees; unchanged when it is off."""
  augment_config = config.get("augment") or default_config()
  transform = make_transform(augment_config)
  if transform is None:
    return variant
  policy = augment_config.policy.strip()
  if len(common.data_shape(config.data)) != 3:
    raise ValueError(f"config.augment.policy={policy!r} augments images; data source "
                     f"{config.data.source!r} gives vectors. Set config.augment.policy=''.")
  if config.model.get("pack", 1) != 1:
    raise ValueError("config.augment with PacGAN packing (model.pack > 1) would augment packed channel "
                     "stacks; use pack = 1 or config.augment.policy=''.")
  if "d" not in variant.modules:
    raise ValueError(f"config.augment needs the variant's discriminator as modules['d']; it has "
                     f"{sorted(variant.modules)}.")
  if not any((phase.log_as or phase.name) == MEASURING_PHASE for phase in variant.phases):
    raise ValueError(f"config.augment needs a phase logged as {MEASURING_PHASE!r} (the D phase); "
                     f"this variant's phases: {[phase.name for phase in variant.phases]}.")
  ada_settings = None
  init = variant.init
  if policy == "ada":
    if augment_config.ada_interval < 1 or augment_config.ada_kimg <= 0 or augment_config.ada_p < 0:
      raise ValueError("config.augment needs ada_interval >= 1, ada_kimg > 0 and ada_p >= 0.")
    ada_settings = dict(target=augment_config.ada_target, interval=augment_config.ada_interval,
                        kimg=augment_config.ada_kimg)

    def init(key):
      params, model_state = variant.init(key)
      return params, {**model_state, "augment": ada.initial_ada_state(augment_config.ada_p)}

  d_type = type(variant.modules["d"])
  phases = tuple(_augmented_phase(phase, transform, d_type, ada_settings) for phase in variant.phases)
  return variant._replace(init=init, phases=phases)
