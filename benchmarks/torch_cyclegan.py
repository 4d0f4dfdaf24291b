"""PyTorch reference of CycleGAN's training step, for speed comparisons only.

The networks are torch_pix2pix.py's (written from the papers and the official architecture facts): two
generators G_AB, G_BA (config.model.generator, ResNet with instance norm by default) and two PatchGANs, D_B
judging domain B and D_A judging domain A. One step in the official optimize_parameters' order (Zhu et al.
2017, section 4 and appendix 7.1):

  forward: fake_b = G_AB(a), rec_a = G_BA(fake_b), fake_a = G_BA(b), rec_b = G_AB(fake_a);
  G update (both D frozen): LSGAN(D_B(fake_b), 1) + LSGAN(D_A(fake_a), 1) + 10 * L1(rec_a, a)
    + 10 * L1(rec_b, b) + 0.5 * 10 * (L1(G_AB(b), b) + L1(G_BA(a), a));
  D update: each D on 0.5 * (LSGAN(D(real), 1) + LSGAN(D(pool(fake)), 0)), the fakes drawn through a
    50-image history pool per domain (with probability 1/2 a stored image, replaced by the new one, once full).

Adam(2e-4, betas (0.5, 0.999)). Inputs at the crop size (the data loader jitters on the host).

    python benchmarks/torch_cyclegan.py --experiment=cyclegan_horse2zebra
"""
import argparse
import random
from typing import Callable

import torch
from torch import nn

from benchmarks import timing, torch_pix2pix


class ImagePool:
  """The history of generated images: returns the new ones until full, then half the time a stored one."""

  def __init__(self, size: int, seed: int = 0):
    self.size, self.images, self.random = size, [], random.Random(seed)

  def query(self, images: torch.Tensor) -> torch.Tensor:
    if self.size == 0:
      return images
    returned = []
    for image in images.detach():
      image = image.unsqueeze(0)
      if len(self.images) < self.size:
        self.images.append(image)
        returned.append(image)
      elif self.random.uniform(0, 1) > 0.5:
        index = self.random.randrange(self.size)
        returned.append(self.images[index].clone())
        self.images[index] = image
      else:
        returned.append(image)
    return torch.cat(returned, 0)


def make_torch_cyclegan_step(config, seed: int = 0,
                             channels_last: bool = torch_pix2pix.CHANNELS_LAST) -> Callable[[], dict]:
  """step() -> {"d_loss", "g_loss"}: one CycleGAN iteration on a fixed random unpaired batch.

  `channels_last`: networks and batch in torch.channels_last memory (see torch_pix2pix.CHANNELS_LAST).
  """
  torch.manual_seed(seed)
  model, channels = config.model, config.data.channels
  side = config.data.get("crop_size", 0) or config.data.resolution
  batch = config.train.batch_size
  g_ab, g_ba = (torch_pix2pix.generator(model.generator, channels, model) for _ in range(2))
  d_a, d_b = (torch_pix2pix.discriminator(channels, model) for _ in range(2))
  for net in (g_ab, g_ba, d_a, d_b):
    net.apply(torch_pix2pix.init_normal)
    if channels_last:  # before the optimizers take the parameters
      net.to(memory_format=torch.channels_last)
  opt_g = torch.optim.Adam(list(g_ab.parameters()) + list(g_ba.parameters()), lr=2e-4, betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(list(d_a.parameters()) + list(d_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
  pool_a, pool_b = ImagePool(model.pool_size, seed), ImagePool(model.pool_size, seed + 1)
  mse, l1 = nn.MSELoss(), nn.L1Loss()
  lambda_a, lambda_b, lambda_idt = model.lambda_a, model.lambda_b, model.lambda_identity
  real_a = torch.rand(batch, channels, side, side) * 2 - 1
  real_b = torch.rand(batch, channels, side, side) * 2 - 1
  if channels_last:
    real_a, real_b = (x.contiguous(memory_format=torch.channels_last) for x in (real_a, real_b))

  def gan_loss(scores, real: bool):
    return mse(scores, torch.full_like(scores, 1.0 if real else 0.0))

  def set_requires_grad(nets, flag: bool):
    for net in nets:
      for p in net.parameters():
        p.requires_grad_(flag)

  def step() -> dict:
    fake_b = g_ab(real_a)
    rec_a = g_ba(fake_b)
    fake_a = g_ba(real_b)
    rec_b = g_ab(fake_a)
    set_requires_grad((d_a, d_b), False)
    opt_g.zero_grad(set_to_none=True)
    g_loss = (gan_loss(d_b(fake_b), True) + gan_loss(d_a(fake_a), True)
              + lambda_a * l1(rec_a, real_a) + lambda_b * l1(rec_b, real_b))
    if lambda_idt > 0:
      g_loss = g_loss + lambda_idt * (lambda_b * l1(g_ab(real_b), real_b) + lambda_a * l1(g_ba(real_a), real_a))
    g_loss.backward()
    opt_g.step()
    set_requires_grad((d_a, d_b), True)
    opt_d.zero_grad(set_to_none=True)
    d_loss = 0.0
    for net, real, fake in ((d_b, real_b, pool_b.query(fake_b)), (d_a, real_a, pool_a.query(fake_a))):
      loss = 0.5 * (gan_loss(net(real), True) + gan_loss(net(fake.detach()), False))
      loss.backward()
      d_loss += loss.item()
    opt_d.step()
    return {"d_loss": d_loss, "g_loss": g_loss.item()}

  step.networks = {"g_ab": g_ab, "g_ba": g_ba, "d_a": d_a, "d_b": d_b}
  return step


def main():
  import experiments  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--experiment", default="cyclegan_horse2zebra")
  args = parser.parse_args()
  config = experiments.get_config(args.experiment)
  seconds = timing.median_seconds(make_torch_cyclegan_step(config), calls=5)
  print(f"torch {torch.__version__} threads={torch.get_num_threads()} {args.experiment}: {seconds * 1e3:.1f} ms/step, "
        f"{config.train.batch_size / seconds:.1f} images/s")


if __name__ == "__main__":
  main()
