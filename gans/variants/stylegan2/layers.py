"""StyleGAN2 building blocks (Karras et al. 2020), NHWC, numerically faithful to NVlabs' networks.

Written to move into gans/layers.py once StyleGAN v1 needs them too; nothing here knows
about a generator or a discriminator. The official code is NCHW and stores conv weights
as [out, in, kh, kw]; here activations are NHWC and conv weights HWIO [kh, kw, in, out],
dense weights [in, out]. Parameters are stored *raw* (equalised learning rate: the
runtime scale is applied in the forward pass), exactly as the official state dict
stores them, so converted checkpoints train with the same dynamics.
"""
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gans import layers as conv_layers

SQRT2 = float(np.sqrt(2.0))
DEFAULT_RESAMPLE_TAPS = (1, 3, 3, 1)  # the binomial low-pass filter of Karras et al. 2020, App. B

# ----------------------------------------------------------------------------------------
# Activations with bias, gain and clamp (what NVlabs' bias_act computes).

# name -> (function, default gain). The sqrt(2) gain keeps the signal's second moment
# roughly unchanged through a (leaky) ReLU, the "He" reasoning behind equalised lr.
ACTIVATIONS = {
  "linear": (lambda x: x, 1.0),
  "relu": (jax.nn.relu, SQRT2),
  "lrelu": (lambda x: jax.nn.leaky_relu(x, negative_slope=0.2), SQRT2),
}


