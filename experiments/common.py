"""Shared ConfigDict pieces. Every experiment starts from `base_config()` and changes what it needs.

The config is locked after an experiment builds it, so a misspelt override
(`--config.train.batch_szie=...`) fails instead of silently adding a field.
"""
import ml_collections

from gans import augment, data
from gans.metrics import eval_config


# Where Debian's dataset-fashion-mnist package installs the four IDX files (`dpkg -L dataset-fashion-mnist`).
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def use_fashion_mnist(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Fashion-MNIST from IDX files; --config.data.path points at any folder holding the four files."""
  config.data.source = "idx"
  config.data.path = FASHION_MNIST_DIR
  return config


def use_tfds_mnist(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """MNIST through TFDS: prepared once beforehand (README, Experiments), then --config.data.path=DIR."""
  config.data.source = "tfds"
  config.data.name = "mnist"
  return config


def adam(learning_rate: float, b1: float = 0.5, b2: float = 0.999) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({"name": "adam", "learning_rate": learning_rate, "b1": b1, "b2": b2, "eps": 1e-8})


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # the run's seed: initialisation, latents, data order
  config.variant = ""  # key of gans.variants.VARIANTS
  config.model = ml_collections.ConfigDict()  # the variant's own settings
  config.data = data.default_config()  # fields documented in gans/data/config.py
  config.train = ml_collections.ConfigDict({
      "batch_size": 64,  # the global batch, split over all devices and hosts
      "steps": 1000,  # generator steps
      "n_critic": 1,  # discriminator steps per generator step, each on a fresh batch
      "log_every": 100,
      "sample_every": 500,  # 0 = only at the end
      "checkpoint_every": 1000,
      "eval_every": 0,  # 0 = only at the end
      "max_checkpoints": 3,
      "num_grid_samples": 64,
      # A NaN or infinite loss or parameter: "stop" ends the run with an error naming the step and phase,
      # keeping the last good checkpoint; "skip" drops that update and trains on (metrics count the skips).
      "nan_policy": "stop",
  })
  config.optim = ml_collections.ConfigDict({"g": adam(2e-4), "d": adam(2e-4)})  # DCGAN's Adam(2e-4, b1=0.5)
  config.ema = ml_collections.ConfigDict({"enabled": False, "decay": 0.999})  # EMA of G for sampling
  config.eval = eval_config.eval_config()  # fields documented in gans/metrics/eval_config.py
  config.augment = augment.default_config()  # DiffAugment / ADA on what D sees; fields in gans/augment/__init__.py
  return config


def mixture_gan_config(mixture: str, pack: int) -> ml_collections.ConfigDict:
  """The 2D mixture experiments of the PacGAN paper (Lin et al. 2018, sec. 5.1 and its released configs).

  G: 2D N(0, I) noise, four hidden layers of 400 ReLU units with batch norm. D: three hidden layers of
  200 linear-maxout units with 5 pieces, no batch norm. Weights N(0, 0.02^2). Adam(1e-4, b1=0.8).
  The paper's batch is 100 discriminator inputs, i.e. 100 * pack samples, over 100,000 training points.
  """
  config = base_config()
  config.variant = "gan"
  config.model = ml_collections.ConfigDict({
      "z_dim": 2, "g_hidden": (400, 400, 400, 400), "g_batch_norm": True,
      "d_hidden": (200, 200, 200), "d_maxout_pieces": 5,
      "loss": "non_saturating", "pack": pack,
      "gp_weight": 0.0, "r1_gamma": 0.0,  # D regularisers, off: WGAN-GP's lambda, R1's gamma
      # Computation dtype, "float32" or "bfloat16"; parameters, optimizer state, EMA and losses stay float32.
      "dtype": "float32",
  })
  config.data.source = mixture
  config.data.size = 100_000  # training points, as in the paper
  config.train.batch_size = 100 * pack
  config.train.steps = 400_000  # the paper's 400 epochs of 1,000 batches
  config.train.log_every = 1000
  config.train.sample_every = 10_000
  config.train.checkpoint_every = 10_000
  config.train.eval_every = 10_000
  config.train.num_grid_samples = 2500
  config.optim = ml_collections.ConfigDict({"g": adam(1e-4, b1=0.8), "d": adam(1e-4, b1=0.8)})
  config.eval.metrics = ("modes",)
  config.eval.num_samples = 2500
  return config


def dcgan_config(resolution: int, channels: int, base_channels: int = 64) -> ml_collections.ConfigDict:
  """DCGAN (Radford et al. 2016): Adam(2e-4, b1=0.5), batch 128, z ~ N(0, I) of 100 dims, minimax D loss and
  the non-saturating G loss."""
  config = base_config()
  config.variant = "dcgan"
  config.model = ml_collections.ConfigDict({
      "z_dim": 100, "g_channels": base_channels, "d_channels": base_channels,
      "loss": "non_saturating", "pack": 1,
      "gp_weight": 0.0, "r1_gamma": 0.0,  # D regularisers, off: WGAN-GP's lambda, R1's gamma
      # Computation dtype, "float32" or "bfloat16"; parameters, optimizer state, EMA and losses stay float32.
      "dtype": "float32",
  })
  config.data.resolution = resolution
  config.data.channels = channels
  config.train.batch_size = 128
  return config


def audio_gan_config(variant: str, d: int, sample_rate: int = 16_000,
                     clip_length: int = 16_384) -> ml_collections.ConfigDict:
  """WaveGAN / SpecGAN (Donahue et al. 2019) on the offline spoken digits: z ~ U[-1, 1]^100, WGAN-GP (lambda 10),
  5 D updates per G update, Adam(1e-4, betas (0.5, 0.9)), batch 64, no batch norm. d = 64 and 16384 samples at
  16 kHz in the paper; the sc09 experiments read Speech Commands' ten digit words instead."""
  config = base_config()
  config.variant = variant
  config.model = ml_collections.ConfigDict({
      "z_dim": 100, "latent": "uniform", "g_channels": d, "d_channels": d,
      "loss": "wasserstein", "gp_weight": 10.0,
  })
  if variant == "wavegan":
    config.model.phase_shuffle = 2  # n: D's activations shifted by -n..n samples; 0 = off (the paper's ablation)
    config.model.post_filter = False  # the appendix's learned 512-tap post-processing filter
  else:
    config.model.moments_clips = 4000  # clips the spectrogram moments are computed from (all of the digits)
  config.data.source = "spoken_digits"
  config.data.sample_rate = sample_rate
  config.data.clip_length = clip_length
  config.data.channels = 1
  config.train.batch_size = 64
  config.train.n_critic = 5
  config.train.num_grid_samples = 16  # the spectrogram picture's clips; the first 10 are also WAV files
  config.optim = ml_collections.ConfigDict({"g": adam(1e-4, b1=0.5, b2=0.9), "d": adam(1e-4, b1=0.5, b2=0.9)})
  config.eval = eval_config.eval_config(("audio_inception_score",), num_samples=1000)
  return config


def use_captioned_shapes(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The offline text-to-image runs' data and schedule: 20,000 generated captioned-shapes pictures (10 captions
  each: 200,000 pairs), the char-CNN-RNN trained first for 1000 steps, logs every 100 steps, samples and
  checkpoints every 500, and every 1000 whether the pictures say what the captions say (caption_accuracy and
  caption_classifier_fid of 2000 samples, gans/metrics/caption_attributes.py; its classifier trains once on the
  first evaluation, then is cached)."""
  config.data.source = "captioned_shapes"
  config.data.size = 20_000
  config.model.pretrain_steps = 1000
  config.train.log_every = 100
  config.train.sample_every = 500
  config.train.checkpoint_every = 500
  config.eval.metrics = ("caption_accuracy", "caption_classifier_fid")
  config.eval.num_samples = 2000
  config.train.eval_every = 1000
  return config


def use_sc09(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """SC09: the ten digit words of Speech Commands, read as a WAV folder (--config.data.path=DIR holding zero/,
  one/, ... of the Speech Commands release, or the SC09 release's Zero_*.wav files). TFDS's speech_commands
  files the digits under "_unknown_", so it cannot be filtered to them (gans/data/audio.py)."""
  config.data.source = "wav_folder"
  config.data.path = ""
  config.data.words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
  config.data.sample_rate = 16_000
  config.data.clip_length = 16_384
  if "moments_clips" in config.model:
    config.model.moments_clips = 10_000
  return config
