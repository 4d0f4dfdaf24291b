"""The networks of pix2pix and CycleGAN, exact to the official `models/networks.py`.

junyanz/pytorch-CycleGAN-and-pix2pix (commit 2a7afba, networks.py unchanged since c95974f) builds both
papers from one file: `UnetGenerator`, `ResnetGenerator`, `NLayerDiscriminator` (the PatchGAN; n_layers 3
is the 70x70 PatchGAN), `PixelDiscriminator` and `get_norm_layer`. These are the same networks in Linen,
NHWC. Submodule names mirror the PyTorch state-dict keys ("model.10.conv_block.1" is `model_10/conv_block_1`)
so convert.py maps weights mechanically.

Facts of the official code kept here:
  * norm "instance" is InstanceNorm2d(affine=False): no parameters, per-sample statistics in train and eval;
    "batch" is BatchNorm2d with scale and bias and running statistics (used only in eval mode); "none" is
    the identity. Convolutions feeding a norm have a bias only for instance norm (`use_bias`), which also
    makes them bias-free for "none", as the official code does.
  * `train` is PyTorch's train()/eval(): batch statistics and dropout on, or running statistics and no
    dropout. The official test.py keeps train() unless --eval (pix2pix's test-time noise).
  * The U-Net's non-outermost blocks concatenate LeakyReLU(x) and the block's output: PyTorch's in-place
    LeakyReLU overwrites the skip tensor. The parent's ReLU makes it equal to a plain skip at the output.
  * Transposed convolutions go through gans.layers (PyTorch semantics, fast forms); `fast_layers=False`
    computes the same convolutions with XLA's own operators instead (lax.conv_transpose), for parity tests.
    The U-Net's store their kernels (C_in, kH, kW, C_out) (layers.ConvTransposeIHWO, in both paths): its
    inner layers are kernel-bound, and that layout is the one their fast form reads and writes.
Initialisation is the official init_weights('normal', 0.02): conv kernels N(0, 0.02^2), biases 0, batch-norm
scales N(1, 0.02^2).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from gans import layers

NORMS = ("batch", "instance", "none")
PADDINGS = {"reflect": "reflect", "replicate": "edge", "zero": None}
_init = nn.initializers.normal(0.02)
INSTANCE_NORM_EPS = 1e-5


def _scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def check_norm(norm: str) -> None:
  if norm not in NORMS:
    raise ValueError(f"Unknown norm {norm!r}; valid: {', '.join(NORMS)} (the official get_norm_layer's).")


def conv_bias(norm: str) -> bool:
  """The official `use_bias`: convolutions followed by a norm layer have a bias only with instance norm."""
  return norm == "instance"


def instance_norm(x_NHWC: jax.Array) -> jax.Array:
  """InstanceNorm2d(affine=False): per-sample, per-channel spatial mean and biased variance."""
  mean = jnp.mean(x_NHWC, axis=(1, 2), keepdims=True)
  var = jnp.mean(jnp.square(x_NHWC - mean), axis=(1, 2), keepdims=True)
  return (x_NHWC - mean) * jax.lax.rsqrt(var + INSTANCE_NORM_EPS)


def norm_layer(norm: str, train: bool, name: str):
  """The layer get_norm_layer(norm) builds, as a callable; `name` is its PyTorch index ("model_2")."""
  if norm == "batch":
    # PyTorch's momentum 0.1 is Flax's 0.9 (the weight of the old running value).
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, scale_init=_scale_init,
                        name=name)
  if norm == "instance":
    return instance_norm
  return lambda x: x


class _ReferenceConvTranspose(nn.Module):
  """layers.ConvTranspose's parameters and semantics through lax.conv_transpose (the slow, plain form)."""
  features: int
  kernel_size: int
  strides: int
  padding: int
  output_padding: int = 0
  use_bias: bool = True
  ihwo: bool = False  # the kernel stored (C_in, kH, kW, C_out), as layers.ConvTransposeIHWO

  @nn.compact
  def __call__(self, x_NHWC):
    shape = (self.kernel_size, self.kernel_size, x_NHWC.shape[-1], self.features)
    if self.ihwo:
      kernel = self.param("kernel", lambda key, _: _init(key, shape).transpose(2, 0, 1, 3),
                          (shape[2], shape[0], shape[1], shape[3])).transpose(1, 2, 0, 3)
    else:
      kernel = self.param("kernel", _init, shape)
    y = layers.conv_transpose_reference(x_NHWC, kernel, self.strides, self.padding, self.output_padding)
    return y + self.param("bias", nn.initializers.zeros_init(), (self.features,)) if self.use_bias else y


