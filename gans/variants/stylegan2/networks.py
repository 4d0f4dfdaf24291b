"""StyleGAN2 generator and discriminator (Karras et al. 2020) as Flax Linen modules, NHWC.

Architecturally identical to NVlabs' training/networks_stylegan2.py (config F: skip
generator, resnet discriminator; 'orig', 'skip' and 'resnet' are all available), so the
official weights convert one to one (see convert.py). Submodule and parameter names
follow the official ones (b32.conv0.affine.weight, ...) so the mapping stays readable.

Not hidden in the modules, unlike the official code: w_avg (truncation centre) is an
input of `Generator.map`; the per-layer `noise_const` buffers live in the "buffers"
collection; random noise comes from the "noise" rng stream.

Mixed precision (`dtype`, config.model.dtype): as the official networks run their
high-resolution blocks in float16, here every synthesis and discriminator block
computes in `dtype` while the mapping network, styles, demodulation coefficients,
the summed toRGB image and the discriminator's 4x4 epilogue (minibatch std, fc,
logits) stay float32, as do all parameters. bfloat16 has float32's exponent range,
so the official float16 safeguards (pre-normalised styles) are not needed.
"""
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from gans.variants.stylegan2.layers import (
  DEFAULT_RESAMPLE_TAPS, EqualizedConv2d, EqualizedDense, SynthesisLayer, ToRGB, downsample2d,
  fir_filter_2d, minibatch_std, normalize_2nd_moment, upsample2d)

ARCHITECTURES = ("orig", "skip", "resnet")


def block_resolutions(img_resolution: int) -> tuple:
  """4, 8, ..., img_resolution; raises unless img_resolution is a power of two >= 4."""
  log2 = int(np.log2(img_resolution)) if img_resolution > 0 else 0
  if img_resolution < 4 or 2 ** log2 != img_resolution:
    raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
  return tuple(2 ** i for i in range(2, log2 + 1))


