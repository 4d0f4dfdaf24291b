"""StyleGAN (Karras et al. 2019) with progressive growing, as a GanVariant.

Generator: the mapping network (8 equalised-lr FC layers, lr multiplier 0.01; StyleGAN2's
MappingNetwork is the same network), a learned constant 4x4 input, and per resolution an
upsampling conv and a conv, each followed by per-pixel noise with learned per-channel
scales, bias, leaky ReLU, instance normalisation and AdaIN (a per-channel scale and shift
from w). Discriminator: progressive GAN's (fromRGB, conv, blurred downsampling conv per
resolution, minibatch std, conv, two FC layers). Every layer has an equalised learning rate.
Losses: non-saturating logistic G, logistic D with R1 (gamma 10 on reals, every step, as the
official "simplegp" loss). Style mixing regularisation and the truncation trick as in the paper.

Progressive growing. Parameters of every resolution exist from init. Training is a sequence
of stages, one per resolution from `start_resolution` to the data resolution: stage 0 trains
`stable_steps`; every later stage first fades the new resolution in over `fade_steps`
(alpha 0 -> 1), then trains it `stable_steps`; the last stage lasts to the end. Both counts are
steps at the base batch (config.train.batch_size): a stage whose batch is m times larger
(`batch_multiples`, the official per-resolution minibatch) takes 1/m of the steps, so every
stage sees the same number of images, and `lr_multiples` scale its learning rate (the
official per-resolution learning rates; both through Phase.batch_multiple/lr_multiple). Each stage has
its own phases (Phase start/stop), so the trainer compiles one step per stage; alpha is
computed inside the loss from the step counter, a traced value, so the fade never recompiles.
The trainer does not pass its step to losses, so the variant counts generator steps itself in
model_state["step"] (advanced by g_main; equal to the trainer's step).

At stage resolution r the generator outputs r x r images; while fading, the output is
lerp(nearest-upsampled toRGB of the r/2 features, toRGB of the r features, alpha) and the
discriminator blends fromRGB of the r image with fromRGB of its 2x2-average downsample after
its first block. Real images are box-downsampled from the data resolution to r inside the loss
and, while fading, blended with their own r/2 version the same way (progressive GAN's reals).
Samples are always at the data resolution: the current stage's output upsampled (nearest).

model_state: {"g_buffers": noise_const per layer, "w_avg": truncation centre (EMA of w),
"step": generator steps taken}. Buffers are returned, never mutated.
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gans import layers, losses
from gans.state import GanVariant, Phase
from gans.variants.stylegan2.layers import (
  EqualizedConv2d, EqualizedDense, bias_act, fir_filter_2d, minibatch_std, upfirdn2d)
from gans.variants.stylegan2.networks import MappingNetwork, block_resolutions, channels_from_base, truncate
from gans.variants.stylegan2.training import mix_styles, style_pictures, update_w_avg

BLUR_TAPS = (1, 2, 1)  # StyleGAN's blur after upsampling and before downsampling (Karras et al. 2019, App. C)
W_AVG_BETA = 0.995  # decay of the official StyleGAN's dlatent_avg
STYLE_MIXING_PROB = 0.9  # Karras et al. 2019, Sec. 3.1
TRUNCATION_CUTOFF = 8  # the official StyleGAN truncates the first 8 ws only (4x4 to 32x32)

# config.model fields read by make(); a field the experiment leaves out takes this value (the paper's).
MODEL_DEFAULTS = dict(
  z_dim=512, w_dim=512, channel_base=16384, channel_max=512, mapping_layers=8, mbstd_group_size=4,
  r1_gamma=10.0, style_mixing_prob=STYLE_MIXING_PROB,
  start_resolution=8, stable_steps=18_750, fade_steps=18_750,  # 600 kimg each at batch 32
  batch_multiples=(), lr_multiples=())  # ((resolution, multiple), ...); resolutions not listed: 1


def model_settings(model_config) -> dict:
  unknown = sorted(set(model_config) - set(MODEL_DEFAULTS))
  if unknown:
    raise ValueError(f"unknown StyleGAN config.model fields {unknown}; valid: {sorted(MODEL_DEFAULTS)}")
  return {name: model_config.get(name, default) for name, default in MODEL_DEFAULTS.items()}


# ----------------------------------------------------------------------------------------
# Resampling used by growing (nearest up, box down), as progressive GAN's upscale2d/downscale2d.


def blur(x_NHWC):
  return upfirdn2d(x_NHWC, fir_filter_2d(BLUR_TAPS), padding=(1, 1, 1, 1))


def instance_norm(x_NHWC, eps=1e-8):
  x = x_NHWC - jnp.mean(x_NHWC, axis=(1, 2), keepdims=True)
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=(1, 2), keepdims=True) + eps)


# ----------------------------------------------------------------------------------------
# Generator.


class StyleEpilogue(nn.Module):
  """After each conv: noise * per-channel scale, bias, leaky ReLU, instance norm, AdaIN from w."""
  features: int  # channels of x
  resolution: int  # spatial size of x; the size of noise_const

  @nn.compact
  def __call__(self, x_NHWC, w, noise_mode="random"):
    noise_const = self.variable(
      "buffers", "noise_const", lambda: jax.random.normal(self.make_rng("params"), (self.resolution, self.resolution)))
    # Per-channel scales (StyleGAN2 has one per layer); zero at init, so noise is learned in.
    noise_strength = self.param("noise_strength", nn.initializers.zeros, (self.features,))
    if noise_mode == "random":
      noise = jax.random.normal(self.make_rng("noise"), x_NHWC.shape[:3] + (1,), x_NHWC.dtype)
    elif noise_mode == "const":
      noise = noise_const.value[None, :, :, None]
    else:
      noise = jnp.zeros((), x_NHWC.dtype)
    x = x_NHWC + noise * noise_strength
    x = bias_act(x, self.param("bias", nn.initializers.zeros, (self.features,)), "lrelu")
    x = instance_norm(x)
    # AdaIN: the scale is 1 + style so that an untrained affine leaves x as it is.
    style = EqualizedDense(2 * self.features, name="style")(w)
    return x * (style[:, None, None, :self.features] + 1) + style[:, None, None, self.features:]


class SynthesisNetwork(nn.Module):
  """ws [N, 2 * num_blocks, w_dim] -> image at a stage resolution, faded in with alpha."""
  img_resolution: int  # the final resolution, a power of two >= 4
  img_channels: int  # number of output image channels
  channels: tuple  # feature channels per resolution 4, 8, ..., img_resolution

  @nn.compact
  def __call__(self, ws, resolution, alpha=None, noise_mode="random", all_outputs=False):
    """`resolution`: the stage's output size (static); alpha (traced) fades in its last block:
    0 = the previous resolution's output upsampled, 1 = this resolution's; None = no fade.

    all_outputs=True also applies every resolution's toRGB (for init: all parameters exist).
    """
    resolutions = block_resolutions(self.img_resolution)
    if resolution not in resolutions:
      raise ValueError(f"resolution must be one of {resolutions}, got {resolution}")
    if all_outputs and resolution != self.img_resolution:
      raise ValueError("all_outputs needs resolution == img_resolution")
    x = img = previous_img = None
    for index, res in enumerate(resolutions):
      if res > resolution:
        break
      features = self.channels[index]
      w0, w1 = ws[:, 2 * index], ws[:, 2 * index + 1]
      if index == 0:
        const = self.param("const", nn.initializers.ones, (4, 4, features))
        x = jnp.broadcast_to(const[None], (ws.shape[0],) + const.shape)
      else:
        # Nearest upsampling, conv, then the [1 2 1] blur against its checkerboard.
        x = layers.upsample_nearest(x)
        x = EqualizedConv2d(features, kernel_size=3, use_bias=False, name=f"b{res}_conv0")(x)
        x = blur(x)
      x = StyleEpilogue(features, res, name=f"b{res}_epilogue0")(x, w0, noise_mode)
      x = EqualizedConv2d(features, kernel_size=3, use_bias=False, name=f"b{res}_conv1")(x)
      x = StyleEpilogue(features, res, name=f"b{res}_epilogue1")(x, w1, noise_mode)
      to_rgb = EqualizedConv2d(self.img_channels, kernel_size=1, name=f"b{res}_torgb")
      if res == resolution:
        img = to_rgb(x)
      elif (res == resolution // 2 and alpha is not None) or all_outputs:
        previous_img = to_rgb(x)
    if alpha is not None and resolution > 4:
      previous_img = layers.upsample_nearest(previous_img)
      img = previous_img + (img - previous_img) * alpha
    return img


class Generator(nn.Module):
  """StyleGAN's generator: map (z -> ws), synthesize (ws -> image at a stage resolution)."""
  z_dim: int  # input latent size
  c_dim: int  # conditioning label size; 0 = unconditional
  w_dim: int  # intermediate latent size
  img_resolution: int  # final output resolution
  img_channels: int  # number of output image channels
  channels: tuple  # feature channels per resolution 4, 8, ..., img_resolution
  mapping_layers: int = 8  # fully connected layers of the mapping network
  mapping_lr_multiplier: float = 0.01  # learning-rate multiplier of the mapping MLP

  @property
  def num_ws(self) -> int:
    return 2 * len(block_resolutions(self.img_resolution))

  def setup(self):
    self.mapping = MappingNetwork(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim,
                                  num_layers=self.mapping_layers, lr_multiplier=self.mapping_lr_multiplier)
    self.synthesis = SynthesisNetwork(img_resolution=self.img_resolution, img_channels=self.img_channels,
                                      channels=self.channels)

  def map(self, z, c=None, w_avg=None, truncation_psi=1.0, truncation_cutoff=None):
    w = self.mapping(z, c)
    ws = jnp.broadcast_to(w[:, None, :], (w.shape[0], self.num_ws, w.shape[1]))
    return truncate(ws, w_avg, truncation_psi, truncation_cutoff)

  def synthesize(self, ws, resolution=None, alpha=None, noise_mode="random", all_outputs=False):
    resolution = self.img_resolution if resolution is None else resolution
    return self.synthesis(ws, resolution, alpha, noise_mode, all_outputs)

  def __call__(self, z, c=None, resolution=None, alpha=None, noise_mode="random", all_outputs=False):
    return self.synthesize(self.map(z, c), resolution, alpha, noise_mode, all_outputs)