def conv(fast: bool, features: int, kernel: int, stride: int = 1, padding: int = 0, use_bias: bool = True,
         name: str | None = None) -> nn.Module:
  """PyTorch's Conv2d(kernel, stride, zero padding); kernel (kH, kW, C_in, C_out)."""
  if fast:
    return layers.Conv(features, kernel, strides=stride, padding=padding, use_bias=use_bias, kernel_init=_init,
                       name=name)
  return nn.Conv(features, (kernel, kernel), strides=stride, padding=[(padding, padding)] * 2, use_bias=use_bias,
                 kernel_init=_init, name=name)


def conv_transpose(fast: bool, features: int, kernel: int, stride: int, padding: int, output_padding: int = 0,
                   use_bias: bool = True, name: str | None = None, ihwo: bool = False) -> nn.Module:
  """PyTorch's ConvTranspose2d; kernel in gans.layers' scatter form (kH, kW, C_in, C_out), or with `ihwo` stored
  (C_in, kH, kW, C_out) (layers.ConvTransposeIHWO)."""
  if fast:
    module = layers.ConvTransposeIHWO if ihwo else layers.ConvTranspose
    return module(features, kernel, strides=stride, padding=padding, output_padding=output_padding,
                  use_bias=use_bias, kernel_init=_init, name=name)
  return _ReferenceConvTranspose(features, kernel, stride, padding, output_padding, use_bias, ihwo, name=name)


def pad(x_NHWC: jax.Array, width: int, padding_type: str) -> jax.Array:
  """ReflectionPad2d / ReplicationPad2d (numpy's "reflect" / "edge")."""
  return jnp.pad(x_NHWC, ((0, 0), (width, width), (width, width), (0, 0)), mode=PADDINGS[padding_type])


# ----------------------------------------------------------------------------- U-Net

class UnetSkipConnectionBlock(nn.Module):
  """One level of the U-Net and, inside it, the levels below: down, inner levels, up.

  `levels[0]` is this level's (outer_nc, inner_nc, use_dropout), `levels[1:]` the inner ones; the last level
  is the innermost. Layers are named by their official indices.
  """
  levels: tuple[tuple[int, int, bool], ...]
  outermost: bool = False
  norm: str = "batch"
  fast_layers: bool = True

  @nn.compact
  def __call__(self, x_NHWC, train: bool):
    (outer_nc, inner_nc, use_dropout), fast = self.levels[0], self.fast_layers
    use_bias = conv_bias(self.norm)

    def inner(name):
      return UnetSkipConnectionBlock(self.levels[1:], norm=self.norm, fast_layers=fast, name=name)

    if self.outermost:
      h = conv(fast, inner_nc, 4, 2, 1, use_bias, name="model_0")(x_NHWC)
      h = inner("model_1")(h, train)
      # The outermost transposed conv keeps its bias whatever the norm.
      h = conv_transpose(fast, outer_nc, 4, 2, 1, name="model_3", ihwo=True)(nn.relu(h))
      self.sow("intermediates", "pre_tanh", h)
      return jnp.tanh(h)
    skip = nn.leaky_relu(x_NHWC, 0.2)  # the in-place LeakyReLU has overwritten the skip (module docstring)
    h = conv(fast, inner_nc, 4, 2, 1, use_bias, name="model_1")(skip)
    if len(self.levels) == 1:  # innermost: no norm before the up path
      h = conv_transpose(fast, outer_nc, 4, 2, 1, use_bias=use_bias, name="model_3", ihwo=True)(nn.relu(h))
      h = norm_layer(self.norm, train, "model_4")(h)
    else:
      h = norm_layer(self.norm, train, "model_2")(h)
      h = inner("model_3")(h, train)
      h = conv_transpose(fast, outer_nc, 4, 2, 1, use_bias=use_bias, name="model_5", ihwo=True)(nn.relu(h))
      h = norm_layer(self.norm, train, "model_6")(h)
      if use_dropout:
        h = nn.Dropout(0.5, deterministic=not train)(h)
    return jnp.concatenate([skip, h], axis=-1)


