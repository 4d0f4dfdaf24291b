"""SpecGAN (Donahue, McAuley & Puckette 2019): a DCGAN-like GAN on normalised log-magnitude spectrograms.

The data stay audio [N, T, C]; D sees each real clip as SpecGAN's spectrogram (gans/audio.py: 16 ms Hann
window, hop of half a window, the Nyquist bin dropped: 128 frames x 128 bins for 16384 samples at 16 kHz),
each frequency bin normalised by the training set's mean and standard deviation, clipped to 3 standard
deviations and scaled to [-1, 1]. Those moments are computed once from the data (config.model.moments_clips
clips, cached in the data cache) and kept with the run: they are `model_state["spectrogram"]`, saved in every
checkpoint, so a run samples with the moments it trained with.

G: z (100-d, uniform in [-1, 1]) -> dense -> [frames / 32, bins / 32, 16d] -> ReLU -> five 5x5 stride-2
transposed convs (TensorFlow "same" padding; 16d -> 8d -> 4d -> 2d -> d -> 1), ReLU between, tanh.
D: five 5x5 stride-2 convs (d -> 16d), LeakyReLU 0.2, dense to one output; no batch norm. WGAN-GP as WaveGAN.
Samples are audio: G's spectrogram de-normalised and inverted with Griffin-Lim (16 iterations, in JAX).
"""
import hashlib
import logging
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gans import audio, data, layers
from gans.data.config import field
from gans.state import GanVariant
from gans.variants import common

KERNEL = 5
NUM_LAYERS = 5
GRIFFIN_LIM_ITERATIONS = 16
_init = nn.initializers.glorot_uniform()


class SpectrogramShape:
  """Window, hop, frames and bins of the spectrograms of one data config."""

  def __init__(self, data_config):
    self.window = audio.window_for(data_config.sample_rate)
    self.hop = self.window // 2
    self.length = data_config.clip_length
    self.frames = audio.num_frames(self.length, self.hop)
    self.bins = self.window // 2
    if self.frames % 2 ** NUM_LAYERS or self.bins % 2 ** NUM_LAYERS:
      raise ValueError(f"SpecGAN needs frames and bins that are multiples of {2 ** NUM_LAYERS}; clip_length "
                       f"{self.length} at {data_config.sample_rate} Hz gives {self.frames} frames of {self.bins} "
                       f"bins (the paper: 16384 samples at 16 kHz, 128 x 128).")


