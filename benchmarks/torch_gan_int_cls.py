"""PyTorch reference of one GAN-INT-CLS training step (Reed et al. 2016), for speed comparisons only.

The networks of gans/variants/text2image/gan_int_cls.py, written here in PyTorch from the paper's Fig. 2 and the
facts that module documents (parameter counts equal the Flax networks'; tests/test_gan_int_cls.py checks them):

  projection  Linear(E, projection_dim) with bias, LeakyReLU(0.2): the learned projection of the sentence
              embedding, one in G and one in D.
  G           [z, projection(h)] as a 1x1 map into torch_dcgan's generator (4x4 transposed conv from 1x1, then
              4x4 stride-2 transposed convs with BatchNorm + ReLU, tanh; no biases).
  D           torch_dcgan's strided 4x4 convs (LeakyReLU 0.2, BatchNorm after all but the first) down to 4x4;
              there projection(h) replicated to 4x4 is concatenated after the features, a 1x1 conv back to the
              features' channels (no bias), BatchNorm, LeakyReLU(0.2), and a 4x4 valid conv to one logit.
  Init: conv weights N(0, 0.02), BatchNorm scales N(1, 0.02); Linear layers N(0, 0.02), biases 0.

One step, objective gan-int-cls (Algorithm 1 with the interpolation term), embeddings precomputed (no text
encoder: the project's is frozen after its pretraining, and the CUB experiment reads released embeddings):
  D update: fake = G(z, h); softplus(-D(x, h)) + (softplus(D(x, h_wrong)) + softplus(D(fake, h))) / 2, three D
            calls, so BatchNorm sees each batch alone, as the Flax phase does; h_wrong = h rolled by one.
  G update: softplus(-D(fake, h)) + softplus(-D(G(z', h_int), h_int)), h_int = (h + h_wrong) / 2, D's parameters frozen.
Adam(2e-4, betas (0.5, 0.999)) for both. As torch_dcgan, the fake of the D update is reused by the G update
by default (PyTorch's habit; the Flax step's phases each run G again, one G forward more).

Torch is optional for the project; import this module only where torch exists.

    python benchmarks/torch_gan_int_cls.py --resolution=64 --batch_size=64 --embedding_dim=1024
"""
import argparse
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import torch_dcgan


def _projection(embedding_dim: int, projection_dim: int) -> nn.Module:
  linear = nn.Linear(embedding_dim, projection_dim)
  nn.init.normal_(linear.weight, 0.0, 0.02)
  nn.init.zeros_(linear.bias)
  return nn.Sequential(linear, nn.LeakyReLU(0.2))


class TextGenerator(nn.Module):
  """G(z, h): (N, z_dim), (N, E) -> (N, C, R, R) in [-1, 1]."""

  def __init__(self, resolution: int, channels: int, base_channels: int, z_dim: int, embedding_dim: int,
               projection_dim: int):
    super().__init__()
    self.projection = _projection(embedding_dim, projection_dim)
    self.body = torch_dcgan.make_torch_generator(resolution, z_dim + projection_dim, base_channels, channels)

  def forward(self, z, embedding):
    code = torch.cat([z, self.projection(embedding)], dim=1)
    return self.body(code[:, :, None, None])


class TextDiscriminator(nn.Module):
  """D(x, h): (N, C, R, R), (N, E) -> (N,) logits; projection(h) joins the features at 4x4."""

  def __init__(self, resolution: int, channels: int, base_channels: int, embedding_dim: int, projection_dim: int):
    super().__init__()
    dcgan = torch_dcgan.make_torch_discriminator(resolution, base_channels, channels)
    self.body = nn.Sequential(*list(dcgan)[:-2])  # without the final 4x4 conv and the flatten
    features = base_channels * 2 ** (torch_dcgan._num_upsamplings(resolution) - 1)  # pylint: disable=protected-access
    self.projection = _projection(embedding_dim, projection_dim)
    self.joint = nn.Sequential(nn.Conv2d(features + projection_dim, features, 1, bias=False),
                               nn.BatchNorm2d(features), nn.LeakyReLU(0.2, True),
                               nn.Conv2d(features, 1, 4, 1, 0, bias=False), nn.Flatten(0))
    self.joint.apply(torch_dcgan._init_dcgan_weights)  # pylint: disable=protected-access

  def forward(self, x, embedding):
    h = self.body(x)
    condition = self.projection(embedding)[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
    return self.joint(torch.cat([h, condition], dim=1))


def make_networks(config) -> tuple[nn.Module, nn.Module]:
  model, data = config.model, config.data
  generator = TextGenerator(data.resolution, data.channels, model.g_channels, model.z_dim, model.embedding_dim,
                            model.projection_dim)
  discriminator = TextDiscriminator(data.resolution, data.channels, model.d_channels, model.embedding_dim,
                                    model.projection_dim)
  return generator, discriminator


def make_torch_gan_int_cls_step(config, seed: int = 0, reuse_fake: bool = True) -> Callable[[], dict]:
  """step() -> {"d_loss", "g_loss"}: one D and one G update of gan-int-cls on a fixed random batch of images and
  sentence embeddings at the config's sizes (data loading is not timed). Threads: torch's default."""
  torch.manual_seed(seed)
  generator, discriminator = make_networks(config)
  model, batch = config.model, config.train.batch_size
  beta = model.get("interpolation_beta", 0.5)
  g_optimizer = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
  d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
  real = torch.rand(batch, config.data.channels, config.data.resolution, config.data.resolution) * 2 - 1
  embedding = torch.randn(batch, model.embedding_dim)

  def step() -> dict:
    wrong = torch.roll(embedding, 1, dims=0)
    z = torch.randn(batch, model.z_dim)

    d_optimizer.zero_grad(set_to_none=True)
    fake = generator(z, embedding)
    d_loss = (F.softplus(-discriminator(real, embedding)).mean()
              + 0.5 * (F.softplus(discriminator(real, wrong)).mean()
                       + F.softplus(discriminator(fake.detach(), embedding)).mean()))
    d_loss.backward()
    d_optimizer.step()

    g_optimizer.zero_grad(set_to_none=True)
    if not reuse_fake:
      fake = generator(z, embedding)
    mixed = beta * embedding + (1 - beta) * wrong
    fake_mixed = generator(torch.randn(batch, model.z_dim), mixed)
    discriminator.requires_grad_(False)  # no D weight gradients in G's update, as the project's G phase
    g_loss = (F.softplus(-discriminator(fake, embedding)).mean()
              + F.softplus(-discriminator(fake_mixed, mixed)).mean())
    g_loss.backward()
    discriminator.requires_grad_(True)
    g_optimizer.step()
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

  step.generator, step.discriminator = generator, discriminator
  return step


def main():
  import ml_collections  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--resolution", type=int, default=64)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--base_channels", type=int, default=64)
  parser.add_argument("--embedding_dim", type=int, default=1024)
  parser.add_argument("--steps", type=int, default=5, help="steps per timed repeat")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  config = ml_collections.ConfigDict({
      "model": {"z_dim": 100, "g_channels": args.base_channels, "d_channels": args.base_channels,
                "embedding_dim": args.embedding_dim, "projection_dim": 128},
      "data": {"resolution": args.resolution, "channels": 3}, "train": {"batch_size": args.batch_size}})
  torch_dcgan.print_step_speed(make_torch_gan_int_cls_step(config), args)


if __name__ == "__main__":
  main()