def unet_levels(output_nc: int, num_downs: int, ngf: int, use_dropout: bool) -> tuple[tuple[int, int, bool], ...]:
  """(outer_nc, inner_nc, use_dropout) from the outermost level in, as UnetGenerator builds them."""
  middle = ((ngf * 8, ngf * 8, use_dropout),) * (num_downs - 5)
  return ((output_nc, ngf, False), (ngf, ngf * 2, False), (ngf * 2, ngf * 4, False), (ngf * 4, ngf * 8, False)
          ) + middle + ((ngf * 8, ngf * 8, False),)


class UnetGenerator(nn.Module):
  """UnetGenerator(input_nc, output_nc, num_downs, ngf, norm_layer, use_dropout); unet_256 = 8 downs, unet_128 = 7.

  An input of 2^num_downs pixels reaches 1x1 at the bottom; the num_downs - 5 blocks between the four outer
  levels and the innermost one have ngf*8 channels and, with use_dropout, Dropout(0.5) after their up path.
  """
  output_nc: int  # output image channels
  num_downs: int  # downsamplings; the input side must be divisible by 2^num_downs
  ngf: int = 64  # channels of the outermost level (doubling to ngf*8)
  norm: str = "batch"  # get_norm_layer's name
  use_dropout: bool = False  # pix2pix: True (the official default; --no_dropout turns it off)
  fast_layers: bool = True  # gans.layers' convolutions; False = XLA's own (parity tests)

  @nn.compact
  def __call__(self, x_NHWC, train: bool):
    check_norm(self.norm)
    if self.num_downs < 5:
      raise ValueError(f"UnetGenerator needs num_downs >= 5 (the official construction), got {self.num_downs}.")
    if x_NHWC.shape[1] % 2 ** self.num_downs or x_NHWC.shape[2] % 2 ** self.num_downs:
      raise ValueError(f"A U-Net with num_downs={self.num_downs} needs image sides divisible by "
                       f"{2 ** self.num_downs}; got {x_NHWC.shape[1]}x{x_NHWC.shape[2]}.")
    levels = unet_levels(self.output_nc, self.num_downs, self.ngf, self.use_dropout)
    return UnetSkipConnectionBlock(levels, outermost=True, norm=self.norm, fast_layers=self.fast_layers,
                                   name="model")(x_NHWC, train)


# ----------------------------------------------------------------------------- ResNet

class ResnetBlock(nn.Module):
  """x + [pad, conv3x3, norm, ReLU, (dropout), pad, conv3x3, norm](x)."""
  dim: int
  padding_type: str = "reflect"
  norm: str = "instance"
  use_dropout: bool = False
  fast_layers: bool = True

  @nn.compact
  def __call__(self, x_NHWC, train: bool):
    use_bias, fast = conv_bias(self.norm), self.fast_layers
    zero_pad = 1 if self.padding_type == "zero" else 0
    reflect_pad = 1 - zero_pad  # the official Sequential holds a padding layer before each conv unless "zero"

    def padded(h):
      return h if zero_pad else pad(h, 1, self.padding_type)

    index = reflect_pad
    h = conv(fast, self.dim, 3, 1, zero_pad, use_bias, name=f"conv_block_{index}")(padded(x_NHWC))
    h = nn.relu(norm_layer(self.norm, train, f"conv_block_{index + 1}")(h))
    index += 3 + reflect_pad
    if self.use_dropout:
      h = nn.Dropout(0.5, deterministic=not train)(h)
      index += 1
    h = conv(fast, self.dim, 3, 1, zero_pad, use_bias, name=f"conv_block_{index}")(padded(h))
    h = norm_layer(self.norm, train, f"conv_block_{index + 1}")(h)
    return x_NHWC + h


