"""PyTorch reference of one vanilla-GAN / PacGAN training step (gans/variants/gan.py), for speed comparisons.

G: z -> hidden layers (Linear without bias, BatchNorm1d, ReLU) -> Linear. D: packed input -> maxout
layers (Linear to width * pieces, max over pieces) -> Linear to one logit. Adam with the config's
settings. One step = one D update (real and fake batches in separate passes) then one G update with the
non-saturating loss, reusing the fake batch as PyTorch's examples do. Torch is optional for the project.
"""
import numpy as np
import torch
from torch import nn


class _Maxout(nn.Module):
  def __init__(self, inputs: int, width: int, pieces: int):
    super().__init__()
    self.width, self.pieces = width, pieces
    self.linear = nn.Linear(inputs, width * pieces)

  def forward(self, x):
    return self.linear(x).view(x.shape[0], self.width, self.pieces).max(dim=-1).values


def make_torch_mlp_gan_step(config):
  model, train = config.model, config.train
  out_dim = 2 if config.data.source in ("ring8", "grid25") else int(
      config.data.resolution ** 2 * config.data.channels)
  pack = model.get("pack", 1)
  layers, width = [], model.z_dim
  for hidden in model.g_hidden:
    layers += [nn.Linear(width, hidden, bias=not model.g_batch_norm)]
    layers += [nn.BatchNorm1d(hidden, momentum=0.1)] if model.g_batch_norm else []
    layers += [nn.ReLU()]
    width = hidden
  generator = nn.Sequential(*layers, nn.Linear(width, out_dim))
  layers, width = [], out_dim * pack
  for hidden in model.d_hidden:
    layers.append(_Maxout(width, hidden, model.d_maxout_pieces))
    width = hidden
  discriminator = nn.Sequential(*layers, nn.Linear(width, 1))
  optim = lambda params, c: torch.optim.Adam(params, lr=c.learning_rate, betas=(c.b1, c.b2), eps=c.eps)
  g_optimizer, d_optimizer = optim(generator.parameters(), config.optim.g), optim(discriminator.parameters(),
                                                                                   config.optim.d)
  bce = nn.BCEWithLogitsLoss()
  batch = train.batch_size
  real = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (batch, out_dim)).astype(np.float32))
  ones, zeros = torch.ones(batch // pack, 1), torch.zeros(batch // pack, 1)
  packed = lambda x: x.reshape(batch // pack, pack * out_dim)

  def step():
    z = torch.randn(batch, model.z_dim)
    d_optimizer.zero_grad(set_to_none=True)
    fake = generator(z)
    d_loss = bce(discriminator(packed(real)), ones) + bce(discriminator(packed(fake.detach())), zeros)
    d_loss.backward()
    d_optimizer.step()
    g_optimizer.zero_grad(set_to_none=True)
    discriminator.requires_grad_(False)  # no D weight gradients in G's update, as the project's G phase
    g_loss = bce(discriminator(packed(fake)), ones)
    g_loss.backward()
    discriminator.requires_grad_(True)
    g_optimizer.step()
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

  return step
