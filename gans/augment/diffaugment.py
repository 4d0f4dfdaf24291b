"""DiffAugment (Zhao, Liu, Lin, Zhu & Han 2020): differentiable augmentation of every image D sees.

Policies, as in the paper's reference code (facts, not its code): "color" =
brightness (add U(-0.5, 0.5)), saturation (scale the deviation from the pixel's
channel mean by U(0, 2)), contrast (scale the deviation from the image's mean by
U(0.5, 1.5)), in that order; "translation" = shift by an integer in
[-round(size / 8), round(size / 8)] per axis, zeros shifted in; "cutout" = zero
a square of half the image side centred at a uniform integer position (clipped
at the border). Every parameter is drawn per example. A policy is a
comma-separated list applied in the order given, the paper's default being
"color,translation,cutout". Images are NHWC in [-1, 1].
"""
import jax
import jax.numpy as jnp

TRANSLATION_RATIO = 0.125  # largest shift as a fraction of the image side
CUTOUT_RATIO = 0.5  # side of the cut-out square as a fraction of the image side


def _per_example(key, x, minval=0.0, maxval=1.0):
  return jax.random.uniform(key, (x.shape[0], 1, 1, 1), x.dtype, minval, maxval)


def brightness(key, x_NHWC):
  return x_NHWC + (_per_example(key, x_NHWC) - 0.5)


def saturation(key, x_NHWC):
  mean = jnp.mean(x_NHWC, axis=3, keepdims=True)
  return (x_NHWC - mean) * (_per_example(key, x_NHWC) * 2) + mean


def contrast(key, x_NHWC):
  mean = jnp.mean(x_NHWC, axis=(1, 2, 3), keepdims=True)
  return (x_NHWC - mean) * (_per_example(key, x_NHWC) + 0.5) + mean


def _round_half_up(value: float) -> int:
  return int(value + 0.5)  # the reference's int(size * ratio + 0.5)


def shift_with_zeros(x_NHWC, shift_y, shift_x):
  """out[n, i, j] = x[n, i + shift_y[n], j + shift_x[n]], zero where that falls outside the image."""
  def along(x, shift, axis):
    size = x.shape[axis]
    source = jnp.arange(size)[None, :] + shift[:, None]  # [N, size]
    inside = (source >= 0) & (source < size)
    shape = [x.shape[0], 1, 1, 1]
    shape[axis] = size
    index = jnp.clip(source, 0, size - 1).reshape(shape)
    return jnp.take_along_axis(x, jnp.broadcast_to(index, x.shape), axis=axis) * inside.reshape(shape).astype(x.dtype)
  return along(along(x_NHWC, shift_y, 1), shift_x, 2)


def translation(key, x_NHWC, ratio=TRANSLATION_RATIO):
  n, height, width = x_NHWC.shape[:3]
  max_y, max_x = _round_half_up(height * ratio), _round_half_up(width * ratio)
  y_key, x_key = jax.random.split(key)
  shift_y = jax.random.randint(y_key, (n,), -max_y, max_y + 1)
  shift_x = jax.random.randint(x_key, (n,), -max_x, max_x + 1)
  return shift_with_zeros(x_NHWC, shift_y, shift_x)


def cutout_mask(height, width, size_y, size_x, center_y, center_x):
  """[N, H, W, 1] mask: 0 inside the size_y x size_x box starting at center - size // 2, 1 elsewhere."""
  def inside(length, size, center):
    first = center - size // 2
    coords = jnp.arange(length)[None, :]
    return (coords >= first[:, None]) & (coords < first[:, None] + size)
  box = inside(height, size_y, center_y)[:, :, None] & inside(width, size_x, center_x)[:, None, :]
  return (~box)[..., None]


def cutout(key, x_NHWC, ratio=CUTOUT_RATIO):
  n, height, width = x_NHWC.shape[:3]
  size_y, size_x = _round_half_up(height * ratio), _round_half_up(width * ratio)
  y_key, x_key = jax.random.split(key)
  # The reference draws the centre from [0, side + 1 - size % 2), so even squares may hang off either edge.
  center_y = jax.random.randint(y_key, (n,), 0, height + 1 - size_y % 2)
  center_x = jax.random.randint(x_key, (n,), 0, width + 1 - size_x % 2)
  return x_NHWC * cutout_mask(height, width, size_y, size_x, center_y, center_x).astype(x_NHWC.dtype)


POLICIES = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


def parse_policy(policy: str) -> tuple[str, ...]:
  """"color,translation" -> ("color", "translation"); "" -> (); unknown names fail with the valid ones."""
  names = tuple(name.strip() for name in policy.split(",") if name.strip())
  unknown = [name for name in names if name not in POLICIES]
  if unknown:
    raise ValueError(f"Unknown DiffAugment policy {unknown} in {policy!r}; valid: comma-separated names from "
                     f"{', '.join(POLICIES)} (e.g. color,translation,cutout), or 'ada'.")
  return names


def diff_augment(key, x_NHWC, policy: tuple[str, ...]):
  """x augmented by each transform of `policy` in turn, each with its own key and per-example parameters."""
  transforms = [transform for name in policy for transform in POLICIES[name]]
  for index, transform in enumerate(transforms):
    x_NHWC = transform(jax.random.fold_in(key, index), x_NHWC)
  return x_NHWC