class ResnetGenerator(nn.Module):
  """ResnetGenerator(input_nc, output_nc, ngf, norm_layer, use_dropout, n_blocks, padding_type).

  resnet_9blocks / resnet_6blocks: reflection pad 3 + conv7x7, two stride-2 conv3x3 downsamplings, n_blocks
  residual blocks at ngf*4 channels, two ConvTranspose2d(3, stride 2, padding 1, output_padding 1)
  upsamplings, reflection pad 3 + conv7x7 (with bias) and tanh.
  """
  output_nc: int  # output image channels
  ngf: int = 64  # channels after the first conv
  norm: str = "instance"  # get_norm_layer's name (CycleGAN: instance)
  use_dropout: bool = False  # dropout inside the residual blocks (CycleGAN: off)
  n_blocks: int = 9  # residual blocks
  padding_type: str = "reflect"  # of the residual blocks: reflect | replicate | zero
  fast_layers: bool = True  # gans.layers' convolutions; False = XLA's own (parity tests)

  @nn.compact
  def __call__(self, x_NHWC, train: bool):
    check_norm(self.norm)
    if self.padding_type not in PADDINGS:
      raise ValueError(f"Unknown padding_type {self.padding_type!r}; valid: {', '.join(PADDINGS)}.")
    if x_NHWC.shape[1] % 4 or x_NHWC.shape[2] % 4:
      raise ValueError(f"ResnetGenerator needs image sides divisible by 4; got {x_NHWC.shape[1]}x{x_NHWC.shape[2]}.")
    use_bias, fast, ngf = conv_bias(self.norm), self.fast_layers, self.ngf
    h = conv(fast, ngf, 7, 1, 0, use_bias, name="model_1")(pad(x_NHWC, 3, "reflect"))
    h = nn.relu(norm_layer(self.norm, train, "model_2")(h))
    index = 4
    for i in range(2):
      h = conv(fast, ngf * 2 ** (i + 1), 3, 2, 1, use_bias, name=f"model_{index}")(h)
      h = nn.relu(norm_layer(self.norm, train, f"model_{index + 1}")(h))
      index += 3
    self.sow("intermediates", "after_downsampling", h)
    for _ in range(self.n_blocks):
      h = ResnetBlock(ngf * 4, self.padding_type, self.norm, self.use_dropout, fast, name=f"model_{index}")(h, train)
      index += 1
    self.sow("intermediates", "after_resblocks", h)
    for i in range(2):
      h = conv_transpose(fast, ngf * 2 ** (1 - i), 3, 2, 1, output_padding=1, use_bias=use_bias,
                         name=f"model_{index}")(h)
      h = nn.relu(norm_layer(self.norm, train, f"model_{index + 1}")(h))
      index += 3
    h = conv(fast, self.output_nc, 7, 1, 0, name=f"model_{index + 1}")(pad(h, 3, "reflect"))
    self.sow("intermediates", "pre_tanh", h)
    return jnp.tanh(h)


# ----------------------------------------------------------------------------- discriminators

