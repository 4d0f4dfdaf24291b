"""ADA (Karras, Aittala, Hellsten, Laine, Lehtinen & Aila 2020): the augmentation pipeline and its controller.

The pipeline follows the paper's Appendix B and the defaults of its official
implementation (stylegan2-ada-pytorch, training/augment.py; facts, not its
code): each augmentation runs with probability p times its multiplier (1 in
every preset), with parameters drawn per example, in this order:

  pixel blitting   x-flip, rotation by a multiple of 90 degrees, integer translation of up to 1/8 of
                   the side with reflected content shifted in;
  geometric        isotropic scaling (log2 std 0.2), rotation (uniform angle, split into a rotation
                   before and one after the anisotropic scaling, each with probability
                   1 - sqrt(1 - p), so that either happens with probability p), anisotropic scaling
                   (log2 std 0.2), fractional translation (std 1/8 of the side): one composed matrix,
                   executed once by reflection padding, 2x upsampling with the sym6 wavelet, bilinear
                   sampling and sym6 downsampling;
  colour           brightness (std 0.2), contrast (log2 std 0.5), luma flip, hue rotation about the
                   luma axis (uniform angle), saturation (log2 std 1): one 4x4 matrix per example;
  filtering        four frequency bands (a sym2 filter bank), each amplified with probability p by
                   2^N(0, 1), the gains normalised to the expected power of the bands;
  noise            additive Gaussian noise of std |N(0, 0.1^2)|;
  cutout           a square of half the image side, centred uniformly, set to zero.

Images are NHWC in [-1, 1]; every operation is differentiable and traceable
under jit, and the geometric step pads by the largest margin the official code
allows (side - 1), so its shapes are static.

The controller (`update_p`) is the paper's overfitting heuristic: r_t = E[sign(D(real))]
over the last `interval` D steps, and p moves by sign(r_t - target) times (images in
those steps) / (kimg * 1000), so it can go from 0 to 1 in `kimg` thousand images;
p is bounded below by 0 and, as in the official code, not above.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

# Wavelet coefficients as tabulated by PyWavelets (and the official augment.py).
SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)

BLIT = ("xflip", "rotate90", "xint")
GEOM = ("scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
PRESETS = {  # the official --augpipe choices
    "blit": BLIT, "geom": GEOM, "color": COLOR, "filter": ("imgfilter",), "noise": ("noise",),
    "cutout": ("cutout",), "bg": BLIT + GEOM, "bgc": BLIT + GEOM + COLOR,
    "bgcf": BLIT + GEOM + COLOR + ("imgfilter",), "bgcfn": BLIT + GEOM + COLOR + ("imgfilter", "noise"),
    "bgcfnc": BLIT + GEOM + COLOR + ("imgfilter", "noise", "cutout"),
}

# The official AugmentPipe's default strengths.
XINT_MAX = 0.125
SCALE_STD = 0.2
ROTATE_MAX = 1.0  # fraction of a half turn: angles uniform in [-pi, pi]
ANISO_STD = 0.2
XFRAC_STD = 0.125
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5
HUE_MAX = 1.0
SATURATION_STD = 1.0
IMGFILTER_STD = 1.0
EXPECTED_BAND_POWER = np.array([10, 1, 1, 1]) / 13  # 1/f spectrum of natural images
NOISE_STD = 0.1
CUTOUT_SIZE = 0.5
LUMA_AXIS = np.array([1, 1, 1, 0]) / np.sqrt(3)


def preset(name: str) -> tuple[str, ...]:
  if name not in PRESETS:
    raise ValueError(f"Unknown ADA preset {name!r} in config.augment.ada_pipe; valid: {', '.join(PRESETS)}.")
  return PRESETS[name]


# ---------------------------------------------------------------------------- matrices, batched [N, k, k]

def _matrix(rows):
  """rows of entries (scalars or [N] arrays) -> [N, k, k]."""
  n = max(jnp.shape(e)[0] if jnp.ndim(e) else 1 for row in rows for e in row)
  return jnp.stack([jnp.stack([jnp.broadcast_to(jnp.asarray(e, jnp.float32), (n,)) for e in row], -1)
                    for row in rows], -2)


def translate2d(tx, ty):
  return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def scale2d(sx, sy):
  return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def rotate2d(theta):
  return _matrix([[jnp.cos(theta), -jnp.sin(theta), 0], [jnp.sin(theta), jnp.cos(theta), 0], [0, 0, 1]])


def translate3d(tx, ty, tz):
  return _matrix([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]])


def scale3d(sx, sy, sz):
  return _matrix([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]])


def rotate3d(axis, theta):
  """Rotation by theta about the unit vector `axis` (Rodrigues' formula), homogeneous 4x4."""
  vx, vy, vz = (float(a) for a in axis[:3])
  s, c = jnp.sin(theta), jnp.cos(theta)
  cc = 1 - c
  return _matrix([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
                  [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
                  [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
                  [0, 0, 0, 1]])


def _matmul(a, b):
  return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


# ---------------------------------------------------------------------------- filters

def _correlate(x_NHWC, taps, axis):
  """Valid correlation along axis 1 or 2: out[i] = sum_k taps[k] x[i + k]; taps [K] or per example [N, K].

  Fixed taps as a sum of shifted slices, which XLA:CPU ran 2.8x faster than a depthwise convolution in
  the ADA step (fused, no grouped convolution); per-example taps as one grouped convolution with the
  examples folded into channels.
  """
  if np.ndim(taps) == 1:
    taps = np.asarray(taps)
    length = x_NHWC.shape[axis] - len(taps) + 1
    return sum(float(tap) * jax.lax.slice_in_dim(x_NHWC, k, k + length, axis=axis) for k, tap in enumerate(taps))
  n, height, width, channels = x_NHWC.shape
  taps = jnp.asarray(taps, x_NHWC.dtype)
  kernel_shape = (taps.shape[-1], 1) if axis == 1 else (1, taps.shape[-1])
  lhs = jnp.moveaxis(x_NHWC, 0, 2).reshape(1, height, width, n * channels)
  kernel = jnp.repeat(taps.T, channels, axis=1).reshape(kernel_shape + (1, n * channels))
  out = jax.lax.conv_general_dilated(lhs, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     feature_group_count=n * channels, precision=jax.lax.Precision.HIGHEST)
  return jnp.moveaxis(out.reshape(out.shape[1:3] + (n, channels)), 2, 0)


def upsample2x(x, taps, axis):
  """The official upsample2d along one axis: zeros interleaved, then convolution with 2 * taps / sum(taps)."""
  taps = np.asarray(taps) / np.sum(taps) * 2
  interleaved = jnp.stack([x, jnp.zeros_like(x)], axis=axis + 1).reshape(
      x.shape[:axis] + (2 * x.shape[axis],) + x.shape[axis + 1:])
  pad = [(0, 0)] * x.ndim
  pad[axis] = ((len(taps) + 1) // 2, (len(taps) - 2) // 2)
  return _correlate(jnp.pad(interleaved, pad), taps[::-1], axis)


def downsample2x_cropped(x, taps, axis, crop):
  """The official downsample2d(padding=-crop, flip_filter=True) along one axis."""
  taps = np.asarray(taps) / np.sum(taps)
  before, after = -crop + (len(taps) - 1) // 2, -crop + (len(taps) - 2) // 2
  x = jax.lax.slice_in_dim(x, -before, x.shape[axis] + after, axis=axis)
  return jax.lax.slice_in_dim(_correlate(x, taps, axis), 0, None, stride=2, axis=axis)


@functools.lru_cache(maxsize=None)
def filter_bank() -> np.ndarray:
  """[4, taps]: band-pass filters from the sym2 wavelet whose sum is the identity (a delta)."""
  lo = np.asarray(SYM2)
  hi = lo * (-1.0) ** np.arange(lo.size)
  lo2 = np.convolve(lo, lo[::-1]) / 2  # H(z) H(1/z) / 2
  hi2 = np.convolve(hi, hi[::-1]) / 2  # H(-z) H(-1/z) / 2
  bank = np.eye(4, 1)
  for band in range(1, 4):
    bank = np.dstack([bank, np.zeros_like(bank)]).reshape(4, -1)[:, :-1]  # the coarser bands at half the rate
    bank = scipy.signal.convolve(bank, [lo2])
    start = (bank.shape[1] - hi2.size) // 2
    bank[band, start:start + hi2.size] += hi2
  return bank


# ---------------------------------------------------------------------------- sampling

def bilinear_sample(images_NHWC, x, y):
  """images at pixel coordinates (x, y) [N, Ho, Wo] (pixel centres at integers), zero outside."""
  height, width = images_NHWC.shape[1:3]
  x0, y0 = jnp.floor(x), jnp.floor(y)

  def tap(image, xi, yi):
    inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
    values = image[jnp.clip(yi, 0, height - 1).astype(jnp.int32), jnp.clip(xi, 0, width - 1).astype(jnp.int32)]
    return values * inside[..., None].astype(image.dtype)

  def one(image, x, y, x0, y0):
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    return ((1 - wy) * ((1 - wx) * tap(image, x0, y0) + wx * tap(image, x0 + 1, y0))
            + wy * ((1 - wx) * tap(image, x0, y0 + 1) + wx * tap(image, x0 + 1, y0 + 1)))
  return jax.vmap(one)(images_NHWC, x, y, x0, y0)


@functools.lru_cache(maxsize=None)
def _resampling_matrices(side: int) -> tuple[np.ndarray, np.ndarray]:
  """(up, down): the geometric step's fixed linear maps along an axis of length `side`, as matrices.

  up = reflection padding by side - 1, then the 2x sym6 upsampling; down = the cropped 2x sym6
  downsampling. Built by applying the slice forms to the identity, so they are those forms exactly. As
  matrices, each axis is one matmul (and so is its gradient): XLA:CPU fused the chain of shifted slices into
  its consumers and recomputed it (the geometric step's forward and gradient on 64 images of 32x32: 198 ms
  with the slices, 56 ms with the matrices).
  """
  eye = np.eye(side, dtype=np.float32)[None, :, :, None]  # NHWC: H = position, W = basis vector
  with jax.ensure_compile_time_eval():
    padded = jnp.pad(eye, ((0, 0), (side - 1, side - 1), (0, 0), (0, 0)), mode="reflect")
    up = np.asarray(upsample2x(padded, SYM6, 1))[0, :, :, 0]
    out = 2 * (side + 2 * (len(SYM6) // 4))  # the sampled grid's length
    down = np.asarray(downsample2x_cropped(jnp.eye(out, dtype=jnp.float32)[None, :, :, None], SYM6, 1,
                                           len(SYM6) // 2))[0, :, :, 0]
  return up, down


def _along_axes(matrix_y, images_NHWC, matrix_x):
  return jnp.einsum("Yy,nyxc,Xx->nYXc", matrix_y, images_NHWC, matrix_x, precision=jax.lax.Precision.HIGHEST)


def geometric_transform(images_NHWC, g_inv):
  """Applies g_inv [N, 3, 3] (output pixel -> input pixel, origin at the image centre) as the official code."""
  n, height, width, _ = images_NHWC.shape
  pad = len(SYM6) // 4
  (up_y, down_y), (up_x, down_x) = _resampling_matrices(height), _resampling_matrices(width)
  # Padded by the official margin's upper bound (side - 1), so the shape is static.
  images = _along_axes(up_y, images_NHWC, up_x)
  g = _matmul(_matmul(scale2d(2, 2), g_inv), scale2d(0.5, 0.5))
  g = _matmul(_matmul(translate2d(-0.5, -0.5), g), translate2d(0.5, 0.5))
  out_h, out_w = (height + pad * 2) * 2, (width + pad * 2) * 2
  in_h, in_w = images.shape[1:3]
  g = _matmul(_matmul(scale2d(2 / in_w, 2 / in_h), g), scale2d(out_w / 2, out_h / 2))
  # affine_grid / grid_sample with align_corners=False: normalised coordinates of pixel centres.
  xn = (2 * jnp.arange(out_w) + 1) / out_w - 1
  yn = (2 * jnp.arange(out_h) + 1) / out_h - 1
  xs = g[:, 0, 0, None, None] * xn[None, None, :] + g[:, 0, 1, None, None] * yn[None, :, None] + g[:, 0, 2, None, None]
  ys = g[:, 1, 0, None, None] * xn[None, None, :] + g[:, 1, 1, None, None] * yn[None, :, None] + g[:, 1, 2, None, None]
  images = bilinear_sample(images, ((xs + 1) * in_w - 1) / 2, ((ys + 1) * in_h - 1) / 2)
  return _along_axes(down_y, images, down_x)


def reflect_translate(images_NHWC, tx, ty):
  """out[n, y, x] = in[n, reflect(y + ty), reflect(x - tx)], reflecting about the edge pixels (official xint)."""
  height, width = images_NHWC.shape[1:3]
  x = jnp.arange(width)[None, :] - tx[:, None]
  y = jnp.arange(height)[None, :] + ty[:, None]
  x = width - 1 - jnp.abs(width - 1 - jnp.mod(x, 2 * width - 2))
  y = height - 1 - jnp.abs(height - 1 - jnp.mod(y, 2 * height - 2))
  images = jnp.take_along_axis(images_NHWC, jnp.broadcast_to(y[:, :, None, None], images_NHWC.shape), axis=1)
  return jnp.take_along_axis(images, jnp.broadcast_to(x[:, None, :, None], images.shape), axis=2)


# ---------------------------------------------------------------------------- the pipeline

class _Keys:
  """A fresh key per draw, in a fixed order."""

  def __init__(self, key):
    self._key, self._count = key, 0

  def __call__(self):
    self._count += 1
    return jax.random.fold_in(self._key, self._count)


def _chosen(keys, n, probability):
  """[N] booleans, each True with `probability` (the official torch.rand(...) < probability)."""
  return jax.random.uniform(keys(), (n,)) < probability


def ada_pipeline(key, images_NHWC, p, augmentations: tuple[str, ...]):
  """The ADA pipeline with strength p on a batch; computes every enabled step even where p = 0."""
  unknown = sorted(set(augmentations) - {a for names in PRESETS.values() for a in names})
  if unknown:
    raise ValueError(f"Unknown ADA augmentations {unknown}.")
  enabled = set(augmentations)
  images = images_NHWC
  n, height, width, channels = images.shape
  keys = _Keys(key)
  uniform = lambda shape=(n,): jax.random.uniform(keys(), shape)
  normal = lambda shape=(n,): jax.random.normal(keys(), shape)

  if "xflip" in enabled:
    flip = jnp.floor(uniform() * 2) * _chosen(keys, n, p)
    images = jnp.where(flip[:, None, None, None] == 1, images[:, :, ::-1], images)
  if "rotate90" in enabled:
    if height != width:
      raise ValueError(f"rotate90 needs square images, got {height}x{width}.")
    quarter = jnp.floor(uniform() * 4) * _chosen(keys, n, p)
    turn = lambda cond, x, y: jnp.where(cond[:, None, None, None], x, y)
    images = turn((quarter == 1) | (quarter == 2), images[:, :, ::-1], images)
    images = turn((quarter == 2) | (quarter == 3), images[:, ::-1], images)
    images = turn((quarter == 1) | (quarter == 3), jnp.swapaxes(images, 1, 2), images)
  if "xint" in enabled:
    t = (uniform((n, 2)) * 2 - 1) * XINT_MAX * _chosen(keys, n, p)[:, None]
    images = reflect_translate(images, jnp.round(t[:, 0] * width).astype(jnp.int32),
                               jnp.round(t[:, 1] * height).astype(jnp.int32))

  if enabled & set(GEOM):
    g_inv = jnp.broadcast_to(jnp.eye(3), (n, 3, 3))
    if "scale" in enabled:
      s = jnp.where(_chosen(keys, n, p), jnp.exp2(normal() * SCALE_STD), 1.0)
      g_inv = _matmul(g_inv, scale2d(1 / s, 1 / s))
    p_rot = 1 - jnp.sqrt(jnp.clip(1 - p, 0, 1))  # P(before or after) = p
    rotation = lambda: jnp.where(_chosen(keys, n, p_rot), (uniform() * 2 - 1) * np.pi * ROTATE_MAX, 0.0)
    if "rotate" in enabled:
      g_inv = _matmul(g_inv, rotate2d(rotation()))  # before the anisotropic scaling
    if "aniso" in enabled:
      s = jnp.where(_chosen(keys, n, p), jnp.exp2(normal() * ANISO_STD), 1.0)
      g_inv = _matmul(g_inv, scale2d(1 / s, s))
    if "rotate" in enabled:
      g_inv = _matmul(g_inv, rotate2d(rotation()))  # after it
    if "xfrac" in enabled:
      t = normal((n, 2)) * XFRAC_STD * _chosen(keys, n, p)[:, None]
      g_inv = _matmul(g_inv, translate2d(-t[:, 0] * width, -t[:, 1] * height))
    images = geometric_transform(images, g_inv)

  if enabled & set(COLOR):
    m = jnp.broadcast_to(jnp.eye(4), (n, 4, 4))
    v = jnp.asarray(LUMA_AXIS, jnp.float32)
    vv = jnp.outer(v, v)
    if "brightness" in enabled:
      b = normal() * BRIGHTNESS_STD * _chosen(keys, n, p)
      m = _matmul(translate3d(b, b, b), m)
    if "contrast" in enabled:
      c = jnp.where(_chosen(keys, n, p), jnp.exp2(normal() * CONTRAST_STD), 1.0)
      m = _matmul(scale3d(c, c, c), m)
    if "lumaflip" in enabled:
      flip = jnp.floor(uniform() * 2) * _chosen(keys, n, p)
      m = _matmul(jnp.eye(4) - 2 * vv * flip[:, None, None], m)  # Householder reflection of the luma axis
    if "hue" in enabled and channels > 1:
      theta = jnp.where(_chosen(keys, n, p), (uniform() * 2 - 1) * np.pi * HUE_MAX, 0.0)
      m = _matmul(rotate3d(LUMA_AXIS, theta), m)
    if "saturation" in enabled and channels > 1:
      s = jnp.where(_chosen(keys, n, p), jnp.exp2(normal() * SATURATION_STD), 1.0)
      m = _matmul(vv + (jnp.eye(4) - vv) * s[:, None, None], m)
    images = apply_color_matrix(images, m)

  if "imgfilter" in enabled:
    bank = filter_bank()
    gains = jnp.ones((n, 4))
    for band in range(4):
      t_band = jnp.where(_chosen(keys, n, p), jnp.exp2(normal() * IMGFILTER_STD), 1.0)
      t = jnp.ones((n, 4)).at[:, band].set(t_band)
      t = t / jnp.sqrt(jnp.sum(EXPECTED_BAND_POWER * t ** 2, axis=-1, keepdims=True))
      gains = gains * t
    taps = _matmul(gains, jnp.asarray(bank, jnp.float32))  # [N, taps]
    half = bank.shape[1] // 2
    images = jnp.pad(images, ((0, 0), (half, half), (half, half), (0, 0)), mode="reflect")
    images = _correlate(_correlate(images, taps, 2), taps, 1)

  if "noise" in enabled:
    sigma = jnp.abs(normal()) * NOISE_STD * _chosen(keys, n, p)
    images = images + jax.random.normal(keys(), images.shape) * sigma[:, None, None, None]
  if "cutout" in enabled:
    size = CUTOUT_SIZE * _chosen(keys, n, p)
    center = uniform((n, 2))
    outside_x = jnp.abs((jnp.arange(width) + 0.5) / width - center[:, 0:1]) >= size[:, None] / 2
    outside_y = jnp.abs((jnp.arange(height) + 0.5) / height - center[:, 1:2]) >= size[:, None] / 2
    images = images * (outside_y[:, :, None] | outside_x[:, None, :])[..., None].astype(images.dtype)
  return images


def apply_color_matrix(images_NHWC, m):
  """m [N, 4, 4] on RGB values; one channel gets the mean of the matrix's RGB rows, as the official code."""
  channels = images_NHWC.shape[-1]
  if channels == 3:
    rgb = jnp.einsum("nij,nhwj->nhwi", m[:, :3, :3], images_NHWC, precision=jax.lax.Precision.HIGHEST)
    return rgb + m[:, None, None, :3, 3]
  if channels == 1:
    row = jnp.mean(m[:, :3, :], axis=1)  # [N, 4]
    return images_NHWC * jnp.sum(row[:, :3], axis=1)[:, None, None, None] + row[:, None, None, 3:]
  raise ValueError(f"ADA's colour transforms need 1 or 3 channels, got {channels}.")


def ada_augment(key, images_NHWC, p, augmentations: tuple[str, ...]):
  """ada_pipeline, skipped (the identity, exactly) while p = 0, as ADA runs at the start of training."""
  return jax.lax.cond(p > 0, lambda x: ada_pipeline(key, x, p, augmentations), lambda x: x, images_NHWC)


# ---------------------------------------------------------------------------- the controller

def initial_ada_state(p: float) -> dict:
  """p, the sign statistics gathered since its last adjustment, and the D steps measured so far."""
  return {"p": jnp.asarray(p, jnp.float32), "signs": jnp.zeros((), jnp.float32),
          "count": jnp.zeros((), jnp.int32), "steps": jnp.zeros((), jnp.int32)}


def update_p(ada_state: dict, real_signs, batch_size: int, *, target: float, interval: int, kimg: float) -> dict:
  """Adds one D step's E[sign(D(real))]; on D steps 0, interval, 2 interval, ... (the official loop's
  batch_idx % ada_interval == 0) moves p by sign(r_t - target) * batch * interval / (kimg * 1000), with
  r_t the mean since the last move, clamps it at 0 and starts a new interval. target = 0 keeps p fixed."""
  signs = ada_state["signs"] + real_signs
  count = ada_state["count"] + 1
  due = ada_state["steps"] % interval == 0
  r_t = signs / count.astype(jnp.float32)
  step = jnp.sign(r_t - target) * (batch_size * interval) / (kimg * 1000) if target else 0.0
  return {"p": jnp.where(due, jnp.maximum(ada_state["p"] + step, 0.0), ada_state["p"]),
          "signs": jnp.where(due, 0.0, signs), "count": jnp.where(due, 0, count),
          "steps": ada_state["steps"] + 1}
