"""The FID Inception network in Flax, numerically equal to pytorch-fid.

pytorch-fid computes FID with `InceptionV3(output_blocks=[3], resize_input=True,
normalize_input=True, use_fid_inception=True)`: torchvision's Inception3 with
the blocks Mixed_5b..5d, 6b..6e, 7b and 7c replaced by the variants that mimic
the TensorFlow graph the original FID was defined on (average pools that do not
count padding, and a max pool in the last block's pool branch). This module is
that network, written from the architecture description, in NHWC.

Its input is an image batch in [0, 1] of any size (as pytorch-fid's is); it
resizes to 299x299 exactly as `F.interpolate(mode='bilinear',
align_corners=False)` does, maps to [-1, 1] and returns the 2048-d pool3
features, plus the 1008-way `fc` logits without the fc bias when asked: that is
what the standard Inception Score feeds to its softmax (the original IS code
multiplies pool3 by the fc weights only; StyleGAN2-ADA's is50k and
torch-fidelity do the same).

Variable names mirror the PyTorch state dict, so `Mixed_5b.branch1x1.conv.weight`
lives at params["Mixed_5b"]["branch1x1"]["conv"]["kernel"] (see weights.py).
"""
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

FID_RESOLUTION = 299  # the network's input size; pytorch-fid resizes every input to it
FEATURE_DIM = 2048  # pool3 width
NUM_CLASSES = 1008  # fc width: the class count of the 2015-12-05 TensorFlow graph
BN_EPSILON = 1e-3  # torchvision's BasicConv2d BatchNorm eps


def _source_indices_and_weights(in_size: int, out_size: int):
  """Two source taps and their weights per output index, as PyTorch computes them.

  Half-pixel bilinear (align_corners=False) without antialias: the source
  coordinate is (dst + 0.5) * in/out - 0.5, clamped below at 0; the upper tap is
  clamped to the last pixel. PyTorch's CPU kernel takes the ratio in float32 and
  evaluates the coordinate as one fused multiply-add (rounded once); float64
  holds that product and difference exactly for any image size, so rounding the
  float64 result to float32 reproduces its weights bit for bit (a plain float32
  evaluation is off by up to 4 ulp, about 1e-6 after resizing).
  """
  ratio = np.float64(np.float32(in_size) / np.float32(out_size))
  dst = np.arange(out_size, dtype=np.float64)
  src = np.maximum(ratio * (dst + 0.5) - 0.5, 0.0).astype(np.float32)
  lower = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  upper_weight = np.clip(src - lower.astype(np.float32), 0.0, 1.0).astype(np.float32)
  upper = np.minimum(lower + 1, in_size - 1)
  lower_weight = (np.float32(1.0) - upper_weight).astype(np.float32)
  return lower, upper, lower_weight, upper_weight


def _interpolate_axis(x, axis: int, out_size: int):
  """Linear interpolation of `x` along one axis as a gather and a weighted sum."""
  in_size = x.shape[axis]
  if in_size == out_size:
    return x  # PyTorch's kernel is exactly the identity here too
  lower, upper, lower_weight, upper_weight = _source_indices_and_weights(in_size, out_size)
  weight_shape = [1] * x.ndim
  weight_shape[axis] = out_size
  lower_weight = jnp.asarray(lower_weight).reshape(weight_shape)
  upper_weight = jnp.asarray(upper_weight).reshape(weight_shape)
  return (jnp.take(x, jnp.asarray(lower), axis=axis) * lower_weight
          + jnp.take(x, jnp.asarray(upper), axis=axis) * upper_weight)


def resize_bilinear(images_NHWC, size: int = FID_RESOLUTION):
  """Resize to size x size like `F.interpolate(bilinear, align_corners=False)`.

  No antialiasing on downsampling: this is what pytorch-fid does, and it is why
  jax.image.resize (which antialiases by default when shrinking) is not used.
  Width is interpolated before height, the order of PyTorch's CPU kernel.
  """
  x = _interpolate_axis(images_NHWC, axis=2, out_size=size)
  return _interpolate_axis(x, axis=1, out_size=size)


