"""Config pieces shared by the StyleGAN (v1) and StyleGAN2 experiments (not an experiment itself)."""
import ml_collections

from experiments import common
from gans.variants.stylegan2 import training as stylegan2_training

# Karras et al. 2020, config F / NVlabs' official training: Adam(lr 0.002, betas (0, 0.99), eps 1e-8)
# for both networks, G regularised every 4 steps (path length), D every 16 (R1).
STYLEGAN2_LR, STYLEGAN2_B1, STYLEGAN2_B2 = 0.002, 0.0, 0.99


def stylegan2_optim(learning_rate=STYLEGAN2_LR, b1=STYLEGAN2_B1, b2=STYLEGAN2_B2, g_interval=4, d_interval=16):
  """config.optim with the official lazy-regularisation correction already applied.

  A group regularised every k steps takes k + 1 optimizer steps per k minibatches, so the
  official code multiplies its lr by c = k / (k + 1) and raises its betas to the power c:
  G (k = 4): lr 0.0016, b2 0.99 ** 0.8 = 0.99199; D (k = 16): lr 0.0018824, b2 0.99 ** (16/17) = 0.99058.
  """
  def group(interval):
    settings = stylegan2_training.lazy_optimizer_settings(learning_rate, b1, b2, interval)
    return common.adam(settings["learning_rate"], b1=settings["b1"], b2=settings["b2"])
  return ml_collections.ConfigDict({"g": group(g_interval), "d": group(d_interval)})


def stylegan2_config(resolution: int, channels: int, batch_size: int, ema_kimg: float,
                     **model) -> ml_collections.ConfigDict:
  """StyleGAN2 config F at `resolution`; `model` overrides fields of MODEL_DEFAULTS.

  EMA: the official G_ema has a half-life of ema_kimg thousand images, i.e. decay
  0.5 ** (batch_size / (1000 * ema_kimg)) per step, computed here for this batch size
  (config F: 10 kimg at batch 32 -> 0.997784). The trainer's decay is one number, so
  overriding --config.train.batch_size does not change it: override --config.ema.decay
  with ema_decay_for(new batch, ema_kimg) as well. Config F has no EMA ramp-up (the
  ramp-up belongs to StyleGAN2-ADA's 'auto' config).
  """
  config = common.base_config()
  config.variant = "stylegan2"
  config.model = ml_collections.ConfigDict(stylegan2_training.model_settings(model))
  config.data.resolution = resolution
  config.data.channels = channels
  config.train.batch_size = batch_size
  config.optim = stylegan2_optim(g_interval=config.model.pl_interval, d_interval=config.model.r1_interval)
  config.ema = ml_collections.ConfigDict({"enabled": True,
                                          "decay": stylegan2_training.ema_decay_for(batch_size, ema_kimg)})
  return config


def stylegan_config(resolution: int, channels: int, batch_size: int, learning_rate: float, ema_kimg: float,
                    stable_kimg: float, fade_kimg: float, batch_by_resolution: dict | None = None,
                    learning_rate_by_resolution: dict | None = None, **model) -> ml_collections.ConfigDict:
  """StyleGAN (v1) at `resolution`; `model` overrides fields of gans.variants.stylegan.MODEL_DEFAULTS.

  The growing schedule is given in thousands of images, as the paper's (600k stable, 600k fade),
  and stored in steps of this batch size (config.model.stable_steps / fade_steps). The official
  per-resolution minibatch and learning rate ({resolution: value}; others: batch_size and
  learning_rate) become the stages' batch and lr multiples. Adam betas (0, 0.99), eps 1e-8 as the
  official code; the EMA half-life as for StyleGAN2 (stylegan2_config), in images whatever the batch.
  """
  def multiples(by_resolution, base):
    return tuple((res, value / base) for res, value in sorted((by_resolution or {}).items()) if res <= resolution)

  batch_multiples = multiples(batch_by_resolution, batch_size)
  if any(m != int(m) or m < 1 for _, m in batch_multiples):
    raise ValueError(f"per-resolution batches {batch_by_resolution} must be multiples of batch_size {batch_size}")
  model = dict(model, batch_multiples=tuple((res, int(m)) for res, m in batch_multiples),
               lr_multiples=multiples(learning_rate_by_resolution, learning_rate))
  from gans.variants import stylegan  # the variant's own defaults fill what `model` leaves out

  config = common.base_config()
  config.variant = "stylegan"
  steps_of = lambda kimg: int(round(kimg * 1000 / batch_size))
  model = dict(model, stable_steps=steps_of(stable_kimg), fade_steps=steps_of(fade_kimg))
  config.model = ml_collections.ConfigDict(stylegan.model_settings(model))
  config.data.resolution = resolution
  config.data.channels = channels
  config.train.batch_size = batch_size
  config.optim = ml_collections.ConfigDict({"g": common.adam(learning_rate, b1=0.0, b2=0.99),
                                            "d": common.adam(learning_rate, b1=0.0, b2=0.99)})
  config.ema = ml_collections.ConfigDict({"enabled": True,
                                          "decay": stylegan2_training.ema_decay_for(batch_size, ema_kimg)})
  return config
