"""PyTorch reference of one SpecGAN training step (Donahue, McAuley & Puckette 2019), for speed comparisons only.

Written from the paper's description, the networks of gans/variants/specgan.py:
  G: z (100-d, U[-1, 1]) -> dense -> [16d, frames / 32, bins / 32] -> ReLU -> five ConvTranspose2d (5x5,
     stride 2, padding 2, output padding 1: exactly 2x larger, as TensorFlow's "same"; 16d -> ... -> d -> 1),
     ReLU between, tanh.
  D: five Conv2d (5x5, stride 2, padding 2; d -> 16d), LeakyReLU 0.2, dense to one output. No batch norm.
D sees each real clip as SpecGAN's spectrogram, computed inside the step as the project's D loss does: the
log magnitude of the STFT (periodic Hann window of 16 ms, hop of half a window, the clip zero-padded at its
end, the Nyquist bin dropped), normalised per frequency bin (unit moments here: the cost is the same),
clipped to 3 standard deviations and divided by 3. WGAN-GP (lambda 10), Adam(1e-4, betas (0.5, 0.9)); one D
and one G update per step (benchmarks/torch_wavegan.py's step).

Torch is optional for the project; import this module only where torch exists.
"""
import math

import torch
from torch import nn
import torch.nn.functional as F

from benchmarks import torch_wavegan

KERNEL, NUM_LAYERS, LOG_EPSILON, CLIP_STDS = 5, 5, 1e-6, 3.0


def window_for(sample_rate: int) -> int:
  """16 ms in samples, a power of two (256 at 16 kHz)."""
  return 2 ** int(round(math.log2(sample_rate * 16 / 1000)))


class Generator(nn.Module):

  def __init__(self, frames: int, bins: int, d: int, z_dim: int):
    super().__init__()
    self.start, self.d = (frames // 2 ** NUM_LAYERS, bins // 2 ** NUM_LAYERS), d
    self.dense = nn.Linear(z_dim, self.start[0] * self.start[1] * 16 * d)
    widths = [16 * d // 2 ** level for level in range(NUM_LAYERS)] + [1]
    self.convs = nn.ModuleList(nn.ConvTranspose2d(widths[i], widths[i + 1], KERNEL, 2, padding=2, output_padding=1)
                               for i in range(NUM_LAYERS))

  def forward(self, z):
    h = self.dense(z).view(z.shape[0], self.start[0], self.start[1], 16 * self.d).permute(0, 3, 1, 2)
    h = F.relu(h)
    for level, conv in enumerate(self.convs):
      h = conv(h)
      h = torch.tanh(h) if level == NUM_LAYERS - 1 else F.relu(h)
    return h


class Discriminator(nn.Module):

  def __init__(self, frames: int, bins: int, d: int):
    super().__init__()
    widths = [1] + [d * 2 ** level for level in range(NUM_LAYERS)]
    self.convs = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], KERNEL, 2, padding=2) for i in range(NUM_LAYERS))
    self.dense = nn.Linear(widths[-1] * frames * bins // 4 ** NUM_LAYERS, 1)

  def forward(self, x_NCHW):
    h = x_NCHW
    for conv in self.convs:
      h = F.leaky_relu(conv(h), 0.2)
    return self.dense(h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)).view(-1)


def spectrogram(audio_NCT: torch.Tensor, window: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
  """Audio [N, 1, T] -> SpecGAN's normalised log-magnitude spectrogram [N, 1, frames, bins] in [-1, 1]."""
  hop, length = window // 2, audio_NCT.shape[-1]
  frames = -(-length // hop)
  padded = F.pad(audio_NCT[:, 0], (0, (frames - 1) * hop + window - length))
  spectrum = torch.stft(padded, window, hop, window=torch.hann_window(window, periodic=True), center=False,
                        return_complex=True)  # [N, window // 2 + 1, frames]
  log_magnitude = torch.log(spectrum.abs()[:, :-1] + LOG_EPSILON).transpose(1, 2)
  normalised = torch.clamp((log_magnitude - mean) / std, -CLIP_STDS, CLIP_STDS) / CLIP_STDS
  return normalised[:, None]


def make_networks(config):
  window = window_for(config.data.sample_rate)
  frames, bins = -(-config.data.clip_length // (window // 2)), window // 2
  return (Generator(frames, bins, config.model.g_channels, config.model.z_dim),
          Discriminator(frames, bins, config.model.d_channels))


def make_torch_specgan_step(config, channels_last: bool = True):
  """step() -> None: one D and one G update on a fixed random real batch of audio, at the config's sizes.

  `channels_last`: both networks in torch.channels_last memory, PyTorch's faster form here (the specgan_digits
  step 1.05x, 134.8 against 128.4 clips/s, idle 2-core machine, alternating blocks in one process).
  """
  generator, discriminator = make_networks(config)
  if channels_last:  # before the optimizers take the parameters
    for net in (generator, discriminator):
      net.to(memory_format=torch.channels_last)
  window = window_for(config.data.sample_rate)
  mean, std = torch.zeros(window // 2), torch.ones(window // 2)
  real = torch.rand(config.train.batch_size, 1, config.data.clip_length) * 2 - 1
  return torch_wavegan.make_wgan_gp_step(generator, discriminator, real, config.model.z_dim,
                                         to_d_input=lambda audio: spectrogram(audio, window, mean, std),
                                         config=config)