class BasicConv(nn.Module):
  """Bias-free convolution, eval-mode BatchNorm, ReLU (torchvision's BasicConv2d)."""
  features: int  # output channels
  kernel_size: Sequence[int]  # (kh, kw)
  strides: Sequence[int] = (1, 1)
  padding: Sequence[int] = (0, 0)  # symmetric zero padding (ph, pw), as in PyTorch

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.features, tuple(self.kernel_size), strides=tuple(self.strides),
                padding=[(p, p) for p in self.padding], use_bias=False, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name="bn")(x)
    return nn.relu(x)


def _max_pool_3x3_stride2(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


def _avg_pool_3x3_same(x):
  # The FID blocks divide by the number of real pixels at the border
  # (count_include_pad=False), unlike torchvision's own Inception3.
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_same(x):
  return nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))


class InceptionA(nn.Module):
  """Mixed_5b/5c/5d (FIDInceptionA): 1x1, 5x5, double 3x3 and pool branches."""
  pool_features: int  # channels of the pool branch: 32 in Mixed_5b, 64 after

  @nn.compact
  def __call__(self, x):
    branch1x1 = BasicConv(64, (1, 1), name="branch1x1")(x)
    branch5x5 = BasicConv(48, (1, 1), name="branch5x5_1")(x)
    branch5x5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(branch5x5)
    branch3x3dbl = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(branch3x3dbl)
    branch_pool = BasicConv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3_same(x))
    return jnp.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: the 35 -> 17 grid reduction."""

  @nn.compact
  def __call__(self, x):
    branch3x3 = BasicConv(384, (3, 3), strides=(2, 2), name="branch3x3")(x)
    branch3x3dbl = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = BasicConv(96, (3, 3), strides=(2, 2), name="branch3x3dbl_3")(branch3x3dbl)
    return jnp.concatenate([branch3x3, branch3x3dbl, _max_pool_3x3_stride2(x)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b..6e (FIDInceptionC): factorised 7x7 branches."""
  channels_7x7: int  # width inside the 7x7 branches: 128, 160, 160, 192

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    branch1x1 = BasicConv(192, (1, 1), name="branch1x1")(x)
    branch7x7 = BasicConv(c, (1, 1), name="branch7x7_1")(x)
    branch7x7 = BasicConv(c, (1, 7), padding=(0, 3), name="branch7x7_2")(branch7x7)
    branch7x7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(branch7x7)
    branch7x7dbl = BasicConv(c, (1, 1), name="branch7x7dbl_1")(x)
    branch7x7dbl = BasicConv(c, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(branch7x7dbl)
    branch7x7dbl = BasicConv(c, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(branch7x7dbl)
    branch7x7dbl = BasicConv(c, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(branch7x7dbl)
    branch7x7dbl = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(branch7x7dbl)
    branch_pool = BasicConv(192, (1, 1), name="branch_pool")(_avg_pool_3x3_same(x))
    return jnp.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: the 17 -> 8 grid reduction."""

  @nn.compact
  def __call__(self, x):
    branch3x3 = BasicConv(192, (1, 1), name="branch3x3_1")(x)
    branch3x3 = BasicConv(320, (3, 3), strides=(2, 2), name="branch3x3_2")(branch3x3)
    branch7x7x3 = BasicConv(192, (1, 1), name="branch7x7x3_1")(x)
    branch7x7x3 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7x3)
    branch7x7x3 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7x3)
    branch7x7x3 = BasicConv(192, (3, 3), strides=(2, 2), name="branch7x7x3_4")(branch7x7x3)
    return jnp.concatenate([branch3x3, branch7x7x3, _max_pool_3x3_stride2(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (FIDInceptionE_1, average pool) and Mixed_7c (FIDInceptionE_2, max pool)."""
  pool: str  # "avg" for Mixed_7b, "max" for Mixed_7c (the TF graph's quirk)

  @nn.compact
  def __call__(self, x):
    branch1x1 = BasicConv(320, (1, 1), name="branch1x1")(x)
    branch3x3 = BasicConv(384, (1, 1), name="branch3x3_1")(x)
    branch3x3 = jnp.concatenate([
        BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(branch3x3),
        BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(branch3x3)], axis=-1)
    branch3x3dbl = BasicConv(448, (1, 1), name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = jnp.concatenate([
        BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(branch3x3dbl),
        BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(branch3x3dbl)], axis=-1)
    pooled = {"avg": _avg_pool_3x3_same, "max": _max_pool_3x3_same}[self.pool](x)
    branch_pool = BasicConv(192, (1, 1), name="branch_pool")(pooled)
    return jnp.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=-1)


class FIDInceptionV3(nn.Module):
  """pytorch-fid's FID InceptionV3: [0, 1] images (any size, NHWC) -> pool3 features.

  Returns {"pool3": f32[N, 2048]} and, with `with_logits=True` (needs the `fc`
  kernel, which the distributed .pth has), {"logits_unbiased": f32[N, 1008]}:
  pool3 @ fc kernel, without the bias, the standard Inception Score's input.
  Sows the resized input ("resized", before 2x-1) and the outputs of pytorch-fid's
  blocks 0-2 into the "intermediates" collection, for parity tests.
  """
  num_classes: int = NUM_CLASSES  # fc width, used only with with_logits

  @nn.compact
  def __call__(self, images_NHWC, with_logits: bool = False):
    x = resize_bilinear(images_NHWC, FID_RESOLUTION)
    self.sow("intermediates", "resized", x)
    x = 2.0 * x - 1.0  # pytorch-fid's normalize_input: [0, 1] -> [-1, 1]

    # block 0: 299 -> 73
    x = BasicConv(32, (3, 3), strides=(2, 2), name="Conv2d_1a_3x3")(x)
    x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3_stride2(x)
    self.sow("intermediates", "block0", x)
    # block 1: 73 -> 35
    x = BasicConv(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = _max_pool_3x3_stride2(x)
    self.sow("intermediates", "block1", x)
    # block 2: 35 -> 17
    x = InceptionA(pool_features=32, name="Mixed_5b")(x)
    x = InceptionA(pool_features=64, name="Mixed_5c")(x)
    x = InceptionA(pool_features=64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    x = InceptionC(channels_7x7=128, name="Mixed_6b")(x)
    x = InceptionC(channels_7x7=160, name="Mixed_6c")(x)
    x = InceptionC(channels_7x7=160, name="Mixed_6d")(x)
    x = InceptionC(channels_7x7=192, name="Mixed_6e")(x)
    self.sow("intermediates", "block2", x)
    # block 3: 17 -> 8 -> global average
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(pool="avg", name="Mixed_7b")(x)
    x = InceptionE(pool="max", name="Mixed_7c")(x)
    pool3 = jnp.mean(x, axis=(1, 2))

    outputs = {"pool3": pool3}
    if with_logits:
      outputs["logits_unbiased"] = nn.Dense(self.num_classes, use_bias=False, name="fc")(pool3)
    return outputs


# uint8 / 255 as PyTorch's ToTensor rounds it. A table, because XLA rewrites a
# division by a constant as a multiplication, which is off by one ulp for some levels.
_UNIT_LEVELS = np.arange(256, dtype=np.float32) / np.float32(255.0)


def data_to_unit_range(images_NHWC):
  """Project data space [-1, 1] -> the network's [0, 1] input, through 8 bits.

  pytorch-fid reads 8-bit image files and divides by 255, so the images are
  first rounded to the 256 levels a PNG export would store (out-of-range values
  clipped) and mapped to exactly uint8 / 255: the FID of generated samples then
  equals the FID of the same samples saved as PNG files.
  """
  # floor(v + 0.5): round half up, as StyleGAN2-ADA's (x * 127.5 + 128) -> uint8 does.
  levels = jnp.clip(jnp.floor((images_NHWC + 1.0) * 127.5 + 0.5), 0.0, 255.0).astype(jnp.int32)
  return jnp.asarray(_UNIT_LEVELS)[levels]


def features_from_data_space(variables, images_NHWC, with_logits: bool = False) -> dict:
  """FID Inception outputs of images in the project's data space [-1, 1], NHWC, any size.

  Pure and jittable: data_to_unit_range (x -> round((x + 1) * 127.5) / 255, the
  8-bit [0, 1] images pytorch-fid reads) and then the network, which resizes to
  299 and maps back to [-1, 1] itself. Returns {"pool3": f32[N, 2048]} and, with
  with_logits, {"logits_unbiased": f32[N, 1008]}. For many images use
  extract.FeatureExtractor, which batches, pads and shards this.
  """
  return FIDInceptionV3().apply(variables, data_to_unit_range(images_NHWC), with_logits=with_logits)