def activation_gain(activation: str) -> float:
  """The default gain applied after `activation` (sqrt 2 for (leaky) ReLU, else 1)."""
  if activation not in ACTIVATIONS:
    raise KeyError(f"unknown activation {activation!r}; valid: {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[activation][1]


def bias_act(x, bias=None, activation="linear", gain=None, clamp=None):
  """x + bias (on the last axis), then activation, then * gain, then clip to [-clamp, clamp].

  gain=None means the activation's default gain. The clamp exists because the official
  mixed-precision training clamps every conv output (conv_clamp); it changes results
  only where |x| > clamp.
  """
  function, default_gain = ACTIVATIONS[activation]
  gain = default_gain if gain is None else gain
  if bias is not None:
    x = x + bias.astype(x.dtype)
  x = function(x)
  if gain != 1:
    x = x * gain
  if clamp is not None and clamp >= 0:
    x = jnp.clip(x, -clamp, clamp)
  return x


def normalize_2nd_moment(x, axis=-1, eps=1e-8):
  """Scales x to unit mean square along `axis` (the mapping network's input normalisation)."""
  return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


# ----------------------------------------------------------------------------------------
# FIR resampling (what NVlabs' upfirdn2d computes, NHWC).


def fir_filter_2d(taps: Sequence[float] = DEFAULT_RESAMPLE_TAPS) -> np.ndarray:
  """The 2-D resampling filter: outer product of the 1-D taps, normalised to sum 1."""
  taps = np.asarray(taps, dtype=np.float32)
  filter_2d = np.outer(taps, taps)
  return (filter_2d / filter_2d.sum()).astype(np.float32)


def taps_from_filter_2d(filter_2d) -> tuple:
  """Inverse of fir_filter_2d up to scale (row sums); None if the filter is not separable."""
  filter_2d = np.asarray(filter_2d, dtype=np.float64)
  if filter_2d.ndim != 2 or filter_2d.shape[0] != filter_2d.shape[1]:
    return None
  taps = filter_2d.sum(axis=1)
  taps = taps / taps.min() if taps.min() > 0 else taps
  taps = tuple(float(np.round(t, 6)) for t in taps)
  taps = tuple(int(t) if float(t).is_integer() else t for t in taps)
  if not np.allclose(fir_filter_2d(taps), filter_2d, rtol=0, atol=1e-7):
    return None
  return taps


def _separable_taps(kernel_2d):
  """(column taps, row taps) whose outer product is kernel_2d, or None if it is not separable."""
  total = kernel_2d.sum()
  if total == 0:
    return None
  rows, columns = kernel_2d.sum(axis=1), kernel_2d.sum(axis=0) / total
  if not np.allclose(np.outer(rows, columns), kernel_2d, rtol=0, atol=1e-7 * np.abs(kernel_2d).max()):
    return None
  return rows, columns


def _correlate_axis(x, taps, axis, stride):
  """sum_k taps[k] * x[..., i * stride + k, ...] along `axis` (VALID): shifted slices, no convolution.

  XLA:CPU runs depthwise (feature-grouped) convolutions and their gradients through a slow
  generic loop (about 15x a dense 3x3 conv of the same tensor here); a handful of
  strided slices and adds is what the blur costs in arithmetic and runs at memory speed.
  """
  length = x.shape[axis] - len(taps) + 1
  out_length = (length - 1) // stride + 1
  total = None
  for offset, tap in enumerate(taps):
    if tap == 0:
      continue
    start = [0] * x.ndim
    limit = list(x.shape)
    strides = [1] * x.ndim
    start[axis], limit[axis], strides[axis] = offset, offset + (out_length - 1) * stride + 1, stride
    term = lax.slice(x, start, limit, strides) * jnp.asarray(tap, x.dtype)
    total = term if total is None else total + term
  return total


def upfirdn2d(x_NHWC, filter_2d, up=1, down=1, padding=(0, 0, 0, 0), gain=1.0):
  """Upsample by zero insertion, pad (negative = crop), FIR-filter, keep every down-th pixel.

  padding is (x_before, x_after, y_before, y_after) as in the official op. The filter is
  applied as a true convolution (flipped), which matters only for asymmetric filters.
  Separable filters (all the official ones) run as two 1-D passes of shifted slices.
  """
  pad_x0, pad_x1, pad_y0, pad_y1 = padding
  # Interior padding inserts up-1 zeros between pixels; the official op also appends
  # up-1 trailing zeros, hence the "+ up - 1" on the far side.
  x = lax.pad(
    x_NHWC, jnp.zeros((), x_NHWC.dtype),
    [(0, 0, 0), (pad_y0, pad_y1 + up - 1, up - 1), (pad_x0, pad_x1 + up - 1, up - 1), (0, 0, 0)])
  kernel = np.asarray(filter_2d, np.float64)[::-1, ::-1] * float(gain)
  taps = _separable_taps(kernel)
  if taps is not None:
    x = _correlate_axis(x, [float(t) for t in taps[0]], axis=1, stride=down)
    return _correlate_axis(x, [float(t) for t in taps[1]], axis=2, stride=down)
  channels = x_NHWC.shape[-1]
  kernel = jnp.asarray(np.tile(kernel.astype(np.float32)[:, :, None, None], (1, 1, 1, channels)), x.dtype)
  return lax.conv_general_dilated(
    x, kernel, window_strides=(down, down), padding="VALID",
    dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)


def upsample2d(x_NHWC, filter_2d, up=2):
  """Doubles the resolution: zero insertion, then the low-pass filter with gain up**2."""
  filter_size = filter_2d.shape[0]
  before, after = (filter_size + up - 1) // 2, (filter_size - up) // 2
  return upfirdn2d(x_NHWC, filter_2d, up=up, padding=(before, after, before, after), gain=up * up)


def downsample2d(x_NHWC, filter_2d, down=2):
  """Halves the resolution: low-pass filter, then keep every down-th pixel."""
  filter_size = filter_2d.shape[0]
  before, after = (filter_size - down + 1) // 2, (filter_size - down) // 2
  return upfirdn2d(x_NHWC, filter_2d, down=down, padding=(before, after, before, after))


# ----------------------------------------------------------------------------------------
# Convolution with FIR up/downsampling (what NVlabs' conv2d_resample computes).


def _conv(x_NHWC, w_HWIO, stride=1, padding=0, groups=1, lhs_dilation=1):
  w_HWIO = w_HWIO.astype(x_NHWC.dtype)
  if groups == 1 and lhs_dilation == 1 and (stride > 1 or w_HWIO.shape[:2] == (1, 1)):
    # gans.layers' conv takes the input gradient of a strided conv as a transposed conv (XLA's own
    # is an input-dilated conv, slow on XLA:CPU: whole StyleGAN2 steps ran 1.05-1.13x faster) and
    # the kernel gradient of a 1x1 conv as a matmul over the operands as stored (XLA's transposes
    # one, fused with the blur's adjoint that computes it). 3x3 stride-1 convs keep XLA's gradients,
    # which were faster there.
    return conv_layers.conv(x_NHWC, w_HWIO, strides=stride, padding=padding)
  if lhs_dilation > 1:
    # Zeros inserted explicitly, then an ordinary convolution: XLA:CPU has no fast kernel for
    # input-dilated convolutions or their gradients (several times slower than this).
    x_NHWC = lax.pad(x_NHWC, jnp.zeros((), x_NHWC.dtype),
                     [(0, 0, 0), (padding, padding, lhs_dilation - 1), (padding, padding, lhs_dilation - 1),
                      (0, 0, 0)])
    padding = 0
  return lax.conv_general_dilated(
    x_NHWC, w_HWIO, window_strides=(stride, stride),
    padding=[(padding, padding), (padding, padding)],
    dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)


def conv2d_resample(x_NHWC, w_HWIO, filter_2d=None, up=1, down=1, padding=0, groups=1,
                    flip_weight=True):
  """2-D convolution fused with FIR upsampling or downsampling, in the official order.

  flip_weight=True correlates (the usual "convolution" of deep learning); False applies
  the kernel as a true convolution. The official layers pass flip_weight = (up == 1), so
  upsampling layers effectively use the flipped kernel; converted weights depend on it.
  The order of operations per case follows the official fast paths, which keeps float32
  results within rounding of theirs.
  """
  kernel_h, kernel_w = w_HWIO.shape[:2]
  if kernel_h != kernel_w:
    raise ValueError(f"square kernels only, got {kernel_h}x{kernel_w}")
  w_HWIO = w_HWIO.astype(x_NHWC.dtype)  # float32 parameters, the activations' computation dtype
  kernel = w_HWIO if flip_weight else w_HWIO[::-1, ::-1]
  if up == 1 and down == 1:
    return _conv(x_NHWC, kernel, padding=padding, groups=groups)
  filter_size = filter_2d.shape[0]
  pad0 = pad1 = padding
  if up > 1:
    pad0 += (filter_size + up - 1) // 2
    pad1 += (filter_size - up) // 2
  if down > 1:
    pad0 += (filter_size - down + 1) // 2
    pad1 += (filter_size - down) // 2
  square = (pad0, pad1, pad0, pad1)
  if kernel_w == 1 and down > 1 and up == 1:  # 1x1: downsample first, then convolve (cheaper)
    x = upfirdn2d(x_NHWC, filter_2d, down=down, padding=square)
    return _conv(x, kernel, groups=groups)
  if kernel_w == 1 and up > 1 and down == 1:  # 1x1: convolve first, then upsample (cheaper)
    x = _conv(x_NHWC, kernel, groups=groups)
    return upfirdn2d(x, filter_2d, up=up, padding=square, gain=up * up)
  if down > 1 and up == 1:  # blur, then strided convolution
    x = upfirdn2d(x_NHWC, filter_2d, padding=square)
    return _conv(x, kernel, stride=down, groups=groups)
  # Upsampling: a transposed strided convolution, then the blur. The official transposed
  # convolution (with the kernel flipped once more, so that flip_weight keeps its meaning)
  # scatters with `kernel` flipped, i.e. equals correlating the zero-stuffed input with
  # `kernel`, padded by kernel-1 for the "full" output and cropped by what the blur does not need.
  pad0 -= kernel_w - 1
  pad1 -= kernel_w - up
  crop = max(min(-pad0, -pad1), 0)
  if groups == 1 and crop == 0:
    # gans.layers' transposed conv (sub-pixel form) makes 16 products per input pixel and channel
    # pair where the zero-stuffed 3x3 conv makes 36, forward and backward.
    x = conv_layers.conv_transpose(x_NHWC, kernel[::-1, ::-1], strides=up)
  else:
    x = _conv(x_NHWC, kernel, padding=kernel_w - 1 - crop, groups=groups, lhs_dilation=up)
  square = (pad0 + crop, pad1 + crop, pad0 + crop, pad1 + crop)
  x = upfirdn2d(x, filter_2d, padding=square, gain=up * up)
  if down > 1:
    x = upfirdn2d(x, filter_2d, down=down)
  return x


def default_fused_modconv() -> bool:
  """Whether modulated convs fuse by default: not on the CPU, where XLA's grouped convolution made a
  64x64 generator's forward pass 4x slower (123 vs 31 ms for 32 images). The official networks fuse
  outside training, which on GPUs is the faster form; the two forms agree to float32 rounding."""
  return jax.default_backend() != "cpu"


def modulated_conv2d(x_NHWC, weight_HWIO, styles, noise=None, up=1, padding=0, filter_2d=None,
                     demodulate=True, flip_weight=True, fused_modconv=None):
  """StyleGAN2's weight (de)modulation (Karras et al. 2020, Sec. 2.2), fused or not.

  styles: [N, in] per-sample input-channel scales. Demodulation rescales each output
  channel to unit expected second moment. The fused path convolves once with per-sample
  weights (a grouped convolution over the batch); the non-fused path scales activations
  before and after a shared convolution. The two agree to float32 rounding.
  fused_modconv=None picks the faster of the two for the backend (`default_fused_modconv`).
  noise: broadcastable to the output, added after demodulation.
  """
  if fused_modconv is None:
    fused_modconv = default_fused_modconv()
  batch = x_NHWC.shape[0]
  kernel_h, kernel_w, in_channels, out_channels = weight_HWIO.shape
  dcoefs = None
  if demodulate:
    # sum_{kh,kw,i} (w[kh,kw,i,o] * s[n,i])^2 = sum_i s[n,i]^2 * sum_{kh,kw} w[kh,kw,i,o]^2: a matmul,
    # not the official [N, kh, kw, I, O] product (G's weight gradient at 64x64, batch 32: 293 ms, not 346).
    dcoefs = lax.rsqrt(jnp.square(styles) @ jnp.sum(jnp.square(weight_HWIO), axis=(0, 1)) + 1e-8)  # [N, O]
  if not fused_modconv:
    x = x_NHWC * styles[:, None, None, :].astype(x_NHWC.dtype)
    x = conv2d_resample(x, weight_HWIO, filter_2d, up=up, padding=padding, flip_weight=flip_weight)
    if demodulate:
      x = x * dcoefs[:, None, None, :].astype(x.dtype)
    if noise is not None:
      x = x + noise.astype(x.dtype)
    return x
  weight = weight_HWIO[None] * styles[:, None, None, :, None]  # [N, kh, kw, I, O]
  if demodulate:
    weight = weight * dcoefs[:, None, None, None, :]
  # Fold the batch into channels: one grouped convolution with batch groups.
  height, width = x_NHWC.shape[1:3]
  x = jnp.transpose(x_NHWC, (1, 2, 0, 3)).reshape(1, height, width, batch * in_channels)
  weight = jnp.transpose(weight, (1, 2, 3, 0, 4)).reshape(
    kernel_h, kernel_w, in_channels, batch * out_channels)
  x = conv2d_resample(x, weight, filter_2d, up=up, padding=padding, groups=batch,
                      flip_weight=flip_weight)
  out_height, out_width = x.shape[1:3]
  x = jnp.transpose(x.reshape(out_height, out_width, batch, out_channels), (2, 0, 1, 3))
  if noise is not None:
    x = x + noise.astype(x.dtype)
  return x


def minibatch_std(x_NHWC, group_size=4, num_channels=1):
  """Appends the per-group standard deviation as extra feature maps (Karras et al. 2018).

  The batch is split into groups of `group_size` samples taken with stride N/group_size
  (sample i belongs to group i % (N/group_size)), as the official reshape does; the
  `num_channels` new channels are the mean std over channel subsets, pixels and samples.
  """
  batch, height, width, channels = x_NHWC.shape
  group = batch if group_size is None else min(group_size, batch)
  if batch % group != 0:
    raise ValueError(f"minibatch-std needs the batch ({batch}) divisible by the group size ({group})")
  if channels % num_channels != 0:
    raise ValueError(f"minibatch-std needs channels ({channels}) divisible by num_channels ({num_channels})")
  y = x_NHWC.reshape(group, -1, height, width, num_channels, channels // num_channels)
  y = y - jnp.mean(y, axis=0)
  y = jnp.mean(jnp.square(y), axis=0)
  y = jnp.sqrt(y + 1e-8)
  y = jnp.mean(y, axis=(1, 2, 4))  # [n, F]
  y = jnp.tile(y[:, None, None, :], (group, height, width, 1))  # [N, H, W, F]
  return jnp.concatenate([x_NHWC, y.astype(x_NHWC.dtype)], axis=-1)


# ----------------------------------------------------------------------------------------
# Equalised-learning-rate layers (Karras et al. 2018, Sec. 4.1).


class EqualizedDense(nn.Module):
  """Fully connected layer; weights ~ N(0,1)/lr_multiplier, scaled at runtime by lr_multiplier/sqrt(fan_in)."""
  features: int  # number of output features
  use_bias: bool = True  # add a learned bias before the activation
  activation: str = "linear"  # key of ACTIVATIONS
  lr_multiplier: float = 1.0  # scales the effective learning rate of this layer (0.01 in the mapping network)
  bias_init: float = 0.0  # initial value of the stored bias (1 for style affines: styles start at 1)

  @nn.compact
  def __call__(self, x):
    in_features = x.shape[-1]
    weight = self.param(  # [in, out]
      "weight", lambda key, shape: jax.random.normal(key, shape) / self.lr_multiplier,
      (in_features, self.features))
    weight = weight * (self.lr_multiplier / np.sqrt(in_features))
    bias = None
    if self.use_bias:
      bias = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,))
      if self.lr_multiplier != 1:
        bias = bias * self.lr_multiplier
    x = jnp.matmul(x, weight.astype(x.dtype))
    return bias_act(x, bias, self.activation)


