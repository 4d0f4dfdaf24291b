"""The networks of StackGAN, exact to the official StackGAN-Pytorch `code/model.py`.

hanzhanggit/StackGAN-Pytorch (commit e72ef88; model.py unchanged since its first commit) builds both stages
from `CA_NET`, `STAGE1_G`, `STAGE1_D`, `STAGE2_G`, `STAGE2_D` and the helpers `D_GET_LOGITS`, `ResBlock`,
`upBlock`, `conv3x3`, sized by its cfg (TEXT.DIMENSION, GAN.CONDITION_DIM, Z_DIM, GAN.GF_DIM, GAN.DF_DIM,
GAN.R_NUM). These are the same networks in Linen, NHWC. Submodule names mirror the PyTorch state-dict keys
("residual.1.block.3" is `residual_1/block_3`, "encode_img.11" is `encode_img/11`) so convert.py maps
weights mechanically.

Facts of the official code kept here:
  * CA_NET applies ReLU to the whole fc output before splitting it into mu and logvar (both >= 0), and
    samples c = eps * exp(logvar / 2) + mu in train and eval alike. eps is an argument here (the parity
    tests pass the fixture's); without it it is drawn from the "noise" rng. STAGE2_G draws twice, in its
    inner STAGE1_G and in its own CA_NET, independently (`stage1_eps`, `eps`).
  * STAGE1_G: Linear (no bias) -> BatchNorm1d -> ReLU to gf_dim*8 x 4 x 4 (PyTorch's row-major NCHW view,
    then NHWC), four upBlocks (nearest x2, conv3x3 without bias, BN, ReLU), conv3x3 to 3 channels, tanh.
  * STAGE2_G holds a STAGE1_G (submodule "STAGE1_G"), whose image it stops the gradient of (`detach()`),
    encodes to 16x16, joins with the tiled c_code (after the image features), runs R_NUM ResBlocks
    (relu(x + [conv3x3, BN, ReLU, conv3x3, BN](x))) and four upBlocks to 4x the stage-1 size. Its `train`
    reaches the inner STAGE1_G as PyTorch's netG.train() does: the official stage-II trainer freezes the
    stage-I parameters (requires_grad False) but leaves its BatchNorms in train mode.
  * The discriminators encode the image to ndf*8 x 4 x 4 (`__call__` / `encode`); D_GET_LOGITS tiles the
    condition to 4x4, concatenates it after the features, conv3x3 (no bias), BN, LeakyReLU(0.2), conv k4 s4
    (bias); the unconditional head (stage II only) is the k4 s4 conv alone. The official heads end with a
    Sigmoid (trained with BCELoss); these return the scores before it (`jax.nn.sigmoid` gives the official
    probabilities; with logits a loss needs no clamp where the sigmoid saturates to 1.0 in float32).
  * `train` is PyTorch's train()/eval(): batch statistics (updating "batch_stats", momentum 0.1) or running
    statistics. There is no dropout.
  * Convolutions go through gans.layers (PyTorch's Conv2d semantics, fast forms); `fast_layers=False`
    computes them with XLA's own operator instead, for parity tests.
Sizes: the defaults are the official 64x64 (Stage-I) and 256x256 (Stage-II). For smaller CPU-sized runs the
number of up/down blocks follows `image_size` (and Stage-II's `stage1_size`), the one rule that gives the
official layout at the official sizes: STAGE1_G has log2(size / 4) upBlocks of GF_DIM*8 / 2^(i+1) channels; a
discriminator log2(size / 4) stride-2 convs, the first of DF_DIM channels and then DF_DIM * 2^i (no conv at all
for a 4x4 image, the tiny test size); STAGE2_G keeps its two stride-2 encoder convs (a stage-1 image of side s
becomes s/4) and has 2 + log2(size / stage1_size) upBlocks of GF_DIM*2 / 2^i channels.
Initialisation is the official weights_init: conv and linear weights N(0, 0.02^2), linear biases 0,
batch-norm scales N(1, 0.02^2) and biases 0 (the two biased convs of the heads, which weights_init leaves at
PyTorch's default, start at 0 here).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from gans import layers
from gans.variants.image2image import networks as image2image_networks

_init = nn.initializers.normal(0.02)
NOISE_RNG = "noise"  # the rng CA_NET draws eps from when none is given
DISCRIMINATOR_SIDE = {"STAGE1_D": 64, "STAGE2_D": 256}  # the official image sides (encodings end at 4x4)


def doublings(side: int, what: str) -> int:
  """log2(side / 4): the up (or down) blocks between a 4x4 map and a side x side image."""
  count = int(side).bit_length() - 3
  if side < 4 or 4 * 2 ** count != side:
    raise ValueError(f"{what} must be 4 times a power of 2 (4, 8, 16, 32, 64, ...); got {side}.")
  return count


def batch_norm(train: bool, name: str) -> nn.Module:
  """BatchNorm1d/2d as pix2pix's get_norm_layer("batch") builds it (eps 1e-5, momentum 0.1, weights_init's
  N(1, 0.02^2) scales): the same layer in both official codebases."""
  return image2image_networks.norm_layer("batch", train, name)


def conv(fast: bool, features: int, kernel: int, stride: int = 1, padding: int = 0, use_bias: bool = False,
         name: str | None = None) -> nn.Module:
  """PyTorch's Conv2d (image2image's, N(0, 0.02^2) weights); model.py's convs have no bias unless said."""
  return image2image_networks.conv(fast, features, kernel, stride, padding, use_bias, name)


