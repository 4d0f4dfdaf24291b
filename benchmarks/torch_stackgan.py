"""PyTorch reference of StackGAN's networks and training step (either stage), for speed comparisons only.

Written here from the architecture facts gans/variants/text2image/networks.py documents for the official
StackGAN-Pytorch code/model.py (the same layers, channels, bias rules and the sizes that follow the resolution),
and the official trainer's iteration (code/trainer.py, miscc/utils.py) as gans/variants/text2image/stackgan.py
describes it:

  CA: Linear(TEXT.DIMENSION, 2 * CONDITION_DIM) + ReLU, split into mu and logvar, c = eps * exp(logvar / 2) + mu.
  Stage-I G: Linear(z + c -> GF_DIM*8 * 4 * 4, no bias), BN1d, ReLU; upBlocks (nearest x2, conv3x3 no bias, BN,
    ReLU) to the Stage-I side; conv3x3 to 3; tanh.
  Stage-II G: the frozen Stage-I G's picture (no gradient); conv3x3 + ReLU, two [conv 4x4 s2 p1, BN, ReLU]
    (GF_DIM*2, *4); joined with the tiled c; conv3x3 + BN + ReLU; R_NUM ResBlocks; upBlocks to the final side; conv3x3
    to 3; tanh.
  D: conv 4x4 s2 p1 + LeakyReLU(0.2), [conv 4x4 s2 p1, BN, LeakyReLU] to 4x4 (DF_DIM * 2^i channels); Stage-II D
    two more [conv3x3, BN, LeakyReLU] (DF_DIM*16, *8). Heads: the conditional one tiles mu, conv3x3 (DF_DIM*8), BN,
    LeakyReLU, conv 4x4 s4 (bias); the unconditional one (Stage-II) the conv 4x4 s4 alone.
  Text: with model.text_encoder = "char_cnn_rnn", the project's frozen char-CNN-RNN (gans/variants/text2image/
    gan_int_cls.py: one-hot characters, two [conv1d k4 + ReLU + maxpool 2], a GRU averaged over the characters, a
    Linear) encodes the batch's captions once per step, without gradients; else the embeddings are given.

One step (the official iteration): G's forward (fake, mu, logvar); D update on the official
compute_discriminator_loss (real and fake encoded separately; wrong pairs real_features[:N-1] with mu[1:]);
G update on compute_generator_loss + 2.0 * KL_loss, D's parameters frozen. BCE on logits (BCEWithLogitsLoss, the
same value as the official BCELoss of the sigmoid). Adam(2e-4, betas (0.5, 0.999)).

Torch is optional for the project; import this module only where torch exists.
"""
from typing import Callable

import torch
from torch import nn


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
  return nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)


def doublings(side: int) -> int:
  return side.bit_length() - 3


def up_block(in_channels: int, out_channels: int) -> nn.Sequential:
  return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(in_channels, out_channels),
                       nn.BatchNorm2d(out_channels), nn.ReLU(True))


class ResBlock(nn.Module):
  def __init__(self, channels: int):
    super().__init__()
    self.block = nn.Sequential(conv3x3(channels, channels), nn.BatchNorm2d(channels), nn.ReLU(True),
                               conv3x3(channels, channels), nn.BatchNorm2d(channels))

  def forward(self, x):
    return torch.relu(x + self.block(x))


class CondAugment(nn.Module):
  def __init__(self, text_dim: int, condition_dim: int):
    super().__init__()
    self.fc = nn.Linear(text_dim, 2 * condition_dim)
    self.condition_dim = condition_dim

  def forward(self, embedding):
    x = torch.relu(self.fc(embedding))
    mu, logvar = x[:, :self.condition_dim], x[:, self.condition_dim:]
    return torch.randn_like(mu) * torch.exp(0.5 * logvar) + mu, mu, logvar


