"""PyTorch reference of SRGAN's networks and training step (Ledig et al. 2017), for speed comparisons only.

Written here from the paper's Fig. 4 and the facts gans/variants/srgan.py documents, so the parameter counts
equal the Flax networks' (tests/test_srgan.py checks them):

  SRResNet(blocks, features, channels): conv9x9 + PReLU; `blocks` residual blocks (conv3x3 without bias,
    BatchNorm, PReLU, conv3x3 without bias, BatchNorm, + input); conv3x3 without bias + BatchNorm + the long
    skip; two x2 stages (conv3x3 to 4x the width, PixelShuffle(2), PReLU); conv9x9 to `channels`. PReLU has
    one slope per channel, initialised to 0.25.
  Discriminator(features, dense, side): eight conv3x3 (features x 1, 1, 2, 2, 4, 4, 8, 8; strides 1, 2, 1, 2,
    ...; bias only on the first; BatchNorm on all but the first), LeakyReLU 0.2, dense `dense`, LeakyReLU 0.2,
    dense 1 (a logit).

One SRGAN step (the order of gans/variants/srgan.py's phases): sr = G(LR); D update on BCE(D(HR), 1) +
BCE(D(sr), 0); G update on MSE(sr, HR) + adversarial_weight * BCE(D(sr), 1), D's parameters frozen.
Adam(1e-4, betas (0.9, 0.999)). The content loss is the MSE (the experiments' default; the VGG losses need
torchvision's weights). The LR batch is given: official loaders downscale on the host (the JAX step
downscales on the device inside its step).

Torch is optional for the project; import this module only where torch exists.
"""
from typing import Callable

import torch
from torch import nn

SCALE = 4


def residual_block(features: int) -> nn.Module:
  return nn.Sequential(nn.Conv2d(features, features, 3, padding=1, bias=False), nn.BatchNorm2d(features),
                       nn.PReLU(features, 0.25), nn.Conv2d(features, features, 3, padding=1, bias=False),
                       nn.BatchNorm2d(features))


class SRResNet(nn.Module):
  def __init__(self, blocks: int, features: int, channels: int):
    super().__init__()
    self.head = nn.Sequential(nn.Conv2d(channels, features, 9, padding=4), nn.PReLU(features, 0.25))
    self.blocks = nn.ModuleList(residual_block(features) for _ in range(blocks))
    self.body_end = nn.Sequential(nn.Conv2d(features, features, 3, padding=1, bias=False), nn.BatchNorm2d(features))
    self.upsample = nn.Sequential(*[layer for _ in range(2) for layer in (
        nn.Conv2d(features, 4 * features, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(features, 0.25))])
    self.tail = nn.Conv2d(features, channels, 9, padding=4)

  def forward(self, lr):
    x = skip = self.head(lr)
    for block in self.blocks:
      x = x + block(x)
    return self.tail(self.upsample(skip + self.body_end(x)))


def discriminator(features: int, dense: int, side: int, channels: int) -> nn.Module:
  layers, c_in = [], channels
  for i in range(8):
    width = features * 2 ** (i // 2)
    layers.append(nn.Conv2d(c_in, width, 3, stride=1 + i % 2, padding=1, bias=not i))
    if i:
      layers.append(nn.BatchNorm2d(width))
    layers.append(nn.LeakyReLU(0.2))
    c_in = width
  final = side // 16
  return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * final * final, dense), nn.LeakyReLU(0.2),
                       nn.Linear(dense, 1))


def parameter_count(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


def make_torch_srgan_step(config, seed: int = 0, channels_last: bool = True) -> Callable[[], dict]:
  """step() -> {"d_loss", "g_loss"}: one SRGAN iteration on a fixed random HR/LR batch.

  `channels_last`: networks and batch in torch.channels_last (NHWC) memory, PyTorch's faster form here: oneDNN's
  convolutions then skip their layout reorders. The step 1.16x faster (334 against 387 ms, one core's CPU time,
  interleaved, loaded machine, commit a8b1c62), so the benchmark compares against it.
  """
  if config.model.content != "mse":
    raise ValueError("The PyTorch SRGAN reference has the MSE content loss only; time --config.model.content=mse.")
  torch.manual_seed(seed)
  model, side, channels = config.model, config.data.resolution, config.data.channels
  batch = config.train.batch_size
  net_g = SRResNet(model.blocks, model.features, channels)
  net_d = discriminator(model.d_features, model.d_dense, side, channels)
  if channels_last:  # before the optimizers take the parameters
    for net in (net_g, net_d):
      net.to(memory_format=torch.channels_last)
  opt_g, opt_d = (torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.999)) for net in (net_g, net_d))
  bce, mse = nn.BCEWithLogitsLoss(), nn.MSELoss()
  hr = torch.rand(batch, channels, side, side) * 2 - 1
  lr = torch.rand(batch, channels, side // SCALE, side // SCALE)
  if channels_last:
    hr, lr = (x.contiguous(memory_format=torch.channels_last) for x in (hr, lr))

  def step() -> dict:
    sr = net_g(lr)
    for p in net_d.parameters():
      p.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    real, fake = net_d(hr), net_d(sr.detach())
    d_loss = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    d_loss.backward()
    opt_d.step()
    for p in net_d.parameters():
      p.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    scores = net_d(sr)
    g_loss = mse(sr, hr) + model.adversarial_weight * bce(scores, torch.ones_like(scores))
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

  step.networks = {"g": net_g, "d": net_d}
  return step
