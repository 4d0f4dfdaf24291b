"""PyTorch reference of one WaveGAN training step (Donahue, McAuley & Puckette 2019), for speed comparisons only.

Written from the paper's description, the networks of gans/variants/wavegan.py:
  G: z (100-d, U[-1, 1]) -> dense -> [16d, T / 1024] -> ReLU -> five ConvTranspose1d (kernel 25, stride 4,
     padding 11, output padding 1: exactly 4x longer, as TensorFlow's "same"; 16d -> 8d -> 4d -> 2d -> d ->
     channels), ReLU between, tanh; optionally the appendix's 512-tap post-processing filter (no bias).
  D: five Conv1d (kernel 25, stride 4, padding 11: exactly 4x shorter; d -> 16d), LeakyReLU 0.2, phase shuffle
     (each example shifted by its own random -n..n samples, reflection padding) after the first four, dense to
     one output. No batch norm.
  WGAN-GP (lambda 10) with Adam(1e-4, betas (0.5, 0.9)).
One step = one D update (the Wasserstein loss on a real and a fake batch plus the gradient penalty at random
interpolates, a double backward) and one G update (D's parameters frozen: no D weight gradients), as the
project's step with n_critic = 1.

Torch is optional for the project; import this module only where torch exists.
"""
import torch
from torch import nn
import torch.nn.functional as F

KERNEL, STRIDE, NUM_LAYERS, POST_FILTER_TAPS = 25, 4, 5, 512


def phase_shuffle(x_NCT: torch.Tensor, n: int) -> torch.Tensor:
  """out[b, :, t] = x[b, :, t - shift_b], shift_b uniform in [-n, n], the border reflected."""
  if n == 0:
    return x_NCT
  batch, channels, length = x_NCT.shape
  shifts = torch.randint(-n, n + 1, (batch, 1, 1))
  padded = F.pad(x_NCT, (n, n), mode="reflect")
  index = (torch.arange(length).view(1, 1, length) + n - shifts).expand(batch, channels, length)
  return torch.gather(padded, 2, index)


class Generator(nn.Module):

  def __init__(self, clip_length: int, channels: int, d: int, z_dim: int, post_filter: bool = False):
    super().__init__()
    self.start, self.d = clip_length // STRIDE ** NUM_LAYERS, d
    self.dense = nn.Linear(z_dim, self.start * 16 * d)
    widths = [16 * d // 2 ** level for level in range(NUM_LAYERS)] + [channels]
    self.convs = nn.ModuleList(nn.ConvTranspose1d(widths[i], widths[i + 1], KERNEL, STRIDE, padding=11,
                                                  output_padding=1) for i in range(NUM_LAYERS))
    self.post = (nn.Conv1d(channels, channels, POST_FILTER_TAPS, padding="same", bias=False)
                 if post_filter else None)

  def forward(self, z):
    h = F.relu(self.dense(z).view(z.shape[0], self.start, 16 * self.d).transpose(1, 2))
    for level, conv in enumerate(self.convs):
      h = conv(h)
      h = torch.tanh(h) if level == NUM_LAYERS - 1 else F.relu(h)
    return h if self.post is None else self.post(h)


class Discriminator(nn.Module):

  def __init__(self, clip_length: int, channels: int, d: int, phase_shuffle: int):
    super().__init__()
    widths = [channels] + [d * 2 ** level for level in range(NUM_LAYERS)]
    self.convs = nn.ModuleList(nn.Conv1d(widths[i], widths[i + 1], KERNEL, STRIDE, padding=11)
                               for i in range(NUM_LAYERS))
    self.dense = nn.Linear(widths[-1] * clip_length // STRIDE ** NUM_LAYERS, 1)
    self.n = phase_shuffle

  def forward(self, x_NCT):
    h = x_NCT
    for level, conv in enumerate(self.convs):
      h = F.leaky_relu(conv(h), 0.2)
      if level < NUM_LAYERS - 1:
        h = phase_shuffle(h, self.n)
    # Time-major flattening, as the project's [N, T, C] reshape (the count and cost are the same either way).
    return self.dense(h.transpose(1, 2).reshape(h.shape[0], -1)).view(-1)


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
  """E (||grad D(x_hat)|| - 1)^2 at random interpolates (Gulrajani et al. 2017)."""
  eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1))
  x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
  grad, = torch.autograd.grad(discriminator(x_hat).sum(), x_hat, create_graph=True)
  return (torch.sqrt(grad.flatten(1).square().sum(1) + 1e-12) - 1).square().mean()


def make_wgan_gp_step(generator: nn.Module, discriminator: nn.Module, real: torch.Tensor, z_dim: int,
                      to_d_input=lambda x: x, config=None):
  """step() -> None: one WGAN-GP D update on `real` (mapped by to_d_input inside the step) and a fake batch,
  then one G update; Adam(lr, betas (0.5, 0.9)) from config.optim as the project's (1e-4 when config is None)."""
  lr_g = config.optim.g.learning_rate if config is not None else 1e-4
  lr_d = config.optim.d.learning_rate if config is not None else 1e-4
  gp_weight = config.model.gp_weight if config is not None else 10.0
  g_optimizer = torch.optim.Adam(generator.parameters(), lr=lr_g, betas=(0.5, 0.9))
  d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=(0.5, 0.9))
  batch = real.shape[0]

  def latents():
    return torch.rand(batch, z_dim) * 2 - 1

  def step():
    d_optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
      fake = generator(latents())
    real_input = to_d_input(real)
    loss = (discriminator(fake).mean() - discriminator(real_input).mean()
            + gp_weight * gradient_penalty(discriminator, real_input, fake))
    loss.backward()
    d_optimizer.step()
    g_optimizer.zero_grad(set_to_none=True)
    discriminator.requires_grad_(False)  # no D weight gradients in G's update, as the project's G phase
    (-discriminator(generator(latents())).mean()).backward()
    discriminator.requires_grad_(True)
    g_optimizer.step()

  return step


def make_networks(config):
  clip_length, channels = config.data.clip_length, config.data.channels
  generator = Generator(clip_length, channels, config.model.g_channels, config.model.z_dim,
                        config.model.post_filter)
  discriminator = Discriminator(clip_length, channels, config.model.d_channels, config.model.phase_shuffle)
  return generator, discriminator


def make_torch_wavegan_step(config):
  """step() -> None: one D and one G update on a fixed random real batch, at the config's sizes."""
  generator, discriminator = make_networks(config)
  real = torch.rand(config.train.batch_size, config.data.channels, config.data.clip_length) * 2 - 1
  return make_wgan_gp_step(generator, discriminator, real, config.model.z_dim, config=config)