def channels_from_base(img_resolution: int, channel_base: int = 32768, channel_max: int = 512) -> tuple:
  """Channels per resolution 4, 8, ..., img_resolution as the official constructors derive them."""
  return tuple(min(channel_base // res, channel_max) for res in block_resolutions(img_resolution))


def num_ws_for(img_resolution: int) -> int:
  """Number of w vectors synthesis consumes: one per conv layer plus the last toRGB."""
  return 2 * len(block_resolutions(img_resolution))


def _check_channels(channels, img_resolution):
  if len(channels) != len(block_resolutions(img_resolution)):
    raise ValueError(f"channels must list one width per resolution {block_resolutions(img_resolution)}, "
                     f"got {channels}")


# ----------------------------------------------------------------------------------------
# Generator.


class MappingNetwork(nn.Module):
  """z (and label c) -> w: normalise, embed, an MLP with lr multiplier (Karras et al. 2019, Sec. 2)."""
  z_dim: int  # input latent size; 0 when only labels are mapped (the discriminator's cmap)
  c_dim: int  # conditioning label size; 0 = unconditional
  w_dim: int  # output (intermediate latent) size
  num_layers: int = 8  # number of fully connected layers
  embed_features: Optional[int] = None  # label embedding size; None = w_dim
  layer_features: Optional[int] = None  # hidden layer size; None = w_dim
  activation: str = "lrelu"  # hidden and output activation
  lr_multiplier: float = 0.01  # learning-rate multiplier of the MLP (not of the label embedding)

  @nn.compact
  def __call__(self, z, c=None):
    embed_features = (self.w_dim if self.embed_features is None else self.embed_features) if self.c_dim else 0
    layer_features = self.w_dim if self.layer_features is None else self.layer_features
    parts = []
    if self.z_dim > 0:
      if z is None or z.shape[-1] != self.z_dim:
        raise ValueError(f"z must have shape [N, {self.z_dim}], got {None if z is None else z.shape}")
      parts.append(normalize_2nd_moment(z.astype(jnp.float32)))
    if self.c_dim > 0:
      if c is None or c.shape[-1] != self.c_dim:
        raise ValueError(f"c must have shape [N, {self.c_dim}], got {None if c is None else c.shape}")
      parts.append(normalize_2nd_moment(EqualizedDense(embed_features, name="embed")(c.astype(jnp.float32))))
    x = jnp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    for index in range(self.num_layers):
      features = self.w_dim if index == self.num_layers - 1 else layer_features
      x = EqualizedDense(features, activation=self.activation, lr_multiplier=self.lr_multiplier,
                         name=f"fc{index}")(x)
    return x


class SynthesisBlock(nn.Module):
  """One resolution of the synthesis network: (upsampling) conv, conv, toRGB / skip."""
  in_channels: int  # 0 for the first block, which starts from a learned constant
  out_channels: int  # channels of this block's feature maps
  resolution: int  # output resolution of this block
  img_channels: int  # number of image channels
  is_last: bool  # the last block always has a toRGB
  architecture: str = "skip"  # 'orig', 'skip' (sum of upsampled toRGBs) or 'resnet'
  resample_taps: tuple = DEFAULT_RESAMPLE_TAPS  # 1-D taps of the upsampling filter
  conv_clamp: Optional[float] = None  # clip conv outputs to +-conv_clamp; None = no clipping
  dtype: Any = jnp.float32  # dtype of the feature maps (computation); the image sum stays float32

  @property
  def num_conv(self) -> int:
    return 1 if self.in_channels == 0 else 2

  @property
  def num_torgb(self) -> int:
    return 1 if (self.is_last or self.architecture == "skip") else 0

  @nn.compact
  def __call__(self, x_NHWC, img_NHWC, block_ws, noise_mode="random", fused_modconv=None):
    layer_args = dict(features=self.out_channels, resolution=self.resolution,
                      resample_taps=self.resample_taps, conv_clamp=self.conv_clamp)
    w_index = iter(range(block_ws.shape[1]))
    run = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)
    if self.in_channels == 0:
      const = self.param("const", nn.initializers.normal(1.0),
                         (self.resolution, self.resolution, self.out_channels))
      x = jnp.broadcast_to(const[None], (block_ws.shape[0],) + const.shape).astype(self.dtype)
      x = SynthesisLayer(name="conv1", **layer_args)(x, block_ws[:, next(w_index)], **run)
    elif self.architecture == "resnet":
      x_NHWC = x_NHWC.astype(self.dtype)
      # sqrt(1/2) on both branches keeps the sum's variance that of one branch.
      # The official skip convs are never clamped.
      y = EqualizedConv2d(self.out_channels, kernel_size=1, use_bias=False, up=2,
                          resample_taps=self.resample_taps, name="skip")(x_NHWC, gain=np.sqrt(0.5))
      x = SynthesisLayer(up=2, name="conv0", **layer_args)(x_NHWC, block_ws[:, next(w_index)], **run)
      x = SynthesisLayer(name="conv1", **layer_args)(x, block_ws[:, next(w_index)], gain=np.sqrt(0.5), **run)
      x = y + x
    else:
      x_NHWC = x_NHWC.astype(self.dtype)
      x = SynthesisLayer(up=2, name="conv0", **layer_args)(x_NHWC, block_ws[:, next(w_index)], **run)
      x = SynthesisLayer(name="conv1", **layer_args)(x, block_ws[:, next(w_index)], **run)
    if img_NHWC is not None:
      img_NHWC = upsample2d(img_NHWC, fir_filter_2d(self.resample_taps))
    if self.num_torgb:
      y = ToRGB(self.img_channels, conv_clamp=self.conv_clamp, name="torgb")(
        x, block_ws[:, next(w_index)], fused_modconv=fused_modconv)
      img_NHWC = y.astype(jnp.float32) if img_NHWC is None else img_NHWC + y.astype(jnp.float32)
    return x, img_NHWC


class SynthesisNetwork(nn.Module):
  """ws [N, num_ws, w_dim] -> image [N, H, W, C]; consecutive blocks share one w at their seam."""
  w_dim: int  # intermediate latent size
  img_resolution: int  # output resolution, a power of two >= 4
  img_channels: int  # number of output image channels
  channels: tuple  # feature channels per resolution 4, 8, ..., img_resolution (channels_from_base)
  architecture: str = "skip"  # 'orig', 'skip' or 'resnet'
  resample_taps: tuple = DEFAULT_RESAMPLE_TAPS  # 1-D taps of the upsampling filter
  conv_clamp: Optional[float] = None  # clip conv outputs to +-conv_clamp; None = no clipping
  dtype: Any = jnp.float32  # computation dtype of the blocks; the image comes out in float32

  @nn.compact
  def __call__(self, ws, noise_mode="random", fused_modconv=None):
    _check_channels(self.channels, self.img_resolution)
    if self.architecture not in ARCHITECTURES:
      raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
    expected = (num_ws_for(self.img_resolution), self.w_dim)
    if ws.ndim != 3 or ws.shape[1:] != expected:
      raise ValueError(f"ws must have shape [N, {expected[0]}, {expected[1]}], got {ws.shape}")
    ws = ws.astype(jnp.float32)
    x = img = None
    w_start = 0
    for index, res in enumerate(block_resolutions(self.img_resolution)):
      block = SynthesisBlock(
        in_channels=self.channels[index - 1] if index else 0, out_channels=self.channels[index],
        resolution=res, img_channels=self.img_channels, is_last=(res == self.img_resolution),
        architecture=self.architecture, resample_taps=self.resample_taps, conv_clamp=self.conv_clamp,
        dtype=self.dtype, name=f"b{res}")
      block_ws = ws[:, w_start:w_start + block.num_conv + block.num_torgb]
      x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused_modconv)
      w_start += block.num_conv
    return img