class EqualizedConv2d(nn.Module):
  """Conv layer with equalised lr, optional FIR up/downsampling, bias, activation and clamp."""
  features: int  # number of output channels
  kernel_size: int  # square kernel width; padding keeps the size ('same') before resampling
  use_bias: bool = True  # add a learned bias before the activation
  activation: str = "linear"  # key of ACTIVATIONS
  up: int = 1  # integer upsampling factor
  down: int = 1  # integer downsampling factor
  resample_taps: tuple = DEFAULT_RESAMPLE_TAPS  # 1-D taps of the low-pass resampling filter
  conv_clamp: Optional[float] = None  # clip outputs to +-conv_clamp (times gain); None = no clipping

  @nn.compact
  def __call__(self, x_NHWC, gain=1.0):
    in_channels = x_NHWC.shape[-1]
    weight = self.param(
      "weight", nn.initializers.normal(1.0), (self.kernel_size, self.kernel_size, in_channels, self.features))
    weight = weight * (1 / np.sqrt(in_channels * self.kernel_size ** 2))
    x = conv2d_resample(x_NHWC, weight, fir_filter_2d(self.resample_taps), up=self.up, down=self.down,
                        padding=self.kernel_size // 2, flip_weight=(self.up == 1))
    bias = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, bias, self.activation, gain=activation_gain(self.activation) * gain, clamp=clamp)


