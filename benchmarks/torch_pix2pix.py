"""PyTorch reference of pix2pix's networks and training step, for speed comparisons only.

Written here from the pix2pix and CycleGAN papers (Isola et al. 2017, appendix 6.1; Zhu et al. 2017,
appendix 7.2) and the architecture facts gans/variants/image2image/networks.py documents for the official
models/networks.py (the same layers, channels, norms and bias rules), so the parameter counts equal the
Flax networks' (tests/test_image2image_runs.py checks them). The networks live here and torch_cyclegan.py
imports them:

  UNet(output_nc, num_downs, ngf, norm, use_dropout): 4x4 stride-2 convs down to 1x1 (LeakyReLU 0.2, norm
    on all but the outermost and innermost), 4x4 stride-2 transposed convs up (ReLU, norm, Dropout(0.5) in
    the num_downs - 5 middle ngf*8 levels), each level's output concatenated with its input, tanh.
  ResNet(output_nc, ngf, norm, use_dropout, n_blocks): reflection pad 3 + conv7x7, two stride-2 conv3x3,
    n_blocks residual blocks (reflection pad, conv3x3, norm, ReLU, pad, conv3x3, norm), two transposed
    conv3x3 (stride 2, padding 1, output_padding 1), reflection pad 3 + conv7x7, tanh.
  PatchGAN(ndf, n_layers, norm): 4x4 convs with padding 1, stride 2 for the first n_layers, then stride 1
    to ndf*min(2^n_layers, 8) and to one raw score per patch; LeakyReLU 0.2; norm on all but the first.
  Norms: "batch" = BatchNorm2d (affine), "instance" = InstanceNorm2d without affine parameters; convs
  followed by a norm have a bias only with instance norm; init N(0, 0.02).

One pix2pix step (models/pix2pix_model.py's order): fake = G(A); D update on 0.5 * (BCE(D(A, fake), 0) +
BCE(D(A, B), 1)) (two D calls, so batch norm sees each batch alone); G update on BCE(D(A, fake), 1) +
100 * L1(fake, B), D's parameters frozen. Adam(2e-4, betas (0.5, 0.999)). Inputs are the crop size: the
official data loader jitters on the host (the JAX step crops on the device inside its step).

Torch is optional for the project; import this module only where torch exists.

    python benchmarks/torch_pix2pix.py --resolution=256 --batch_size=1
"""
import argparse
from typing import Callable

import torch
from torch import nn


def _norm(norm: str, channels: int) -> nn.Module:
  if norm == "batch":
    return nn.BatchNorm2d(channels)
  if norm == "instance":
    return nn.InstanceNorm2d(channels, affine=False)
  return nn.Identity()


def init_normal(module: nn.Module) -> None:
  """Conv weights N(0, 0.02), biases 0, batch-norm scales N(1, 0.02)."""
  if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
    nn.init.normal_(module.weight, 0.0, 0.02)
    if module.bias is not None:
      nn.init.zeros_(module.bias)
  elif isinstance(module, nn.BatchNorm2d):
    nn.init.normal_(module.weight, 1.0, 0.02)
    nn.init.zeros_(module.bias)


class UNetLevel(nn.Module):
  """One U-Net level around the levels inside it; `levels[0]` = (outer, inner, dropout) of this one."""

  def __init__(self, input_nc: int, levels, norm: str, outermost: bool = False):
    super().__init__()
    outer, inner, dropout = levels[0]
    bias = norm == "instance"
    self.outermost = outermost
    down = nn.Conv2d(input_nc, inner, 4, 2, 1, bias=bias)
    if outermost:
      up = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1)
      self.body = nn.Sequential(down, UNetLevel(inner, levels[1:], norm), nn.ReLU(), up, nn.Tanh())
    elif len(levels) == 1:
      up = nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias)
      self.body = nn.Sequential(down, nn.ReLU(), up, _norm(norm, outer))
    else:
      up = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=bias)
      layers = [down, _norm(norm, inner), UNetLevel(inner, levels[1:], norm), nn.ReLU(), up,
                _norm(norm, outer)]
      self.body = nn.Sequential(*layers + ([nn.Dropout(0.5)] if dropout else []))

  def forward(self, x):
    if self.outermost:
      return self.body(x)
    # The skip is the input after the LeakyReLU, as the official in-place activation leaves it.
    skip = nn.functional.leaky_relu(x, 0.2)
    return torch.cat([skip, self.body(skip)], 1)


def unet(input_nc: int, output_nc: int, num_downs: int, ngf: int = 64, norm: str = "batch",
         use_dropout: bool = False) -> nn.Module:
  middle = [(ngf * 8, ngf * 8, use_dropout)] * (num_downs - 5)
  levels = [(output_nc, ngf, False), (ngf, ngf * 2, False), (ngf * 2, ngf * 4, False), (ngf * 4, ngf * 8, False)
            ] + middle + [(ngf * 8, ngf * 8, False)]
  return UNetLevel(input_nc, levels, norm, outermost=True)


class ResidualBlock(nn.Module):
  def __init__(self, dim: int, norm: str, use_dropout: bool):
    super().__init__()
    bias = norm == "instance"
    layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(norm, dim), nn.ReLU()]
    layers += [nn.Dropout(0.5)] if use_dropout else []
    layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(norm, dim)]
    self.body = nn.Sequential(*layers)

  def forward(self, x):
    return x + self.body(x)