class NLayerDiscriminator(nn.Module):
  """The PatchGAN: NLayerDiscriminator(input_nc, ndf, n_layers, norm_layer); raw scores, one per patch.

  n_layers = 3 ("basic") classifies 70x70 patches. Convs 4x4 with padding 1: stride 2 for the first
  n_layers, then stride 1 to ndf*min(2^n_layers, 8) channels and stride 1 to one channel.
  """
  ndf: int = 64  # channels of the first conv
  n_layers: int = 3  # stride-2 convs
  norm: str = "batch"
  fast_layers: bool = True

  @nn.compact
  def __call__(self, x_NHWC, train: bool):
    check_norm(self.norm)
    use_bias, fast = conv_bias(self.norm), self.fast_layers
    h = nn.leaky_relu(conv(fast, self.ndf, 4, 2, 1, name="model_0")(x_NHWC), 0.2)
    index = 2
    for n in range(1, self.n_layers + 1):
      stride = 2 if n < self.n_layers else 1
      h = conv(fast, self.ndf * min(2 ** n, 8), 4, stride, 1, use_bias, name=f"model_{index}")(h)
      h = nn.leaky_relu(norm_layer(self.norm, train, f"model_{index + 1}")(h), 0.2)
      index += 3
    return conv(fast, 1, 4, 1, 1, name=f"model_{index}")(h)


class PixelDiscriminator(nn.Module):
  """PixelDiscriminator(input_nc, ndf, norm_layer): a 1x1 PatchGAN ("pixel"), one raw score per pixel."""
  ndf: int = 64
  norm: str = "batch"
  fast_layers: bool = True

  @nn.compact
  def __call__(self, x_NHWC, train: bool):
    check_norm(self.norm)
    use_bias, fast = conv_bias(self.norm), self.fast_layers
    h = nn.leaky_relu(conv(fast, self.ndf, 1, name="net_0")(x_NHWC), 0.2)
    h = conv(fast, self.ndf * 2, 1, use_bias=use_bias, name="net_2")(h)
    h = nn.leaky_relu(norm_layer(self.norm, train, "net_3")(h), 0.2)
    return conv(fast, 1, 1, use_bias=use_bias, name="net_5")(h)


# ----------------------------------------------------------------------------- define_G / define_D by name

GENERATORS = ("unet_128", "unet_256", "unet", "resnet_9blocks", "resnet_6blocks", "resnet")
DISCRIMINATORS = ("basic", "n_layers", "pixel")


def define_generator(name: str, output_nc: int, ngf: int = 64, norm: str = "batch", use_dropout: bool = False,
                     num_downs: int | None = None, n_blocks: int | None = None, fast_layers: bool = True) -> nn.Module:
  """define_G's names; "unet" with `num_downs` is a U-Net of any depth (5 for 32x32 images), "resnet" with
  `n_blocks` a ResNet generator with any number of residual blocks."""
  blocks = {"resnet_9blocks": 9, "resnet_6blocks": 6, "resnet": n_blocks}
  downs = {"unet_128": 7, "unet_256": 8, "unet": num_downs}
  if name not in blocks and name not in downs:
    raise ValueError(f"Unknown generator {name!r}; valid: {', '.join(GENERATORS)}.")
  if name in blocks:
    if blocks[name] is None:
      raise ValueError("generator 'resnet' needs n_blocks (model.n_blocks).")
    return ResnetGenerator(output_nc, ngf, norm, use_dropout, blocks[name], fast_layers=fast_layers)
  if downs[name] is None:
    raise ValueError("generator 'unet' needs num_downs (model.num_downs): log2 of the image side.")
  return UnetGenerator(output_nc, downs[name], ngf, norm, use_dropout, fast_layers)


def define_discriminator(name: str, ndf: int = 64, n_layers: int = 3, norm: str = "batch",
                         fast_layers: bool = True) -> nn.Module:
  """define_D's names: basic (the 70x70 PatchGAN), n_layers (n_layers stride-2 convs), pixel (1x1 patches)."""
  if name == "basic":
    return NLayerDiscriminator(ndf, 3, norm, fast_layers)
  if name == "n_layers":
    return NLayerDiscriminator(ndf, n_layers, norm, fast_layers)
  if name == "pixel":
    return PixelDiscriminator(ndf, norm, fast_layers)
  raise ValueError(f"Unknown discriminator {name!r}; valid: {', '.join(DISCRIMINATORS)}.")