def conv3x3(fast: bool, features: int, name: str) -> nn.Module:
  """The official conv3x3: 3x3, stride 1, padding 1, no bias."""
  return conv(fast, features, 3, 1, 1, name=name)


def tile_condition(c_NC: jax.Array, height: int, width: int) -> jax.Array:
  """c.view(-1, C, 1, 1).repeat(1, 1, H, W), NHWC."""
  return jnp.broadcast_to(c_NC[:, None, None, :], (c_NC.shape[0], height, width, c_NC.shape[1]))


class UpBlock(nn.Module):
  """upBlock: nearest x2, conv3x3 (no bias), BN, ReLU; layers named by their Sequential index."""
  features: int
  fast_layers: bool = True

  @nn.compact
  def __call__(self, x_NHWC, train: bool):
    if self.fast_layers:  # the upsampling and the conv as one transposed conv (gans.layers.nearest_upsample_conv)
      h = layers.NearestUpsampleConv(self.features, 3, padding=1, use_bias=False, kernel_init=_init, name="1")(x_NHWC)
    else:
      h = conv3x3(False, self.features, "1")(layers.upsample_nearest(x_NHWC))
    return nn.relu(batch_norm(train, "2")(h))


class ResBlock(nn.Module):
  """ResBlock: relu(x + [conv3x3, BN, ReLU, conv3x3, BN](x))."""
  fast_layers: bool = True

  @nn.compact
  def __call__(self, x_NHWC, train: bool):
    channels, fast = x_NHWC.shape[-1], self.fast_layers
    h = nn.relu(batch_norm(train, "block_1")(conv3x3(fast, channels, "block_0")(x_NHWC)))
    h = batch_norm(train, "block_4")(conv3x3(fast, channels, "block_3")(h))
    return nn.relu(x_NHWC + h)


class CANet(nn.Module):
  """CA_NET, conditioning augmentation: (c_code, mu, logvar) of a text embedding (N, TEXT.DIMENSION)."""
  condition_dim: int = 128  # GAN.CONDITION_DIM

  @nn.compact
  def __call__(self, text_embedding, eps=None):
    x = nn.relu(nn.Dense(2 * self.condition_dim, kernel_init=_init, name="fc")(text_embedding))
    mu, logvar = x[:, :self.condition_dim], x[:, self.condition_dim:]
    if eps is None:
      eps = jax.random.normal(self.make_rng(NOISE_RNG), mu.shape, mu.dtype)
    elif eps.shape != mu.shape:
      raise ValueError(f"eps must have the shape of mu, (batch, GAN.CONDITION_DIM) = {mu.shape}; got {eps.shape}.")
    c_code = eps * jnp.exp(0.5 * logvar) + mu
    self.sow("intermediates", "c_code", c_code)
    return c_code, mu, logvar