class Stage1Generator(nn.Module):
  def __init__(self, model, side: int):
    super().__init__()
    ngf = model.g_channels * 8
    self.ngf = ngf
    self.ca = CondAugment(model.embedding_dim, model.condition_dim)
    self.fc = nn.Sequential(nn.Linear(model.z_dim + model.condition_dim, ngf * 16, bias=False),
                            nn.BatchNorm1d(ngf * 16), nn.ReLU(True))
    blocks = [up_block(ngf // 2 ** i, ngf // 2 ** (i + 1)) for i in range(doublings(side))]
    self.body = nn.Sequential(*blocks, conv3x3(ngf // 2 ** doublings(side), 3), nn.Tanh())

  def forward(self, embedding, z):
    c, mu, logvar = self.ca(embedding)
    h = self.fc(torch.cat([z, c], 1)).view(-1, self.ngf, 4, 4)
    return self.body(h), mu, logvar


class Stage2Generator(nn.Module):
  def __init__(self, model, stage1: Stage1Generator, stage1_side: int, side: int):
    super().__init__()
    ngf = model.g_channels
    self.stage1 = stage1
    for p in self.stage1.parameters():
      p.requires_grad_(False)  # the official Stage-II trainer: Stage-I frozen, its BatchNorms in train mode
    self.ca = CondAugment(model.embedding_dim, model.condition_dim)
    self.encoder = nn.Sequential(conv3x3(3, ngf), nn.ReLU(True),
                                 nn.Conv2d(ngf, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
                                 nn.Conv2d(ngf * 2, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4),
                                 nn.ReLU(True))
    self.joint = nn.Sequential(conv3x3(ngf * 4 + model.condition_dim, ngf * 4), nn.BatchNorm2d(ngf * 4), nn.ReLU(True))
    self.residual = nn.Sequential(*[ResBlock(ngf * 4) for _ in range(model.r_num)])
    ups = 2 + doublings(side) - doublings(stage1_side)
    widths = [ngf * 4] + [max(1, ngf * 2 // 2 ** i) for i in range(ups)]
    self.up = nn.Sequential(*[up_block(widths[i], widths[i + 1]) for i in range(ups)], conv3x3(widths[-1], 3),
                            nn.Tanh())

  def forward(self, embedding, z):
    stage1_img, _, _ = self.stage1(embedding, z)
    h = self.encoder(stage1_img.detach())
    c, mu, logvar = self.ca(embedding)
    h = torch.cat([h, c[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])], 1)
    return self.up(self.residual(self.joint(h))), mu, logvar


class Discriminator(nn.Module):
  def __init__(self, model, side: int, stage2: bool):
    super().__init__()
    ndf, n = model.d_channels, doublings(side)
    layers = [nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)] if n else []
    channels = ndf if n else 3
    for i in range(n - 1):
      layers += [nn.Conv2d(channels, ndf * 2 ** (i + 1), 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2 ** (i + 1)),
                 nn.LeakyReLU(0.2, True)]
      channels = ndf * 2 ** (i + 1)
    if stage2:
      for width in (16, 8):
        layers += [conv3x3(channels, ndf * width), nn.BatchNorm2d(ndf * width), nn.LeakyReLU(0.2, True)]
        channels = ndf * width
    self.encode = nn.Sequential(*layers)
    self.cond = nn.Sequential(conv3x3(channels + model.condition_dim, ndf * 8), nn.BatchNorm2d(ndf * 8),
                              nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * 8, 1, 4, 4))
    self.uncond = nn.Conv2d(channels, 1, 4, 4) if stage2 else None

  def cond_logits(self, h, mu):
    return self.cond(torch.cat([h, mu[:, :, None, None].expand(-1, -1, 4, 4)], 1)).view(-1)


class CharCnnRnn(nn.Module):
  """gan_int_cls.CharCnnRnn in PyTorch (forward only here)."""

  def __init__(self, vocabulary: int, model):
    super().__init__()
    self.vocabulary = vocabulary
    self.conv1 = nn.Conv1d(vocabulary, model.text_channels, 4, padding="same")
    self.conv2 = nn.Conv1d(model.text_channels, model.text_channels, 4, padding="same")
    self.gru = nn.GRU(model.text_channels, model.text_hidden, batch_first=True)
    self.out = nn.Linear(model.text_hidden, model.embedding_dim)

  def forward(self, ids):
    mask = (ids != 0).float()[:, None, :]
    h = nn.functional.one_hot(ids, self.vocabulary).float().transpose(1, 2)
    for conv in (self.conv1, self.conv2):
      h = nn.functional.max_pool1d(torch.relu(conv(h)), 2)
      mask = nn.functional.max_pool1d(mask, 2)
    outputs, _ = self.gru(h.transpose(1, 2))
    mask = mask[:, 0, :, None]
    return self.out((outputs * mask).sum(1) / mask.sum(1).clamp(min=1.0))


def init_weights(module: nn.Module) -> None:
  """The official weights_init: conv and linear weights N(0, 0.02), linear biases 0, BN scales N(1, 0.02)."""
  if isinstance(module, (nn.Conv2d, nn.Linear)):
    nn.init.normal_(module.weight, 0.0, 0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
      nn.init.zeros_(module.bias)
  elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
    nn.init.normal_(module.weight, 1.0, 0.02)
    nn.init.zeros_(module.bias)


def make_torch_stackgan_step(config, stage: int, seed: int = 0) -> Callable[[], dict]:
  """step() -> {"d_loss", "g_loss"}: one official iteration of `stage` (1 or 2) on a fixed random batch."""
  from gans.data import captions  # pylint: disable=import-outside-toplevel
  torch.manual_seed(seed)
  model, batch, side = config.model, config.train.batch_size, config.data.resolution
  stage1_side = model.stage1_resolution
  stage1 = Stage1Generator(model, stage1_side)
  net_g = stage1 if stage == 1 else Stage2Generator(model, stage1, stage1_side, side)
  net_d = Discriminator(model, stage1_side if stage == 1 else side, stage2=stage == 2)
  net_g.apply(init_weights)
  net_d.apply(init_weights)
  opt_g = torch.optim.Adam([p for p in net_g.parameters() if p.requires_grad], lr=2e-4, betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  bce = nn.BCEWithLogitsLoss()
  real_side = stage1_side if stage == 1 else side
  # The JAX step box-averages Stage-I's real pictures from the final-size batch; the official loader reads them at
  # their size, as here.
  real = torch.rand(batch, 3, real_side, real_side) * 2 - 1
  if model.text_encoder == "char_cnn_rnn":
    encoder = CharCnnRnn(len(captions.ALPHABET) + 1, model).requires_grad_(False)
    ids = torch.randint(1, 40, (batch, config.data.caption_length))
    embed = lambda: encoder(ids)
  else:
    given = torch.randn(batch, model.embedding_dim)
    embed = lambda: given
  ones, zeros = torch.ones(batch), torch.zeros(batch)

  def step() -> dict:
    embedding = embed()
    fake, mu, logvar = net_g(embedding, torch.randn(batch, model.z_dim))
    cond = mu.detach()
    for p in net_d.parameters():
      p.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    real_h, fake_h = net_d.encode(real), net_d.encode(fake.detach())
    err_real = bce(net_d.cond_logits(real_h, cond), ones)
    err_wrong = bce(net_d.cond_logits(real_h[:batch - 1], cond[1:]), zeros[1:])
    err_fake = bce(net_d.cond_logits(fake_h, cond), zeros)
    if net_d.uncond is None:
      d_loss = err_real + (err_fake + err_wrong) * 0.5
    else:
      uncond_real = bce(net_d.uncond(real_h).view(-1), ones)
      uncond_fake = bce(net_d.uncond(fake_h).view(-1), zeros)
      d_loss = (err_real + uncond_real) / 2 + (err_fake + err_wrong + uncond_fake) / 3
    d_loss.backward()
    opt_d.step()
    for p in net_d.parameters():
      p.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    fake_h = net_d.encode(fake)
    g_loss = bce(net_d.cond_logits(fake_h, cond), ones)
    if net_d.uncond is not None:
      g_loss = g_loss + bce(net_d.uncond(fake_h).view(-1), ones)
    kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
    g_loss = g_loss + model.kl_coefficient * kl
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

  step.networks = {"g": net_g, "d": net_d}
  return step