class Generator(nn.Module):
  """Mapping plus synthesis. Methods: map (z, c -> ws), synthesize (ws -> image), __call__ (both)."""
  z_dim: int  # input latent size
  c_dim: int  # conditioning label size; 0 = unconditional
  w_dim: int  # intermediate latent size
  img_resolution: int  # output resolution, a power of two >= 4
  img_channels: int  # number of output image channels
  channels: tuple  # feature channels per resolution 4, 8, ..., img_resolution (channels_from_base)
  architecture: str = "skip"  # synthesis architecture: 'orig', 'skip' or 'resnet'
  mapping_layers: int = 8  # fully connected layers in the mapping network
  mapping_embed_features: Optional[int] = None  # label embedding size; None = w_dim
  mapping_layer_features: Optional[int] = None  # mapping hidden size; None = w_dim
  mapping_lr_multiplier: float = 0.01  # learning-rate multiplier of the mapping MLP
  resample_taps: tuple = DEFAULT_RESAMPLE_TAPS  # 1-D taps of the upsampling filter
  conv_clamp: Optional[float] = None  # clip conv outputs to +-conv_clamp (official training: 256)
  dtype: Any = jnp.float32  # computation dtype of the synthesis blocks; mapping and parameters stay float32

  @property
  def num_ws(self) -> int:
    return num_ws_for(self.img_resolution)

  def setup(self):
    self.mapping = MappingNetwork(
      z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_layers=self.mapping_layers,
      embed_features=self.mapping_embed_features, layer_features=self.mapping_layer_features,
      lr_multiplier=self.mapping_lr_multiplier)
    self.synthesis = SynthesisNetwork(
      w_dim=self.w_dim, img_resolution=self.img_resolution, img_channels=self.img_channels,
      channels=self.channels, architecture=self.architecture, resample_taps=self.resample_taps,
      conv_clamp=self.conv_clamp, dtype=self.dtype)

  def map(self, z, c=None, w_avg=None, truncation_psi=1.0, truncation_cutoff=None):
    """ws [N, num_ws, w_dim]; truncation pulls layers [0, cutoff) toward w_avg by psi."""
    w = self.mapping(z, c)
    ws = jnp.broadcast_to(w[:, None, :], (w.shape[0], self.num_ws, w.shape[1]))
    return truncate(ws, w_avg, truncation_psi, truncation_cutoff)

  def synthesize(self, ws, noise_mode="random", fused_modconv=None):
    """Image [N, H, W, C] (nominally in [-1, 1]) from ws [N, num_ws, w_dim]."""
    return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)

  def __call__(self, z, c=None, w_avg=None, truncation_psi=1.0, truncation_cutoff=None,
               noise_mode="random", fused_modconv=None):
    ws = self.map(z, c, w_avg, truncation_psi, truncation_cutoff)
    return self.synthesize(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)


def truncate(ws, w_avg, truncation_psi=1.0, truncation_cutoff=None):
  """The truncation trick: w_avg + psi (ws - w_avg) on layers below the cutoff (None = all)."""
  if isinstance(truncation_psi, (int, float)) and truncation_psi == 1:
    return ws  # skipped exactly as the official code does, so psi=1 is bit-exact
  if w_avg is None:
    raise ValueError("truncation_psi != 1 needs w_avg")
  truncated = w_avg + (ws - w_avg) * truncation_psi
  if truncation_cutoff is None:
    return truncated
  layer_is_truncated = (jnp.arange(ws.shape[1]) < truncation_cutoff)[None, :, None]
  return jnp.where(layer_is_truncated, truncated, ws)


