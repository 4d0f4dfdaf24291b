"""PyTorch reference of one 3D-GAN training step (Wu et al. 2016), for speed comparisons only.

The architecture of gans/variants/gan3d.py: G z -> 4^3 x (8 c) by a 4^3 stride-1 ConvTranspose3d from 1^3,
then ConvTranspose3d(k=4, s=2, p=1) halving the channels, BatchNorm3d + ReLU, a last one to 1 channel and a
sigmoid; D Conv3d(k=4, s=2, p=1) doubling the channels, BatchNorm3d + LeakyReLU(0.2), a 4^3 valid conv to one
logit. No biases. Adam(b1 0.5) with the paper's learning rates (G 0.0025, D 1e-5). One step: a D update on a
real and a fake batch (BCE on logits), then a G update (-log D(G(z))) back-propagated through the same G
forward pass (the project's step also runs G once: GanVariant.prepare); the adaptive rule's skip is not modelled (D always updates, the slower case). In the G update D's
parameters are frozen, so backward computes no D weight gradients: the project's G phase differentiates G's
parameters only (left on, they cost its step 7% at gan3d_shapes' size, loaded machine).

For benchmarks/train_step.py (--experiment=gan3d_shapes or gan3d_modelnet10).
"""
import math
from typing import Optional

import torch
from torch import nn

# The memory format of the reference's default: PyTorch's faster one here. benchmarks/torch_formats.py at
# gan3d_shapes (batch 32, allocator tuned, load 9-10 on the shared 2 cores): channels_last_3d 1.06x faster than
# NCDHW on one thread (3.63 against 3.86 s per step), 1.45x on two (4.34 against 6.30 s, oversubscribed).
CHANNELS_LAST = True


def _levels(resolution: int) -> int:
  return int(round(math.log2(resolution / 4)))


def make_torch_generator(resolution: int, latent_dim: int, base_channels: int) -> nn.Module:
  width = base_channels * 2 ** (_levels(resolution) - 1)
  layers = [nn.ConvTranspose3d(latent_dim, width, 4, 1, 0, bias=False), nn.BatchNorm3d(width), nn.ReLU(True)]
  for _ in range(_levels(resolution) - 1):
    layers += [nn.ConvTranspose3d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm3d(width // 2), nn.ReLU(True)]
    width //= 2
  layers += [nn.ConvTranspose3d(width, 1, 4, 2, 1, bias=False), nn.Sigmoid()]
  return nn.Sequential(*layers)


def make_torch_discriminator(resolution: int, base_channels: int) -> nn.Module:
  layers, width, channels = [], base_channels, 1
  for _ in range(_levels(resolution)):
    layers += [nn.Conv3d(channels, width, 4, 2, 1, bias=False), nn.BatchNorm3d(width), nn.LeakyReLU(0.2, True)]
    channels, width = width, width * 2
  layers += [nn.Conv3d(channels, 1, 4, 1, 0, bias=False), nn.Flatten(0)]
  return nn.Sequential(*layers)


def make_torch_gan3d_step(config, channels_last: Optional[bool] = None):
  """step() -> None: one D and one G update on a fixed random real batch, at the config's sizes.

  channels_last: networks and the real batch in torch.channels_last_3d memory; None = CHANNELS_LAST.
  """
  if channels_last is None:
    channels_last = CHANNELS_LAST
  resolution, batch, z_dim = config.data.resolution, config.train.batch_size, config.model.z_dim
  generator = make_torch_generator(resolution, z_dim, config.model.g_channels)
  discriminator = make_torch_discriminator(resolution, config.model.d_channels)
  if channels_last:  # before the optimizers take the parameters
    for net in (generator, discriminator):
      net.to(memory_format=torch.channels_last_3d)
  g_optimizer = torch.optim.Adam(generator.parameters(), lr=config.optim.g.learning_rate, betas=(0.5, 0.999))
  d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=config.optim.d.learning_rate, betas=(0.5, 0.999))
  bce = nn.BCEWithLogitsLoss()
  ones, zeros = torch.ones(batch), torch.zeros(batch)
  real = (torch.rand(batch, 1, resolution, resolution, resolution) > 0.5).float()
  if channels_last:
    real = real.contiguous(memory_format=torch.channels_last_3d)

  def step():
    d_optimizer.zero_grad(set_to_none=True)
    z = torch.randn(batch, z_dim, 1, 1, 1)
    fake = generator(z.contiguous(memory_format=torch.channels_last_3d) if channels_last else z)
    (bce(discriminator(real), ones) + bce(discriminator(fake.detach()), zeros)).backward()
    d_optimizer.step()
    g_optimizer.zero_grad(set_to_none=True)
    discriminator.requires_grad_(False)  # gradients flow through D to G, none is kept for D's weights
    bce(discriminator(fake), ones).backward()
    discriminator.requires_grad_(True)
    g_optimizer.step()

  return step
