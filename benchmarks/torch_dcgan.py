"""PyTorch reference of one DCGAN training step, for speed comparisons only.

The architecture is the DCGAN paper's (Radford et al. 2016, as in PyTorch's own
DCGAN example), written for any power-of-two resolution >= 8 so that smaller
configurations of the same shape of network can be timed too:

  G: z (latent_dim) -> 4x4 x (base_channels * resolution/8) by a 4x4 stride-1
     transposed conv from 1x1, then 4x4 stride-2 padding-1 transposed convs
     that double the size and halve the channels down to base_channels, and a
     last one to image_channels; BatchNorm + ReLU after every layer but the
     last, which is followed by tanh. No biases (BatchNorm makes them moot).
  D: 4x4 stride-2 padding-1 convs from image_channels to base_channels,
     doubling the channels down to 4x4, LeakyReLU(0.2), BatchNorm on all but
     the first; a final 4x4 valid conv to one logit. No biases.
  Init: conv weights N(0, 0.02), BatchNorm scale N(1, 0.02), shift 0.
  Adam(lr 2e-4, betas (0.5, 0.999)) for both networks.

For resolution 64, base_channels 64: G channels 512, 256, 128, 64, 3 and D
channels 64, 128, 256, 512 -> 1, exactly the paper's network.

One step = one D update on a real batch and a fake batch (two forward passes,
so BatchNorm sees each batch on its own, as in PyTorch's example) with the
binary cross-entropy loss, then one G update with the non-saturating loss
-log D(G(z)), D's parameters frozen during it (no D weight gradients: the project's G phase computes none;
PyTorch's example computes and discards them).

Torch is optional for the project; import this module only where torch exists.

    python benchmarks/torch_dcgan.py --resolution=64 --batch_size=64
"""
import argparse
import math
import statistics
import time
from typing import Callable, Optional

import torch
from torch import nn


def _num_upsamplings(resolution: int) -> int:
  num = int(round(math.log2(resolution / 4)))
  if resolution < 8 or 4 * 2**num != resolution:
    raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
  return num


def _init_dcgan_weights(module: nn.Module) -> None:
  if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
    nn.init.normal_(module.weight, 0.0, 0.02)
  elif isinstance(module, nn.BatchNorm2d):
    nn.init.normal_(module.weight, 1.0, 0.02)
    nn.init.zeros_(module.bias)


