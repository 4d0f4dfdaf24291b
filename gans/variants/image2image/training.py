"""Pieces pix2pix and CycleGAN share: the official GANLoss, random jitter, the image pool.

GANLoss (models/networks.py): the target label expanded to the prediction's shape, so the loss is a mean
over every element of the PatchGAN map. "lsgan" is MSE to 1 (real) / 0 (fake), "vanilla"
BCE-with-logits to the same targets (D outputs raw scores).

Random jitter (the official resize_and_crop + flip): sources load images at data.resolution (load_size);
here each example is cropped at a random offset to data.crop_size and flipped horizontally with
probability 1/2 when data.flip, drawn on the device once per step in the variants' `prepare` (so D and G
see the same batch). Paired data gets one draw for A and B (the aligned dataset's shared transform
parameters); unpaired data independent draws per domain.

ImagePool (util/image_pool.py), as explicit state {"images": f32[pool_size, H, W, C], "count": int32}:
each image of the batch in turn is stored and returned while fewer than pool_size are stored; once full,
with probability 1/2 a uniformly chosen stored image is returned and replaced by the new one, otherwise
the new image is returned. Its draws come from the D phase's key.
"""
import jax
import jax.numpy as jnp
import optax

GAN_MODES = ("lsgan", "vanilla")


def gan_loss(prediction: jax.Array, target_is_real: bool, gan_mode: str) -> jax.Array:
  """The official GANLoss(gan_mode)(prediction, target_is_real)."""
  target = jnp.full_like(prediction, 1.0 if target_is_real else 0.0)
  if gan_mode == "lsgan":
    return jnp.mean(jnp.square(prediction - target))
  if gan_mode == "vanilla":
    return jnp.mean(optax.sigmoid_binary_cross_entropy(prediction, target))
  raise ValueError(f"Unknown gan_mode {gan_mode!r}; valid: {', '.join(GAN_MODES)}.")


def l1(x: jax.Array, y: jax.Array) -> jax.Array:
  """nn.L1Loss(): the mean absolute difference."""
  return jnp.mean(jnp.abs(x - y))


# ----------------------------------------------------------------------------- jitter

def jitter_settings(data_config) -> tuple[int, bool]:
  """(crop_size, flip) of the config; crop_size 0 = no crop."""
  resolution = data_config.get("resolution", 32)
  crop_size = data_config.get("crop_size", 0) or resolution
  if crop_size > resolution:
    raise ValueError(f"data.crop_size={crop_size} exceeds data.resolution={resolution} (the load size).")
  return crop_size, bool(data_config.get("flip", False))


def random_jitter(key: jax.Array, images_NHWC: list, crop_size: int, flip: bool) -> list:
  """Crops every array of `images_NHWC` at one random offset per example to crop_size and flips it with
  probability 1/2 when `flip`: the same draw for every array (aligned pairs)."""
  n, height, width = images_NHWC[0].shape[:3]
  if crop_size == height == width and not flip:
    return list(images_NHWC)
  y_key, x_key, flip_key = jax.random.split(key, 3)
  ys = jax.random.randint(y_key, (n,), 0, height - crop_size + 1)
  xs = jax.random.randint(x_key, (n,), 0, width - crop_size + 1)
  flips = jax.random.bernoulli(flip_key, 0.5, (n,)) if flip else jnp.zeros((n,), bool)

  def one(image_HWC, y, x, flipped):
    crop = jax.lax.dynamic_slice(image_HWC, (y, x, 0), (crop_size, crop_size, image_HWC.shape[-1]))
    return jnp.where(flipped, crop[:, ::-1], crop)

  return [jax.vmap(one)(images, ys, xs, flips) for images in images_NHWC]


# ----------------------------------------------------------------------------- image pool

def empty_pool(pool_size: int, image_shape: tuple[int, ...]) -> dict:
  return {"images": jnp.zeros((pool_size,) + tuple(image_shape), jnp.float32), "count": jnp.zeros((), jnp.int32)}


def query_pool(pool: dict, images_NHWC: jax.Array, key: jax.Array) -> tuple[jax.Array, dict]:
  """(images for D, the updated pool): ImagePool.query with its random draws from `key`."""
  pool_size = pool["images"].shape[0]
  if pool_size == 0:
    return images_NHWC, pool

  def one(carry, inputs):
    stored, count = carry
    image, image_key = inputs
    uniform_key, index_key = jax.random.split(image_key)
    full = count >= pool_size
    swap = full & (jax.random.uniform(uniform_key) > 0.5)
    index = jax.random.randint(index_key, (), 0, pool_size)
    returned = jnp.where(swap, stored[index], image)
    slot = jnp.where(full, index, count)
    stored = stored.at[slot].set(jnp.where(full & ~swap, stored[slot], image))
    return (stored, jnp.where(full, count, count + 1)), returned

  keys = jax.random.split(key, images_NHWC.shape[0])
  (stored, count), returned = jax.lax.scan(one, (pool["images"], pool["count"]), (images_NHWC, keys))
  return returned, {"images": stored, "count": count}