# ----------------------------------------------------------------------------------------
# Style-modulated layers of the synthesis network.

NOISE_MODES = ("random", "const", "none")


class SynthesisLayer(nn.Module):
  """Modulated 3x3 conv (+ optional 2x upsampling), per-pixel noise, bias, activation.

  Noise: 'random' draws fresh N(0,1) noise from the 'noise' rng stream, 'const' uses the
  fixed `noise_const` buffer (collection "buffers", not trained), 'none' adds nothing.
  """
  features: int  # number of output channels
  resolution: int  # output resolution; the size of noise_const
  kernel_size: int = 3  # square kernel width
  up: int = 1  # 2 for the first layer of each block after the first
  use_noise: bool = True  # add per-pixel noise scaled by a learned strength
  activation: str = "lrelu"  # key of ACTIVATIONS
  resample_taps: tuple = DEFAULT_RESAMPLE_TAPS  # 1-D taps of the upsampling filter
  conv_clamp: Optional[float] = None  # clip outputs to +-conv_clamp (times gain); None = no clipping

  @nn.compact
  def __call__(self, x_NHWC, w, noise_mode="random", fused_modconv=None, gain=1.0):
    if noise_mode not in NOISE_MODES:
      raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    in_channels = x_NHWC.shape[-1]
    styles = EqualizedDense(in_channels, bias_init=1.0, name="affine")(w)
    weight = self.param(
      "weight", nn.initializers.normal(1.0), (self.kernel_size, self.kernel_size, in_channels, self.features))
    noise = None
    if self.use_noise:
      noise_const = self.variable(
        "buffers", "noise_const",
        lambda: jax.random.normal(self.make_rng("params"), (self.resolution, self.resolution)))
      noise_strength = self.param("noise_strength", nn.initializers.zeros, ())
      if noise_mode == "random":
        shape = (x_NHWC.shape[0], self.resolution, self.resolution, 1)
        # Drawn in float32 whatever the computation dtype, so a bfloat16 run sees the float32 run's noise.
        noise = jax.random.normal(self.make_rng("noise"), shape, jnp.float32) * noise_strength
      elif noise_mode == "const":
        noise = noise_const.value[None, :, :, None] * noise_strength
    x = modulated_conv2d(
      x_NHWC, weight, styles, noise=noise, up=self.up, padding=self.kernel_size // 2,
      filter_2d=fir_filter_2d(self.resample_taps), flip_weight=(self.up == 1), fused_modconv=fused_modconv)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, bias, self.activation, gain=activation_gain(self.activation) * gain, clamp=clamp)


class ToRGB(nn.Module):
  """Modulated 1x1 conv to image channels, without demodulation (Karras et al. 2020, Fig. 7)."""
  features: int  # number of image channels
  kernel_size: int = 1  # square kernel width
  conv_clamp: Optional[float] = None  # clip outputs to +-conv_clamp; None = no clipping

  @nn.compact
  def __call__(self, x_NHWC, w, fused_modconv=None):
    in_channels = x_NHWC.shape[-1]
    # Without demodulation the equalised-lr scale must be applied somewhere: on the styles.
    styles = EqualizedDense(in_channels, bias_init=1.0, name="affine")(w)
    styles = styles * (1 / np.sqrt(in_channels * self.kernel_size ** 2))
    weight = self.param(
      "weight", nn.initializers.normal(1.0), (self.kernel_size, self.kernel_size, in_channels, self.features))
    x = modulated_conv2d(x_NHWC, weight, styles, demodulate=False, fused_modconv=fused_modconv)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return bias_act(x, bias, clamp=self.conv_clamp)