# ----------------------------------------------------------------------------------------
# Discriminator.


class DiscriminatorBlock(nn.Module):
  """One resolution of the discriminator: (fromRGB), conv, downsampling conv, (resnet skip)."""
  in_channels: int  # 0 for the first block, which reads the image through fromRGB
  tmp_channels: int  # channels inside the block
  out_channels: int  # channels after downsampling
  img_channels: int  # number of image channels
  architecture: str = "resnet"  # 'orig', 'skip' (fromRGB of a downsampled image in every block) or 'resnet'
  activation: str = "lrelu"  # activation of every conv
  resample_taps: tuple = DEFAULT_RESAMPLE_TAPS  # 1-D taps of the downsampling filter
  conv_clamp: Optional[float] = None  # clip conv outputs to +-conv_clamp; None = no clipping
  dtype: Any = jnp.float32  # computation dtype of the block

  @nn.compact
  def __call__(self, x_NHWC, img_NHWC):
    img_NHWC = img_NHWC if img_NHWC is None else img_NHWC.astype(self.dtype)
    x_NHWC = x_NHWC if x_NHWC is None else x_NHWC.astype(self.dtype)
    conv_args = dict(activation=self.activation, resample_taps=self.resample_taps, conv_clamp=self.conv_clamp)
    if self.in_channels == 0 or self.architecture == "skip":
      y = EqualizedConv2d(self.tmp_channels, kernel_size=1, name="fromrgb", **conv_args)(img_NHWC)
      x_NHWC = y if x_NHWC is None else x_NHWC + y
      img_NHWC = downsample2d(img_NHWC, fir_filter_2d(self.resample_taps)) if self.architecture == "skip" else None
    if self.architecture == "resnet":
      # sqrt(1/2) on both branches keeps the sum's variance that of one branch; the
      # official skip convs are never clamped.
      y = EqualizedConv2d(self.out_channels, kernel_size=1, use_bias=False, down=2,
                          resample_taps=self.resample_taps, name="skip")(x_NHWC, gain=np.sqrt(0.5))
      x = EqualizedConv2d(self.tmp_channels, kernel_size=3, name="conv0", **conv_args)(x_NHWC)
      x = EqualizedConv2d(self.out_channels, kernel_size=3, down=2, name="conv1", **conv_args)(
        x, gain=np.sqrt(0.5))
      return y + x, img_NHWC
    x = EqualizedConv2d(self.tmp_channels, kernel_size=3, name="conv0", **conv_args)(x_NHWC)
    x = EqualizedConv2d(self.out_channels, kernel_size=3, down=2, name="conv1", **conv_args)(x)
    return x, img_NHWC


class DiscriminatorEpilogue(nn.Module):
  """The 4x4 head: minibatch std, conv, fc, output (or projection onto the label embedding)."""
  in_channels: int  # channels of the 4x4 features
  cmap_dim: int  # size of the label embedding the output is projected on; 0 = unconditional
  img_channels: int  # number of image channels ('skip' architecture only)
  resolution: int = 4  # spatial size of the input features
  architecture: str = "resnet"  # 'skip' adds a fromRGB of the 4x4 image
  mbstd_group_size: Optional[int] = 4  # samples per minibatch-std group; None = whole batch
  mbstd_num_channels: int = 1  # minibatch-std feature maps; 0 disables the layer
  activation: str = "lrelu"  # activation of conv and fc
  conv_clamp: Optional[float] = None  # clip the conv output to +-conv_clamp; None = no clipping

  @nn.compact
  def __call__(self, x_NHWC, img_NHWC, cmap=None):
    if self.architecture == "skip":  # unclamped, as in the official epilogue
      x_NHWC = x_NHWC + EqualizedConv2d(self.in_channels, kernel_size=1, activation=self.activation,
                                        name="fromrgb")(img_NHWC)
    if self.mbstd_num_channels > 0:
      x_NHWC = minibatch_std(x_NHWC, self.mbstd_group_size, self.mbstd_num_channels)
    x = EqualizedConv2d(self.in_channels, kernel_size=3, activation=self.activation,
                        conv_clamp=self.conv_clamp, name="conv")(x_NHWC)
    # Flattened in HWC order; the converter permutes the official (CHW-ordered) fc weight.
    x = EqualizedDense(self.in_channels, activation=self.activation, name="fc")(x.reshape(x.shape[0], -1))
    x = EqualizedDense(self.cmap_dim if self.cmap_dim else 1, name="out")(x)
    if self.cmap_dim:
      # Projection discriminator (Miyato & Koyama 2018), normalised by sqrt(cmap_dim).
      x = jnp.sum(x * cmap, axis=1, keepdims=True) * (1 / np.sqrt(self.cmap_dim))
    return x