def resnet(input_nc: int, output_nc: int, ngf: int = 64, norm: str = "instance", use_dropout: bool = False,
           n_blocks: int = 9) -> nn.Module:
  bias = norm == "instance"
  layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), _norm(norm, ngf), nn.ReLU()]
  for i in range(2):
    layers += [nn.Conv2d(ngf * 2 ** i, ngf * 2 ** (i + 1), 3, 2, 1, bias=bias), _norm(norm, ngf * 2 ** (i + 1)),
               nn.ReLU()]
  layers += [ResidualBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)]
  for i in range(2):
    channels = ngf * 2 ** (2 - i)
    layers += [nn.ConvTranspose2d(channels, channels // 2, 3, 2, 1, output_padding=1, bias=bias),
               _norm(norm, channels // 2), nn.ReLU()]
  layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
  return nn.Sequential(*layers)


def patchgan(input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> nn.Module:
  bias = norm == "instance"
  layers = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
  channels = ndf
  for n in range(1, n_layers + 1):
    out = ndf * min(2 ** n, 8)
    layers += [nn.Conv2d(channels, out, 4, 2 if n < n_layers else 1, 1, bias=bias), _norm(norm, out),
               nn.LeakyReLU(0.2)]
    channels = out
  layers += [nn.Conv2d(channels, 1, 4, 1, 1)]
  return nn.Sequential(*layers)


def generator(name: str, channels: int, model) -> nn.Module:
  """define_G's names, as gans/variants/image2image/networks.define_generator reads them from config.model."""
  if name.startswith("resnet"):
    blocks = {"resnet_9blocks": 9, "resnet_6blocks": 6}.get(name, model.get("n_blocks", 9))
    return resnet(channels, channels, model.ngf, model.norm, model.use_dropout, blocks)
  downs = {"unet_256": 8, "unet_128": 7}.get(name, model.get("num_downs", 8))
  return unet(channels, channels, downs, model.ngf, model.norm, model.use_dropout)


def discriminator(input_nc: int, model) -> nn.Module:
  n_layers = 3 if model.discriminator == "basic" else model.n_layers_d
  return patchgan(input_nc, model.ndf, n_layers, model.norm)


def parameter_count(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


def adam(module: nn.Module, learning_rate: float = 2e-4) -> torch.optim.Optimizer:
  return torch.optim.Adam(module.parameters(), lr=learning_rate, betas=(0.5, 0.999))


# The references' memory format. NCHW is PyTorch's faster form here (unlike DCGAN's, SpecGAN's and SRGAN's
# references): channels_last against NCHW, both steps interleaved in one process (2 threads, allocator tuned,
# loaded 2-core machine, load 9-13): pix2pix_facades 0.89x, pix2pix_edges2fashion 0.68x. cyclegan_edges2fashion
# ran 2.5x faster in channels_last in one short run (3 blocks, load 8-18, both forms ~50x slower than idle), not
# trusted: to be measured on an idle machine before torch_cyclegan's default changes.
CHANNELS_LAST = False


def make_torch_pix2pix_step(config, seed: int = 0, channels_last: bool = CHANNELS_LAST) -> Callable[[], dict]:
  """step() -> {"d_loss", "g_loss"}: one pix2pix iteration on a fixed random pair batch at the crop size.

  `channels_last`: networks and batch in torch.channels_last memory (see CHANNELS_LAST).
  """
  torch.manual_seed(seed)
  model, channels = config.model, config.data.channels
  side = config.data.get("crop_size", 0) or config.data.resolution
  batch = config.train.batch_size
  net_g = generator(model.generator, channels, model)
  net_d = discriminator(2 * channels, model)
  net_g.apply(init_normal)
  net_d.apply(init_normal)
  if channels_last:  # before the optimizers take the parameters
    for net in (net_g, net_d):
      net.to(memory_format=torch.channels_last)
  opt_g, opt_d = adam(net_g), adam(net_d)
  bce, lambda_l1 = nn.BCEWithLogitsLoss(), model.lambda_l1
  real_a = torch.rand(batch, channels, side, side) * 2 - 1
  real_b = torch.rand(batch, channels, side, side) * 2 - 1
  if channels_last:
    real_a, real_b = (x.contiguous(memory_format=torch.channels_last) for x in (real_a, real_b))

  def gan_loss(scores, real: bool):
    return bce(scores, torch.full_like(scores, 1.0 if real else 0.0))

  def step() -> dict:
    fake_b = net_g(real_a)
    for p in net_d.parameters():
      p.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    d_loss = 0.5 * (gan_loss(net_d(torch.cat([real_a, fake_b.detach()], 1)), False)
                    + gan_loss(net_d(torch.cat([real_a, real_b], 1)), True))
    d_loss.backward()
    opt_d.step()
    for p in net_d.parameters():
      p.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    g_loss = gan_loss(net_d(torch.cat([real_a, fake_b], 1)), True) + lambda_l1 * (fake_b - real_b).abs().mean()
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

  step.networks = {"g": net_g, "d": net_d}
  return step


def main():
  import experiments  # pylint: disable=import-outside-toplevel
  from benchmarks import timing  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--experiment", default="pix2pix_facades")
  args = parser.parse_args()
  config = experiments.get_config(args.experiment)
  step = make_torch_pix2pix_step(config)
  seconds = timing.median_seconds(step, calls=5)
  print(f"torch {torch.__version__} threads={torch.get_num_threads()} {args.experiment}: {seconds * 1e3:.1f} ms/step, "
        f"{config.train.batch_size / seconds:.1f} images/s")


if __name__ == "__main__":
  main()
