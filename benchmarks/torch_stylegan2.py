"""The StyleGAN2 main training step (d_main, g_main) in PyTorch: the reference benchmarks/train_step.py times.

Written for this benchmark from the paper (Karras et al. 2020), not taken from NVlabs' code: the same
architecture as gans/variants/stylegan2 builds from an experiment's config (mapping network, skip generator
with non-fused modulated/demodulated convs, per-pixel noise, residual discriminator with minibatch std,
[1 3 3 1] FIR resampling, equalised learning rate, conv clamp), the same losses (logistic D, non-saturating
G), style mixing, and Adam with the config's settings. Computed the way PyTorch on a CPU runs it well:
NCHW, transposed strided convs for upsampling, depthwise convs for the blur (as the official code).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gans.variants.stylegan2 import channels_from_base, model_settings

SQRT2 = math.sqrt(2.0)
BLUR = torch.tensor([1.0, 3.0, 3.0, 1.0])
BLUR_2D = torch.outer(BLUR, BLUR) / BLUR.sum() ** 2  # normalised to sum 1


def lrelu(x, clamp=None):
  x = F.leaky_relu(x, 0.2) * SQRT2
  return x.clamp(-clamp, clamp) if clamp else x


def blur(x, pad, gain=1.0):
  """Depthwise [1 3 3 1]^2 filter with padding (before, after) on both spatial axes."""
  channels = x.shape[1]
  kernel = (BLUR_2D * gain).to(x.dtype).expand(channels, 1, 4, 4)
  return F.conv2d(F.pad(x, (pad[0], pad[1], pad[0], pad[1])), kernel, groups=channels)


def upsample_image(x):
  """2x: zero insertion, then the blur with gain 4."""
  n, c, h, w = x.shape
  up = torch.zeros(n, c, 2 * h, 2 * w, dtype=x.dtype)
  up[:, :, ::2, ::2] = x
  return blur(up, (2, 1), gain=4.0)


class Dense(nn.Module):
  def __init__(self, in_features, out_features, lr_multiplier=1.0, bias_init=0.0, activation=False):
    super().__init__()
    self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)  # raw, scaled at runtime
    self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))  # raw bias
    self.weight_gain = lr_multiplier / math.sqrt(in_features)  # equalised learning rate
    self.lr_multiplier = lr_multiplier  # scales the bias too, as the mapping network's
    self.activation = activation  # leaky ReLU * sqrt 2 after the affine map

  def forward(self, x):
    x = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_multiplier)
    return lrelu(x) if self.activation else x


class Conv(nn.Module):
  """Equalised-lr conv with optional blurred 2x downsampling (blur, then stride-2 conv)."""

  def __init__(self, in_channels, out_channels, kernel, down=False, bias=True, activation=True, clamp=None):
    super().__init__()
    self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))  # raw weight
    self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None  # raw bias
    self.weight_gain = 1 / math.sqrt(in_channels * kernel * kernel)  # equalised learning rate
    self.kernel, self.down = kernel, down  # kernel size; blurred 2x downsampling
    self.activation, self.clamp = activation, clamp  # leaky ReLU * sqrt 2; output clamp

  def forward(self, x, gain=1.0):
    w = self.weight * self.weight_gain
    if self.down and self.kernel == 1:
      x = F.conv2d(blur(x, (1, 1))[:, :, ::2, ::2], w)
    elif self.down:
      x = F.conv2d(blur(x, (2, 2)), w, stride=2)
    else:
      x = F.conv2d(x, w, padding=self.kernel // 2)
    if self.bias is not None:
      x = x + self.bias[None, :, None, None]
    if self.activation:
      return lrelu(x, self.clamp * gain if self.clamp else None) * gain
    return x * gain


class ModulatedConv(nn.Module):
  """Modulated 3x3 conv (demodulated, noise, bias, lrelu) or 1x1 toRGB (neither), not fused."""

  def __init__(self, w_dim, in_channels, out_channels, kernel, resolution, up=False, demodulate=True, clamp=None):
    super().__init__()
    self.affine = Dense(w_dim, in_channels, bias_init=1.0)  # w -> per-input-channel styles
    self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))  # raw weight
    self.bias = nn.Parameter(torch.zeros(out_channels))  # raw bias
    self.noise_strength = nn.Parameter(torch.zeros([])) if demodulate else None  # learned noise scale
    self.up, self.demodulate, self.kernel = up, demodulate, kernel  # 2x upsampling; demodulation; size
    self.resolution, self.clamp = resolution, clamp  # output size (for noise); output clamp

  def forward(self, x, w):
    styles = self.affine(w)
    weight = self.weight
    if not self.demodulate:  # toRGB: the equalised-lr scale goes on the styles
      styles = styles / math.sqrt(weight[0].numel())
    x = x * styles[:, :, None, None]
    if self.up:  # transposed stride-2 conv, then the blur with gain 4 (the paper's upsampling)
      x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
      x = blur(x, (1, 1), gain=4.0)
    else:
      x = F.conv2d(x, weight, padding=self.kernel // 2)
    if self.demodulate:
      dcoefs = (weight[None] * styles[:, None, :, None, None]).square().sum(dim=(2, 3, 4)).add(1e-8).rsqrt()
      x = x * dcoefs[:, :, None, None]
      noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution)
      x = x + noise * self.noise_strength
      return lrelu(x + self.bias[None, :, None, None], self.clamp)
    x = x + self.bias[None, :, None, None]
    return x.clamp(-self.clamp, self.clamp) if self.clamp else x


class Generator(nn.Module):
  def __init__(self, z_dim, w_dim, mapping_layers, resolution, img_channels, channels, clamp):
    super().__init__()
    self.mapping = nn.Sequential(*[Dense(z_dim if i == 0 else w_dim, w_dim, lr_multiplier=0.01, activation=True)
                                   for i in range(mapping_layers)])  # z -> w
    self.resolutions = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]  # 4 ... resolution
    self.const = nn.Parameter(torch.randn(channels[0], 4, 4))  # the learned constant input
    self.convs, self.torgbs = nn.ModuleList(), nn.ModuleList()  # per block: conv(s); toRGB
    for index, res in enumerate(self.resolutions):
      in_channels = channels[max(index - 1, 0)]
      block = [] if index == 0 else [ModulatedConv(w_dim, in_channels, channels[index], 3, res, up=True, clamp=clamp)]
      block.append(ModulatedConv(w_dim, channels[index], channels[index], 3, res, clamp=clamp))
      self.convs.append(nn.ModuleList(block))
      self.torgbs.append(ModulatedConv(w_dim, channels[index], img_channels, 1, res, demodulate=False, clamp=clamp))
    self.num_ws = 2 * len(self.resolutions)  # one w per conv plus the last toRGB

  def map(self, z):
    z = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
    return self.mapping(z)[:, None].repeat(1, self.num_ws, 1)

  def synthesize(self, ws):
    x = self.const[None].repeat(ws.shape[0], 1, 1, 1)
    img, w_index = None, 0
    for block, torgb in zip(self.convs, self.torgbs):
      for conv in block:
        x = conv(x, ws[:, w_index])
        w_index += 1
      y = torgb(x, ws[:, w_index])
      img = y if img is None else upsample_image(img) + y
    return img


class Discriminator(nn.Module):
  def __init__(self, resolution, img_channels, channels, mbstd_group_size, clamp):
    super().__init__()
    resolutions = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
    at = dict(zip(resolutions, channels))  # channels per resolution
    self.fromrgb = Conv(img_channels, at[resolution], 1, clamp=clamp)  # image -> features at the top
    self.blocks = nn.ModuleList(  # per resolution > 4: conv0, conv1 (down), skip (down)
      nn.ModuleList([Conv(at[res], at[res], 3, clamp=clamp), Conv(at[res], at[res // 2], 3, down=True, clamp=clamp),
                     Conv(at[res], at[res // 2], 1, down=True, bias=False, activation=False)])
      for res in reversed(resolutions[1:]))
    self.mbstd_group_size = mbstd_group_size  # samples per minibatch-std group
    self.conv = Conv(at[4] + 1, at[4], 3, clamp=clamp)  # epilogue conv after minibatch std
    self.fc = Dense(at[4] * 16, at[4], activation=True)  # epilogue fc
    self.out = Dense(at[4], 1)  # logits

  def forward(self, img):
    x = self.fromrgb(img)
    for conv0, conv1, skip in self.blocks:
      y = skip(x, gain=math.sqrt(0.5))
      x = y + conv1(conv0(x), gain=math.sqrt(0.5))
    n, c, h, w = x.shape
    group = min(self.mbstd_group_size, n)
    y = x.reshape(group, -1, 1, c, h, w)
    y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=(2, 3, 4))  # [n / group, 1]
    y = y.reshape(-1, 1, 1, 1).repeat(group, 1, h, w)
    x = self.conv(torch.cat([x, y], dim=1))
    return self.out(self.fc(x.flatten(1)))


def make_torch_stylegan2_step(config, augment=None):
  """step() running d_main then g_main on a fixed synthetic real batch, as the JAX benchmark does; `augment`
  (images -> images, e.g. the official ADA pipe of benchmarks/torch_augment.py) on every batch D sees."""
  model = model_settings(config.model)
  resolution, img_channels, batch = config.data.resolution, config.data.channels, config.train.batch_size
  channels = channels_from_base(resolution, model["channel_base"], model["channel_max"])
  clamp = model["conv_clamp"] or None
  torch.manual_seed(0)
  generator = Generator(model["z_dim"], model["w_dim"], model["mapping_layers"], resolution, img_channels, channels,
                        clamp)
  discriminator = Discriminator(resolution, img_channels, channels, model["mbstd_group_size"], clamp)
  judge = discriminator if augment is None else (lambda images: discriminator(augment(images)))
  optim = lambda params, c: torch.optim.Adam(params, lr=c.learning_rate, betas=(c.b1, c.b2), eps=c.eps)
  g_optimizer = optim(generator.parameters(), config.optim.g)
  d_optimizer = optim(discriminator.parameters(), config.optim.d)
  real = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (batch, img_channels, resolution, resolution))
                          .astype(np.float32))
  mixing_prob = model["style_mixing_prob"]

  def fakes():
    z = torch.randn(2 * batch, model["z_dim"])
    ws = generator.map(z)
    ws, other = ws[:batch], ws[batch:]
    if torch.rand([]) < mixing_prob:
      cutoff = int(torch.randint(1, ws.shape[1], []))
      ws = torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)
    return generator.synthesize(ws)

  def step():
    d_optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
      fake = fakes()
    d_loss = F.softplus(-judge(real)).mean() + F.softplus(judge(fake)).mean()
    d_loss.backward()
    d_optimizer.step()
    g_optimizer.zero_grad(set_to_none=True)
    for p in discriminator.parameters():
      p.requires_grad_(False)
    g_loss = F.softplus(-judge(fakes())).mean()
    g_loss.backward()
    for p in discriminator.parameters():
      p.requires_grad_(True)
    g_optimizer.step()
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

  return step