def kl_loss(mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """The official KL_loss: KL(N(mu, exp(logvar)) || N(0, I)) as -0.5 * mean(1 + logvar - mu^2 - exp(logvar)),
  a mean over batch and dimensions (weighted by TRAIN.COEFF.KL, 2.0, in the generator's loss)."""
  return -0.5 * jnp.mean(1 + logvar - jnp.square(mu) - jnp.exp(logvar))


class Stage1G(nn.Module):
  """STAGE1_G: text embedding (N, TEXT.DIMENSION) and noise (N, Z_DIM) -> (None, 64x64 image, mu, logvar)."""
  gf_dim: int = 128  # GAN.GF_DIM; this network's widest layer has GF_DIM * 8 channels
  condition_dim: int = 128  # GAN.CONDITION_DIM
  fast_layers: bool = True
  image_size: int = 64  # the generated image's side (officially 64: four upBlocks)

  @nn.compact
  def __call__(self, text_embedding, noise, train: bool, eps=None):
    ngf = self.gf_dim * 8
    c_code, mu, logvar = CANet(self.condition_dim, name="ca_net")(text_embedding, eps)
    h = nn.Dense(ngf * 4 * 4, use_bias=False, kernel_init=_init, name="fc_0")(jnp.concatenate([noise, c_code], 1))
    h = nn.relu(batch_norm(train, "fc_1")(h))
    self.sow("intermediates", "fc_out", h)
    h = h.reshape(-1, ngf, 4, 4).transpose(0, 2, 3, 1)  # view(-1, ngf, 4, 4) of NCHW, to NHWC
    for i in range(doublings(self.image_size, "STAGE1_G's image_size")):
      h = UpBlock(ngf // 2 ** (i + 1), self.fast_layers, name=f"upsample{i + 1}")(h, train)
    h = conv3x3(self.fast_layers, 3, "img_0")(h)
    self.sow("intermediates", "pre_tanh", h)
    return None, jnp.tanh(h), mu, logvar


class Stage2G(nn.Module):
  """STAGE2_G: (stage-1 image, 4x-sized image, mu, logvar) from a text embedding and noise.

  mu and logvar are this network's own CA_NET's; `stage1_eps` is the noise of the inner STAGE1_G's CA_NET.
  """
  gf_dim: int = 128  # GAN.GF_DIM
  condition_dim: int = 128  # GAN.CONDITION_DIM
  r_num: int = 4  # GAN.R_NUM residual blocks
  fast_layers: bool = True
  stage1_size: int = 64  # the inner STAGE1_G's image side (officially 64)
  image_size: int = 256  # this network's image side (officially 256: 4 x stage1_size, four upBlocks)

  @nn.compact
  def __call__(self, text_embedding, noise, train: bool, eps=None, stage1_eps=None):
    ngf, fast = self.gf_dim, self.fast_layers
    upsamplings = 2 + doublings(self.image_size, "STAGE2_G's image_size") - doublings(self.stage1_size,
                                                                                   "STAGE2_G's stage1_size")
    if upsamplings < 3:
      raise ValueError(f"STAGE2_G refines to a larger image: image_size {self.image_size} must be at least twice "
                       f"stage1_size {self.stage1_size}.")
    _, stage1_img, _, _ = Stage1G(ngf, self.condition_dim, fast, self.stage1_size, name="STAGE1_G")(
      text_embedding, noise, train, stage1_eps)
    stage1_img = jax.lax.stop_gradient(stage1_img)
    h = nn.relu(conv3x3(fast, ngf, "encoder_0")(stage1_img))
    h = nn.relu(batch_norm(train, "encoder_3")(conv(fast, ngf * 2, 4, 2, 1, name="encoder_2")(h)))
    h = nn.relu(batch_norm(train, "encoder_6")(conv(fast, ngf * 4, 4, 2, 1, name="encoder_5")(h)))
    c_code, mu, logvar = CANet(self.condition_dim, name="ca_net")(text_embedding, eps)
    # The official code tiles to 16x16, the encoding of its 64x64 stage-1 image.
    h = jnp.concatenate([h, tile_condition(c_code, h.shape[1], h.shape[2])], axis=-1)
    h = nn.relu(batch_norm(train, "hr_joint_1")(conv3x3(fast, ngf * 4, "hr_joint_0")(h)))
    for i in range(self.r_num):
      h = ResBlock(fast, name=f"residual_{i}")(h, train)
    for i in range(upsamplings):  # officially ngf * 2, ngf, ngf / 2, ngf / 4
      h = UpBlock(max(1, ngf * 2 // 2 ** i), fast, name=f"upsample{i + 1}")(h, train)
    h = conv3x3(fast, 3, "img_0")(h)
    self.sow("intermediates", "pre_tanh", h)
    return stage1_img, jnp.tanh(h), mu, logvar


class DGetLogits(nn.Module):
  """D_GET_LOGITS(ndf, nef, bcondition): one score per example, before the official Sigmoid."""
  df_dim: int
  condition: bool = True  # bcondition: conditional head (conv3x3, BN, LeakyReLU first) or unconditional
  fast_layers: bool = True

  @nn.compact
  def __call__(self, h_NHWC, c_code, train: bool):
    if h_NHWC.shape[1:3] != (4, 4):
      raise ValueError(f"D_GET_LOGITS scores a 4x4 image encoding (its conv k4 s4 gives one score); got "
                       f"{h_NHWC.shape[1]}x{h_NHWC.shape[2]}.")
    index = 0
    if self.condition:
      if c_code is None:
        raise ValueError("The conditional head needs the condition (mu in the official trainer).")
      h_NHWC = jnp.concatenate([h_NHWC, tile_condition(c_code, 4, 4)], axis=-1)
      h_NHWC = conv3x3(self.fast_layers, self.df_dim * 8, "outlogits_0")(h_NHWC)
      h_NHWC = nn.leaky_relu(batch_norm(train, "outlogits_1")(h_NHWC), 0.2)
      index = 3
    return conv(self.fast_layers, 1, 4, 4, use_bias=True, name=f"outlogits_{index}")(h_NHWC).reshape(-1)


class _ImageEncoder(nn.Module):
  """encode_img: conv k4 s2 p1 (no bias) + LeakyReLU(0.2), then [conv k4 s2 p1, BN, LeakyReLU] to ndf *
  widths[i] channels, then [conv3x3, BN, LeakyReLU] to ndf * widths[i] for `same_size_widths` (STAGE2_D's
  last two); layers named by their Sequential index."""
  df_dim: int
  widths: tuple[int, ...]  # channel multiples of the stride-2 convs after the first
  same_size_widths: tuple[int, ...] = ()
  fast_layers: bool = True
  first_conv: bool = True  # False only for a 4x4 image (no stride-2 conv at all)

  @nn.compact
  def __call__(self, image_NHWC, train: bool):
    ndf, fast = self.df_dim, self.fast_layers
    h = nn.leaky_relu(conv(fast, ndf, 4, 2, 1, name="0")(image_NHWC), 0.2) if self.first_conv else image_NHWC
    index = 2
    for width in self.widths:
      h = nn.leaky_relu(batch_norm(train, str(index + 1))(conv(fast, ndf * width, 4, 2, 1, name=str(index))(h)), 0.2)
      index += 3
    for width in self.same_size_widths:
      h = nn.leaky_relu(batch_norm(train, str(index + 1))(conv3x3(fast, ndf * width, str(index))(h)), 0.2)
      index += 3
    return h


class _Discriminator(nn.Module):
  """The shared form of STAGE1_D and STAGE2_D: `encode` (the official forward), `cond_logits`,
  `uncond_logits`; `__call__` runs all three at once (for init and simple use)."""
  df_dim: int = 64  # GAN.DF_DIM
  condition_dim: int = 128  # GAN.CONDITION_DIM (the width of the tiled condition)
  fast_layers: bool = True
  image_size: int | None = None  # the image side; None = the official one (DISCRIMINATOR_SIDE)
  official_name = ""  # class constants of the two subclasses, not fields
  same_size_widths = ()
  unconditional = False

  @property
  def side(self) -> int:
    return DISCRIMINATOR_SIDE[self.official_name] if self.image_size is None else self.image_size

  def setup(self):
    stride_2 = doublings(self.side, f"{self.official_name}'s image_size")
    widths = tuple(2 ** (i + 1) for i in range(stride_2 - 1))  # officially (2, 4, 8) and (2, 4, 8, 16, 32)
    self.encode_img = _ImageEncoder(self.df_dim, widths, self.same_size_widths, self.fast_layers, stride_2 > 0)
    self.get_cond_logits = DGetLogits(self.df_dim, True, self.fast_layers)
    if self.unconditional:
      self.get_uncond_logits = DGetLogits(self.df_dim, False, self.fast_layers)

  def encode(self, image_NHWC, train: bool):
    """The official forward: the image's encoding, (N, 4, 4, DF_DIM * 8)."""
    side = self.side
    if image_NHWC.shape[1:] != (side, side, 3):
      raise ValueError(f"{self.official_name} takes {side}x{side} RGB images (N, {side}, {side}, 3); got "
                       f"{image_NHWC.shape}.")
    return self.encode_img(image_NHWC, train)

  def cond_logits(self, img_embedding, condition, train: bool):
    """get_cond_logits(img_embedding, condition) before its Sigmoid: (N,)."""
    if condition.shape[-1] != self.condition_dim:
      raise ValueError(f"The condition must have GAN.CONDITION_DIM = {self.condition_dim} entries per example; "
                       f"got shape {condition.shape}.")
    return self.get_cond_logits(img_embedding, condition, train)

  def uncond_logits(self, img_embedding, train: bool):
    """get_uncond_logits(img_embedding) before its Sigmoid: (N,); STAGE1_D has none (None, as officially)."""
    return self.get_uncond_logits(img_embedding, None, train) if self.unconditional else None

  def __call__(self, image_NHWC, condition, train: bool):
    """(encoding, conditional scores, unconditional scores or None) of images with their conditions."""
    h = self.encode(image_NHWC, train)
    return h, self.cond_logits(h, condition, train), self.uncond_logits(h, train)


class Stage1D(_Discriminator):
  """STAGE1_D: 64x64 images -> DF_DIM*8 x 4 x 4; a conditional head only."""
  official_name = "STAGE1_D"


class Stage2D(_Discriminator):
  """STAGE2_D: 256x256 images -> DF_DIM*32 at 4x4, two conv3x3 down to DF_DIM*8; both heads."""
  official_name = "STAGE2_D"
  same_size_widths = (16, 8)
  unconditional = True
