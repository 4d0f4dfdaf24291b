"""WaveGAN (Donahue, McAuley & Puckette 2019): DCGAN's idea on raw waveforms.

G: z (100-d, uniform in [-1, 1]) -> dense -> [T / 1024, 16d] -> ReLU -> five 1D transposed convs (kernel 25,
stride 4, TensorFlow's "same" padding; 16d -> 8d -> 4d -> 2d -> d -> channels), ReLU between, tanh: T samples
(16384, about 1 s at 16 kHz, in the paper). Optionally the appendix's post-processing filter: one learned
512-tap filter (a 1D conv, no bias) after the tanh.
D: the mirror image: five 1D convs (kernel 25, stride 4; d -> 16d), LeakyReLU 0.2, phase shuffle (each
example's activations shifted by a random -n..n samples, the gap filled by reflection) after each of the first
four, dense to one output. No batch norm. WGAN-GP (lambda 10), 5 D updates per G update, Adam 1e-4, betas
(0.5, 0.9), batch 64: config.model.loss / gp_weight, config.train.n_critic, config.optim.

The paper's code draws one shift per batch; here each example draws its own, as the issue asks (the paper's
text: "we randomly perturb the phase of each layer's activations").
The convolutions are gans.layers' fast forms (sub-pixel along time, gradients without input-dilated convs).
Initialisation as TensorFlow's layers default: Glorot-uniform kernels, zero biases.
"""
import jax
import jax.numpy as jnp
import flax.linen as nn

from gans import layers
from gans.state import GanVariant
from gans.variants import common

KERNEL = 25
STRIDE = 4
NUM_LAYERS = 5
POST_FILTER_TAPS = 512  # the appendix's post-processing filter length
PHASE_SHUFFLE_RNG = "phase_shuffle"
_init = nn.initializers.glorot_uniform()


def start_length(clip_length: int) -> int:
  """G's first feature length: the clip length over 4^5."""
  if clip_length % STRIDE ** NUM_LAYERS:
    raise ValueError(f"WaveGAN's clip length must be a multiple of {STRIDE ** NUM_LAYERS} (16384 = 1.024 s at "
                     f"16 kHz in the paper); got data.clip_length={clip_length}.")
  return clip_length // STRIDE ** NUM_LAYERS


def shift_with_reflection(x_NTC: jax.Array, shifts_N: jax.Array, max_shift: int) -> jax.Array:
  """out[b, t] = x[b, t - shifts[b]], the samples shifted in from outside reflected at the border
  (|shifts| <= max_shift < T)."""
  length = x_NTC.shape[1]
  padded = jnp.pad(x_NTC, ((0, 0), (max_shift, max_shift), (0, 0)), mode="reflect")
  # A select among the 2n + 1 static slices rather than a per-example gather: elementwise work, split over the
  # batch's devices like the convolutions.
  out = jnp.zeros_like(x_NTC)
  for shift in range(-max_shift, max_shift + 1):
    chosen = (shifts_N == shift)[:, None, None]
    out = jnp.where(chosen, padded[:, max_shift - shift:max_shift - shift + length], out)
  return out


def phase_shuffle(x_NTC: jax.Array, key: jax.Array, n: int) -> jax.Array:
  """Each example shifted by its own uniform random integer in [-n, n] (reflection padding); n = 0: x."""
  if n == 0:
    return x_NTC
  shifts = jax.random.randint(key, (x_NTC.shape[0],), -n, n + 1)
  return shift_with_reflection(x_NTC, shifts, n)


class Generator(nn.Module):
  clip_length: int  # output samples, a multiple of 4^5
  channels: int = 1  # output audio channels
  d: int = 64  # model size: the last transposed conv's input width; 16d at the start
  post_filter: bool = False  # the appendix's learned 512-tap post-processing filter

  @nn.compact
  def __call__(self, z, train: bool):
    del train  # no batch norm
    start = start_length(self.clip_length)
    h = nn.Dense(start * 16 * self.d, kernel_init=_init)(z).reshape(z.shape[0], start, 16 * self.d)
    h = nn.relu(h)
    for level in range(NUM_LAYERS):
      last = level == NUM_LAYERS - 1
      width = self.channels if last else 16 * self.d // 2 ** (level + 1)
      h = layers.ConvTranspose1DSame(width, KERNEL, strides=STRIDE, kernel_init=_init)(h)
      h = jnp.tanh(h) if last else nn.relu(h)
    if self.post_filter:
      h = layers.Conv1DSame(self.channels, POST_FILTER_TAPS, use_bias=False, kernel_init=_init)(h)
    return h


class Discriminator(nn.Module):
  d: int = 64  # model size: the first conv's width; 16d at the end
  phase_shuffle: int = 2  # n: shifts drawn from -n..n after each of the first four convs; 0 = off

  @nn.compact
  def __call__(self, x_NTC, train: bool):
    h = x_NTC
    for level in range(NUM_LAYERS):
      h = layers.Conv1DSame(self.d * 2 ** level, KERNEL, strides=STRIDE, kernel_init=_init)(h)
      h = nn.leaky_relu(h, 0.2)
      if level < NUM_LAYERS - 1 and train and self.phase_shuffle:
        h = phase_shuffle(h, self.make_rng(PHASE_SHUFFLE_RNG), self.phase_shuffle)
    return nn.Dense(1, kernel_init=_init)(h.reshape(h.shape[0], -1)).reshape(-1)


def make(config) -> GanVariant:
  model = config.model
  shape = common.data_shape(config.data)
  generator = Generator(clip_length=shape[0], channels=shape[1], d=model.g_channels,
                        post_filter=model.post_filter)
  discriminator = Discriminator(d=model.d_channels, phase_shuffle=model.phase_shuffle)
  phases, prepare = common.standard_training(generator, discriminator, model, config.train.get("n_critic", 1),
                                             d_rng=PHASE_SHUFFLE_RNG)
  return GanVariant(
      init=common.init_generator_discriminator(generator, discriminator, model.z_dim, shape),
      phases=phases,
      prepare=prepare,
      sample=common.make_sampler(generator, model.z_dim, common.latent_sampler(model)),
      modules={"g": generator, "d": discriminator},
      hyperparameters=common.standard_hyperparameters(model),  # WGAN-GP's lambda, vectorisable
  )