def make_torch_generator(resolution: int = 64, latent_dim: int = 100, base_channels: int = 64,
                         image_channels: int = 3) -> nn.Module:
  """DCGAN generator: (N, latent_dim, 1, 1) -> (N, image_channels, resolution, resolution) in [-1, 1]."""
  num_up = _num_upsamplings(resolution)
  channels = base_channels * 2**(num_up - 1)
  layers = [nn.ConvTranspose2d(latent_dim, channels, 4, 1, 0, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(True)]
  for _ in range(num_up - 1):
    layers += [nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
               nn.BatchNorm2d(channels // 2), nn.ReLU(True)]
    channels //= 2
  layers += [nn.ConvTranspose2d(channels, image_channels, 4, 2, 1, bias=False), nn.Tanh()]
  generator = nn.Sequential(*layers)
  generator.apply(_init_dcgan_weights)
  return generator


def make_torch_discriminator(resolution: int = 64, base_channels: int = 64,
                             image_channels: int = 3) -> nn.Module:
  """DCGAN discriminator: (N, image_channels, resolution, resolution) -> (N,) logits."""
  num_down = _num_upsamplings(resolution)
  channels = base_channels
  layers = [nn.Conv2d(image_channels, channels, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
  for _ in range(num_down - 1):
    layers += [nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=False),
               nn.BatchNorm2d(channels * 2), nn.LeakyReLU(0.2, True)]
    channels *= 2
  layers += [nn.Conv2d(channels, 1, 4, 1, 0, bias=False), nn.Flatten(0)]
  discriminator = nn.Sequential(*layers)
  discriminator.apply(_init_dcgan_weights)
  return discriminator


def make_torch_dcgan_step(resolution: int = 64, batch_size: int = 64, latent_dim: int = 100,
                          base_channels: int = 64, image_channels: int = 3,
                          learning_rate: float = 2e-4, beta1: float = 0.5, seed: int = 0,
                          reuse_fake: bool = True, augment: Optional[Callable] = None,
                          channels_last: bool = True) -> Callable[[Optional[torch.Tensor]], dict]:
  """Builds the networks and optimizers and returns `step(real_NCHW=None) -> {"d_loss", "g_loss"}`.

  Args:
    resolution: image side, a power of two >= 8 (64 is the paper's network).
    batch_size: images per batch (both the real and the fake batch).
    latent_dim: size of z.
    base_channels: channels of G's last hidden layer and D's first layer (64 in the paper);
      smaller values give the same architecture with fewer channels.
    image_channels: 3 for RGB.
    learning_rate, beta1: Adam's settings for both networks (the paper's 2e-4, 0.5).
    seed: torch seed for the initial weights, the latents and the stand-in real batch.
    reuse_fake: True (PyTorch's DCGAN example) runs G forward once per step and back-propagates
      the G loss through that same graph; False runs G forward again for the G update, as
      a trainer whose phases are independent loss functions does.
    augment: applied to every batch D sees (reals and fakes, D and G updates), e.g. the official ADA
      pipe (benchmarks/torch_augment.py); None = no augmentation.
    channels_last: networks and the stand-in real batch in torch.channels_last memory, PyTorch's faster form
      here (the 64x64 step at batch 64: 1.06x, 81.0 against 76.3 images/s, idle 2-core machine, one run).

  `step` runs one D update then one G update. With no argument it uses a fixed
  random batch in [-1, 1] as the real images (data loading is not timed).
  Losses are returned as Python floats, which also makes timing synchronous.
  Threads: torch's default (all cores), unchanged here.
  """
  torch.manual_seed(seed)
  generator = make_torch_generator(resolution, latent_dim, base_channels, image_channels)
  discriminator = make_torch_discriminator(resolution, base_channels, image_channels)
  if channels_last:  # before the optimizers take the parameters
    for net in (generator, discriminator):
      net.to(memory_format=torch.channels_last)
  judge = discriminator if augment is None else (lambda images: discriminator(augment(images)))
  g_optimizer = torch.optim.Adam(generator.parameters(), lr=learning_rate, betas=(beta1, 0.999))
  d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=learning_rate, betas=(beta1, 0.999))
  bce = nn.BCEWithLogitsLoss()
  ones = torch.ones(batch_size)
  zeros = torch.zeros(batch_size)
  default_real = torch.rand(batch_size, image_channels, resolution, resolution) * 2 - 1
  if channels_last:
    default_real = default_real.contiguous(memory_format=torch.channels_last)

  def step(real_NCHW: Optional[torch.Tensor] = None) -> dict:
    real = default_real if real_NCHW is None else real_NCHW
    z = torch.randn(batch_size, latent_dim, 1, 1)

    d_optimizer.zero_grad(set_to_none=True)
    fake = generator(z)
    d_loss_real = bce(judge(real), ones)
    d_loss_real.backward()
    d_loss_fake = bce(judge(fake.detach()), zeros)
    d_loss_fake.backward()
    d_optimizer.step()

    g_optimizer.zero_grad(set_to_none=True)
    if not reuse_fake:
      fake = generator(z)
    # Non-saturating loss: -log D(G(z)) = BCE(D(G(z)), 1).
    discriminator.requires_grad_(False)  # no D weight gradients in G's update, as the project's G phase
    g_loss = bce(judge(fake), ones)
    g_loss.backward()
    discriminator.requires_grad_(True)
    g_optimizer.step()
    return {"d_loss": (d_loss_real + d_loss_fake).item(), "g_loss": g_loss.item()}

  step.generator = generator
  step.discriminator = discriminator
  step.batch_size = batch_size
  return step


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--resolution", type=int, default=64)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--base_channels", type=int, default=64)
  parser.add_argument("--steps", type=int, default=5, help="steps per timed repeat")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--regenerate_fake", action="store_true", help="reuse_fake=False")
  args = parser.parse_args()
  step = make_torch_dcgan_step(args.resolution, args.batch_size, base_channels=args.base_channels,
                               reuse_fake=not args.regenerate_fake)
  print_step_speed(step, args)


def print_step_speed(step: Callable[[], None], args) -> None:
  """The command-line report of a reference step: the median of args.repeats timings of args.steps steps."""
  step()  # warm-up
  times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    for _ in range(args.steps):
      step()
    times.append((time.perf_counter() - start) / args.steps)
  median = statistics.median(times)
  print(f"torch {torch.__version__} threads={torch.get_num_threads()} resolution={args.resolution} "
        f"batch={args.batch_size}: {median * 1e3:.1f} ms/step, {args.batch_size / median:.1f} images/s")


if __name__ == "__main__":
  main()