# ----------------------------------------------------------------------------------------
# Discriminator.


class Discriminator(nn.Module):
  """Image at a stage resolution -> logits [N, 1]; alpha fades in the stage's first block."""
  img_resolution: int  # final input resolution, a power of two >= 8
  img_channels: int  # number of input image channels
  channels: tuple  # feature channels per resolution 4, 8, ..., img_resolution
  mbstd_group_size: int = 4  # samples per minibatch-std group

  def _from_rgb(self, res, img_NHWC):
    channels_at = dict(zip(block_resolutions(self.img_resolution), self.channels))
    return EqualizedConv2d(channels_at[res], kernel_size=1, activation="lrelu", name=f"b{res}_fromrgb")(img_NHWC)

  @nn.compact
  def __call__(self, img_NHWC, alpha=None, all_inputs=False):
    """The stage resolution is the image's; alpha (traced) fades in its first block: 0 = the image
    downsampled through the previous stage's fromRGB, 1 = this stage's block; None = no fade.
    all_inputs=True also applies every fromRGB (for init: all parameters exist)."""
    resolution = img_NHWC.shape[1]
    resolutions = block_resolutions(self.img_resolution)
    if resolution not in resolutions[1:]:
      raise ValueError(f"image resolution must be one of {resolutions[1:]}, got {img_NHWC.shape}")
    if all_inputs and resolution != self.img_resolution:
      raise ValueError("all_inputs needs the image at img_resolution")
    channels_at = dict(zip(resolutions, self.channels))
    if all_inputs:
      for res in resolutions[1:-1]:
        self._from_rgb(res, layers.downsample_box(img_NHWC, resolution // res))
    x = self._from_rgb(resolution, img_NHWC)
    for res in reversed(resolutions[1:]):
      if res > resolution:
        continue
      x = EqualizedConv2d(channels_at[res], kernel_size=3, activation="lrelu", name=f"b{res}_conv0")(x)
      # Blur, conv, then 2x2 average (progressive GAN's conv_downscale2d), then bias and activation.
      x = EqualizedConv2d(channels_at[res // 2], kernel_size=3, use_bias=False, name=f"b{res}_conv1")(blur(x))
      bias = self.param(f"b{res}_conv1_bias", nn.initializers.zeros, (channels_at[res // 2],))
      x = bias_act(layers.downsample_box(x), bias, "lrelu")
      if res == resolution and alpha is not None and resolution > 8:
        skip = self._from_rgb(res // 2, layers.downsample_box(img_NHWC))
        x = skip + (x - skip) * alpha
    x = minibatch_std(x, self.mbstd_group_size, 1)
    x = EqualizedConv2d(channels_at[4], kernel_size=3, activation="lrelu", name="b4_conv")(x)
    x = EqualizedDense(channels_at[4], activation="lrelu", name="b4_fc")(x.reshape(x.shape[0], -1))
    return EqualizedDense(1, name="b4_out")(x)


# ----------------------------------------------------------------------------------------
# Progressive growing schedule and the variant.


class Stage:
  """One resolution of progressive growing: steps [start, stop), fading in over the first `fade` steps."""

  def __init__(self, resolution: int, start: int, stop: Optional[int], fade: int, batch_multiple: int = 1,
               lr_multiple: float = 1.0):
    self.resolution = resolution  # output size of G and input size of D in this stage
    self.start = start  # first generator step of the stage
    self.stop = stop  # first step of the next stage; None for the last stage
    self.fade = fade  # steps over which alpha goes 0 -> 1 (0: no fade, the first stage)
    self.batch_multiple = batch_multiple  # the stage's batch in base batches
    self.lr_multiple = lr_multiple  # the stage's learning rate over the configured one

  def alpha(self, step):
    """The fade-in weight of this resolution at `step` (traced or not); None when the stage has no fade."""
    if not self.fade:
      return None
    return jnp.clip((jnp.asarray(step, jnp.float32) - self.start) / self.fade, 0.0, 1.0)

  def __repr__(self):
    return (f"Stage({self.resolution}, start={self.start}, stop={self.stop}, fade={self.fade}, "
            f"batch_multiple={self.batch_multiple}, lr_multiple={self.lr_multiple})")


def growing_schedule(start_resolution: int, final_resolution: int, stable_steps: int, fade_steps: int,
                     batch_multiples=(), lr_multiples=()):
  """The stages of progressive growing: start_resolution trains stable_steps; each following
  resolution fades in over fade_steps, then trains stable_steps; the last stage lasts to the end.

  Steps are counted at the base batch; a resolution listed in batch_multiples ((resolution, m), ...)
  trains on m base batches per step for 1/m of the steps (rounded up), the same number of images.
  """
  resolutions = [r for r in block_resolutions(final_resolution) if r >= start_resolution]
  if start_resolution < 8 or not resolutions or resolutions[0] != start_resolution:
    raise ValueError(f"start_resolution must be a power of two in [8, {final_resolution}], got {start_resolution}")
  batch_of, lr_of = dict(batch_multiples), dict(lr_multiples)
  stages, start = [], 0
  for index, resolution in enumerate(resolutions):
    multiple = int(batch_of.get(resolution, 1))
    fade = -(-fade_steps // multiple) if index else 0
    stop = None if index == len(resolutions) - 1 else start + fade + -(-stable_steps // multiple)
    stages.append(Stage(resolution, start, stop, fade, multiple, float(lr_of.get(resolution, 1.0))))
    start = stop
  return stages


def real_images_at(stage: Stage, images_NHWC, alpha):
  """Reals as D sees them in `stage`: box-downsampled to its resolution and, while fading,
  blended with their own half-resolution version (upsampled) by alpha."""
  images = layers.downsample_box(images_NHWC, images_NHWC.shape[1] // stage.resolution)
  if alpha is None:
    return images
  coarse = layers.upsample_nearest(layers.downsample_box(images))
  return coarse + (images - coarse) * alpha


def make(config):
  """StyleGAN with progressive growing: phases d_main@R and g_main@R per stage resolution R
  (logged as d_main and g_main). Reads config.model (MODEL_DEFAULTS) and config.data."""
  model = model_settings(config.model)
  resolution, img_channels = config.data.resolution, config.data.channels
  z_dim, w_dim = model["z_dim"], model["w_dim"]
  channels = channels_from_base(resolution, model["channel_base"], model["channel_max"])
  generator = Generator(z_dim=z_dim, c_dim=0, w_dim=w_dim, img_resolution=resolution, img_channels=img_channels,
                        channels=channels, mapping_layers=model["mapping_layers"])
  discriminator = Discriminator(img_resolution=resolution, img_channels=img_channels, channels=channels,
                                mbstd_group_size=model["mbstd_group_size"])
  stages = stages_of(config)
  r1_gamma, style_mixing_prob = model["r1_gamma"], model["style_mixing_prob"]

  def init(key):
    g_key, d_key = jax.random.split(key)
    g_variables = generator.init({"params": g_key}, jnp.zeros((1, z_dim)), None, resolution, None, "const", True)
    d_variables = discriminator.init({"params": d_key}, jnp.zeros((1, resolution, resolution, img_channels)),
                                     None, True)
    params = {"g": g_variables["params"], "d": d_variables["params"]}
    model_state = {"g_buffers": g_variables["buffers"], "w_avg": jnp.zeros((w_dim,), jnp.float32),
                   "step": jnp.zeros((), jnp.int32)}
    return params, model_state

  def fakes(params, model_state, key, n, stage, alpha):
    z_key, mix_key, noise_key = jax.random.split(key, 3)
    z = jax.random.normal(z_key, (2 * n, z_dim), jnp.float32)  # one draw: the latents and their mixing partners
    ws_both = generator.apply({"params": params["g"]}, z, method=Generator.map)
    ws = mix_styles(mix_key, ws_both[:n], ws_both[n:], style_mixing_prob) if style_mixing_prob else ws_both[:n]
    img = generator.apply({"params": params["g"], "buffers": model_state["g_buffers"]}, ws, stage.resolution,
                          alpha, "random", method=Generator.synthesize, rngs={"noise": noise_key})
    return img, ws

  def d_logits(params, img_NHWC, alpha):
    return discriminator.apply({"params": params["d"]}, img_NHWC, alpha)

  def stage_metrics(stage, alpha):
    return {"resolution": jnp.float32(stage.resolution), "alpha": jnp.float32(1.0) if alpha is None else alpha}

  def d_main_for(stage):
    def d_main(params, model_state, batch, key):
      alpha = stage.alpha(model_state["step"])
      real = real_images_at(stage, batch["image"], alpha)
      fake, ws = fakes(params, model_state, key, real.shape[0], stage, alpha)
      real_logits, fake_logits = d_logits(params, real, alpha), d_logits(params, jax.lax.stop_gradient(fake), alpha)
      loss = losses.minimax_d_loss(real_logits, fake_logits)
      penalty = losses.r1_penalty(lambda x: d_logits(params, x, alpha), real)  # R1 every step, as the paper's D
      loss += penalty * (r1_gamma / 2)
      metrics = {**losses.logit_metrics(real_logits, fake_logits), "r1_penalty": penalty, **stage_metrics(stage, alpha)}
      return loss, (metrics, dict(model_state, w_avg=update_w_avg(model_state["w_avg"], ws[:, 0], W_AVG_BETA)))
    return d_main

  def g_main_for(stage):
    def g_main(params, model_state, batch, key):
      alpha = stage.alpha(model_state["step"])
      fake, _ = fakes(params, model_state, key, batch["image"].shape[0], stage, alpha)
      fake_logits = d_logits(params, fake, alpha)
      metrics = {"fake_logits": jnp.mean(fake_logits), **stage_metrics(stage, alpha)}
      # The generator phase runs last in every step: it advances the variant's step counter.
      return losses.non_saturating_g_loss(fake_logits), (metrics, dict(model_state, step=model_state["step"] + 1))
    return g_main

  def map_ws(params, model_state, z, truncation_psi=1.0):
    return generator.apply({"params": params["g"]}, z, None, model_state["w_avg"], truncation_psi,
                           TRUNCATION_CUTOFF, method=Generator.map)

  def synthesize_current(params, model_state, ws, noise_mode="const", key=None):
    """Images of the stage model_state["step"] is in, upsampled to the data resolution."""
    step = model_state["step"]
    variables = {"params": params["g"], "buffers": model_state["g_buffers"]}
    rngs = {"noise": key} if key is not None else {}

    def branch(stage):
      def run(ws):
        img = generator.apply(variables, ws, stage.resolution, stage.alpha(step), noise_mode,
                              method=Generator.synthesize, rngs=rngs)
        return layers.upsample_nearest(img, resolution // stage.resolution)
      return run

    index = sum(jnp.asarray(step >= stage.start, jnp.int32) for stage in stages[1:])
    return jax.lax.switch(index, [branch(stage) for stage in stages], ws)

  def sample(params, model_state, key, n, truncation_psi=1.0):
    z = jax.random.normal(key, (n, z_dim), jnp.float32)
    return synthesize_current(params, model_state, map_ws(params, model_state, z, truncation_psi))

  def stage_fields(stage):  # the Phase fields a stage sets
    return dict(start=stage.start, stop=stage.stop, batch_multiple=stage.batch_multiple,
                lr_multiple=stage.lr_multiple)

  phases = []
  for stage in stages:
    phases.append(Phase(f"d_main@{stage.resolution}", d_main_for(stage), updates=("d",), log_as="d_main",
                        **stage_fields(stage)))
  for stage in stages:
    phases.append(Phase(f"g_main@{stage.resolution}", g_main_for(stage), updates=("g",), log_as="g_main",
                        **stage_fields(stage)))
  return GanVariant(init=init, phases=tuple(phases), sample=sample, modules={"g": generator, "d": discriminator},
                    conditioning=("truncation_psi",),
                    pictures=style_pictures(z_dim, map_ws, lambda params, state, ws: synthesize_current(params, state, ws)))


def stages_of(config):
  """The growing schedule a config trains with (what make(config) builds its phases from)."""
  model = model_settings(config.model)
  return growing_schedule(model["start_resolution"], config.data.resolution, model["stable_steps"],
                          model["fade_steps"], model["batch_multiples"], model["lr_multiples"])


def steps_for_images(config, images: int) -> int:
  """Generator steps in which the growing schedule of `config` trains on `images` images."""
  batch, steps = config.train.batch_size, 0
  for stage in stages_of(config):
    stage_steps = -(-images // (batch * stage.batch_multiple))
    if stage.stop is None or stage_steps <= stage.stop - stage.start:
      return steps + stage_steps
    steps += stage.stop - stage.start
    images -= (stage.stop - stage.start) * batch * stage.batch_multiple
  return steps