class Discriminator(nn.Module):
  """Image [N, H, W, C] (and label c) -> logits [N, 1]."""
  c_dim: int  # conditioning label size; 0 = unconditional
  img_resolution: int  # input resolution, a power of two >= 4
  img_channels: int  # number of input image channels
  channels: tuple  # feature channels per resolution 4, 8, ..., img_resolution (channels_from_base)
  architecture: str = "resnet"  # 'orig', 'skip' or 'resnet'
  cmap_dim: Optional[int] = None  # label-embedding size for the projection; None = channels at 4x4
  mbstd_group_size: Optional[int] = 4  # samples per minibatch-std group; None = whole batch
  mbstd_num_channels: int = 1  # minibatch-std feature maps; 0 disables the layer
  mapping_layers: int = 8  # fully connected layers of the label mapping (c_dim > 0 only)
  mapping_embed_features: Optional[int] = None  # label embedding size; None = cmap_dim
  mapping_layer_features: Optional[int] = None  # label mapping hidden size; None = cmap_dim
  mapping_lr_multiplier: float = 0.01  # learning-rate multiplier of the label mapping MLP
  resample_taps: tuple = DEFAULT_RESAMPLE_TAPS  # 1-D taps of the downsampling filter
  conv_clamp: Optional[float] = None  # clip conv outputs to +-conv_clamp (official training: 256)
  dtype: Any = jnp.float32  # computation dtype of the blocks; the 4x4 epilogue and the logits stay float32

  @property
  def effective_cmap_dim(self) -> int:
    if not self.c_dim:
      return 0
    return self.channels[0] if self.cmap_dim is None else self.cmap_dim

  @nn.compact
  def __call__(self, img_NHWC, c=None):
    _check_channels(self.channels, self.img_resolution)
    if self.architecture not in ARCHITECTURES:
      raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
    if self.img_resolution < 8:
      raise ValueError(f"the discriminator needs img_resolution >= 8, got {self.img_resolution}")
    expected = (self.img_resolution, self.img_resolution, self.img_channels)
    if img_NHWC.ndim != 4 or img_NHWC.shape[1:] != expected:
      raise ValueError(f"img_NHWC must have shape [N, {', '.join(map(str, expected))}], got {img_NHWC.shape}")
    channels_at = dict(zip(block_resolutions(self.img_resolution), self.channels))
    x = None
    img = img_NHWC
    for res in reversed(block_resolutions(self.img_resolution)[1:]):
      x, img = DiscriminatorBlock(
        in_channels=channels_at[res] if res < self.img_resolution else 0, tmp_channels=channels_at[res],
        out_channels=channels_at[res // 2], img_channels=self.img_channels, architecture=self.architecture,
        resample_taps=self.resample_taps, conv_clamp=self.conv_clamp, dtype=self.dtype, name=f"b{res}")(x, img)
    cmap = None
    if self.c_dim:
      cmap = MappingNetwork(
        z_dim=0, c_dim=self.c_dim, w_dim=self.effective_cmap_dim, num_layers=self.mapping_layers,
        embed_features=self.mapping_embed_features, layer_features=self.mapping_layer_features,
        lr_multiplier=self.mapping_lr_multiplier, name="mapping")(None, c)
    # The epilogue in float32, as the official networks keep it whatever their blocks run in: the minibatch
    # std is a variance and the logits feed the losses; at 4x4 it costs next to nothing.
    return DiscriminatorEpilogue(
      in_channels=channels_at[4], cmap_dim=self.effective_cmap_dim, img_channels=self.img_channels,
      architecture=self.architecture, mbstd_group_size=self.mbstd_group_size,
      mbstd_num_channels=self.mbstd_num_channels, conv_clamp=self.conv_clamp, name="b4")(
        x.astype(jnp.float32), None if img is None else img.astype(jnp.float32), cmap)