class Generator(nn.Module):
  frames: int  # output height (time)
  bins: int  # output width (frequency)
  d: int = 64  # model size: the last transposed conv's input width; 16d at the start

  @nn.compact
  def __call__(self, z, train: bool):
    del train  # no batch norm
    scale = 2 ** NUM_LAYERS
    h = nn.Dense(self.frames // scale * self.bins // scale * 16 * self.d, kernel_init=_init)(z)
    h = nn.relu(h.reshape(z.shape[0], self.frames // scale, self.bins // scale, 16 * self.d))
    for level in range(NUM_LAYERS):
      last = level == NUM_LAYERS - 1
      width = 1 if last else 16 * self.d // 2 ** (level + 1)
      h = layers.ConvTransposeSame(width, KERNEL, strides=2, kernel_init=_init)(h)
      h = jnp.tanh(h) if last else nn.relu(h)
    return h


class Discriminator(nn.Module):
  d: int = 64  # model size: the first conv's width; 16d at the end

  @nn.compact
  def __call__(self, x_NHWC, train: bool):
    del train
    h = x_NHWC
    for level in range(NUM_LAYERS):
      h = nn.leaky_relu(layers.ConvSame(self.d * 2 ** level, KERNEL, strides=2, kernel_init=_init)(h), 0.2)
    return nn.Dense(1, kernel_init=_init)(h.reshape(h.shape[0], -1)).reshape(-1)


def to_spectrogram(audio_NTC: jax.Array, moments: dict, shape: SpectrogramShape) -> jax.Array:
  """Audio [N, T, C] (first channel) -> SpecGAN's normalised spectrogram [N, frames, bins, 1] in [-1, 1]."""
  return audio.normalise(audio.log_magnitude(audio_NTC[..., 0], shape.window, shape.hop), moments)[..., None]


def to_audio(spectrogram_NFB1: jax.Array, moments: dict, shape: SpectrogramShape) -> jax.Array:
  """G's normalised spectrogram -> audio [N, T, 1] by Griffin-Lim."""
  return audio.spectrogram_to_audio(spectrogram_NFB1[..., 0], moments, shape.window, shape.hop, shape.length,
                                    GRIFFIN_LIM_ITERATIONS)[..., None]


def _moments_file(data_config, num_clips: int) -> str:
  names = ("source", "path", "name", "split", "sample_rate", "clip_length", "words", "num_clips", "synth_seed")
  key = "\n".join([f"specgan-moments-v1/{num_clips}"] + [f"{n}={field(data_config, n)!r}" for n in names])
  from gans.metrics import reference  # pylint: disable=import-outside-toplevel
  cache = field(data_config, "cache_dir") or reference.default_cache_dir()
  return os.path.join(cache, f"specgan_moments_{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz")


def data_moments(data_config, num_clips: int) -> dict:
  """Per-bin mean and std of the log-magnitude spectrograms of `num_clips` clips spread evenly over the source
  (0: mean 0, std 1, for tests without data); computed once and cached."""
  shape = SpectrogramShape(data_config)
  if num_clips == 0:
    return {"mean": np.zeros(shape.bins, np.float32), "std": np.ones(shape.bins, np.float32)}
  path = _moments_file(data_config, num_clips)
  if not os.path.exists(path):
    source = data.make_source(data_config)
    indices = np.linspace(0, len(source) - 1, min(num_clips, len(source))).round().astype(int)
    clips = [element["audio"] for element in (source[int(i)] for i in indices) if element is not None]
    logging.info("SpecGAN: spectrogram moments of %d clips -> %s", len(clips), path)
    log_magnitudes = np.concatenate([np.asarray(audio.log_magnitude(jnp.asarray(np.stack(clips[i:i + 256]))[..., 0],
                                                                    shape.window, shape.hop))
                                     for i in range(0, len(clips), 256)])
    moments = audio.spectrogram_moments(log_magnitudes)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "wb") as file:
      np.savez(file, **moments)
    os.replace(temporary, path)
  with np.load(path) as archive:
    return {"mean": archive["mean"], "std": archive["std"]}


def make(config) -> GanVariant:
  model = config.model
  shape = SpectrogramShape(config.data)
  moments = data_moments(config.data, model.moments_clips)
  generator = Generator(frames=shape.frames, bins=shape.bins, d=model.g_channels)
  discriminator = Discriminator(d=model.d_channels)
  phases, prepare = common.standard_training(generator, discriminator, model, config.train.get("n_critic", 1))

  def on_spectrograms(fn):
    def on_spectrogram_batch(params, model_state, batch, *args):
      spectrograms = to_spectrogram(batch["audio"], model_state["spectrogram"], shape)
      return fn(params, model_state, {**batch, "audio": spectrograms}, *args)
    return on_spectrogram_batch

  # The clips become spectrograms once per batch: in `prepare` where there is one (its batch is the phases'),
  # else in every phase.
  if prepare is None:
    phases = tuple(phase._replace(loss=on_spectrograms(phase.loss)) for phase in phases)
  else:
    prepare = on_spectrograms(prepare)

  init_networks = common.init_generator_discriminator(generator, discriminator, model.z_dim,
                                                      (shape.frames, shape.bins, 1))

  def init(key):
    params, model_state = init_networks(key)
    return params, {**model_state, "spectrogram": {k: jnp.asarray(v) for k, v in moments.items()}}

  sample_spectrograms = common.make_sampler(generator, model.z_dim, common.latent_sampler(model))

  def sample(params, model_state, key, n):
    return to_audio(sample_spectrograms(params, model_state, key, n), model_state["spectrogram"], shape)

  return GanVariant(
      init=init,
      phases=phases,
      prepare=prepare,
      sample=sample,
      modules={"g": generator, "d": discriminator},
      hyperparameters=common.standard_hyperparameters(model),  # WGAN-GP's lambda, vectorisable
  )
