"""Super-resolution data: random HR crops {"image": f32[R, R, 3] in [-1, 1]}, LR made by x4 bicubic downscaling.

Downscaling (`downscale`) is antialiased bicubic as MATLAB's imresize, the literature's (the Keys cubic with
a = -0.5, its support widened by the scale factor): jax.image.resize(method="bicubic", antialias=True) of
the image in [0, 1], clipped and rounded to 8 bits (LR images are 8-bit files in the literature). One
difference from MATLAB: at the image border jax renormalises the truncated kernel where MATLAB mirrors the
image, so only the outermost LR pixels differ, which the standard protocol's 4-pixel HR border crop
mostly removes. Sources give HR crops only; the variant downscales them on the device
(gans/variants/srgan.py), except DIV2K, whose bicubic_x4 LR images are the dataset's own (MATLAB's).

Sources (`data.source`), each virtual with `data.size` elements: element i is a crop of side data.resolution
from image (i mod the number of images) at an offset drawn from (data.crop_seed, i) alone, so a source
stays a pure function of its index while the epochs' shuffles give fresh crops:
  sr_photos   offline, no download: the colour photographs bundled with scikit-image and scikit-learn.
              Training: hubble_deep_field, immunohistochemistry, stereo_motorcycle (left), retina,
              rocket (scikit-image), china.jpg, flower.jpg (scikit-learn). Held out (evaluation and
              samples): astronaut, chelsea, coffee (scikit-image).
  sr_folder   every image (PNG/JPEG/BMP/WebP) of data.path; held out: the images of data.eval_path.
  sr_div2k    TFDS div2k/bicubic_x4 through tfds.data_source (prepared once beforehand: its "hr" and "lr"
              images), aligned crops {"image": HR, "lr": LR in [0, 1]}; held out: its validation split.

Held-out pairs (`held_out_pairs`, the metric's): each held-out image whole (data.eval_size 0, the literature's
protocol) or its central square of side data.eval_size, sides cut to multiples of 4, LR in [0, 1] and HR in
[-1, 1]; `held_out` stacks them as one batch (pictures, `--mode=sample`). data.eval_path, when set, is a
folder of held-out images for any source (Set5, Set14, BSD100 are distributed as such folders).
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from gans.data import folder, tfds_source
from gans.data.errors import DatasetNotFoundError

SCALE = 4
PHOTOS_TRAIN = ("hubble_deep_field", "immunohistochemistry", "stereo_motorcycle", "retina", "rocket",
                "sklearn:china.jpg", "sklearn:flower.jpg")
PHOTOS_HELD_OUT = ("astronaut", "chelsea", "coffee")
FOLDER_HINT = "data.path (training), data.eval_path (held out) or --input (to upscale): a folder of high-resolution images (PNG, JPEG, BMP, WebP), e.g. DIV2K_train_HR."


def downscale(hr_NHWC, scale: int = SCALE):
  """HR images in [-1, 1] -> LR images in [0, 1], 8-bit levels: MATLAB-style antialiased bicubic (above)."""
  n, h, w, c = hr_NHWC.shape
  unit = (jnp.asarray(hr_NHWC, jnp.float32) + 1.0) / 2.0
  lr = jax.image.resize(unit, (n, h // scale, w // scale, c), "bicubic", antialias=True)
  return jnp.round(jnp.clip(lr, 0.0, 1.0) * 255.0) / 255.0


def upsample_bicubic(lr_NHWC, size: tuple[int, int]):
  """LR images in [0, 1] -> bicubic upsampling to `size` in [0, 1]: the literature's baseline."""
  n, _, _, c = lr_NHWC.shape
  return jnp.clip(jax.image.resize(jnp.asarray(lr_NHWC, jnp.float32), (n,) + tuple(size) + (c,), "bicubic"), 0, 1)


def photo(name: str) -> np.ndarray:
  """A bundled photograph as uint8 [H, W, 3]: a scikit-image data function, or "sklearn:<file>"."""
  if name.startswith("sklearn:"):
    from sklearn import datasets  # pylint: disable=import-outside-toplevel
    return np.asarray(datasets.load_sample_image(name.split(":", 1)[1]), np.uint8)
  from skimage import data  # pylint: disable=import-outside-toplevel
  image = getattr(data, name)()
  image = image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disparity)
  return np.asarray(image, np.uint8)[..., :3]


def _signed(pixels_HWC: np.ndarray) -> np.ndarray:
  return pixels_HWC.astype(np.float32) / 127.5 - 1.0


def _check_size(name: str, height: int, width: int, crop: int) -> None:
  if min(height, width) < crop:
    raise ValueError(f"Image {name} is {height}x{width}, smaller than the HR crop data.resolution={crop}: "
                     f"remove it or lower data.resolution.")


class RandomCropSource:
  """source[i] -> {"image": a crop of side `crop` of image i mod len(images), in [-1, 1]} (module docstring).

  `images` are (name, (height, width), read() -> uint8 [H, W, 3]).
  """

  def __init__(self, images, *, crop: int, size: int, seed: int):
    if not images:
      raise DatasetNotFoundError(f"No training images. {FOLDER_HINT}")
    for name, (height, width), _ in images:
      _check_size(name, height, width, crop)
    self._images, self._crop, self._size, self._seed = list(images), crop, size, seed

  def __len__(self) -> int:
    return self._size

  def offset(self, index: int) -> tuple[int, int, int]:
    """(image, top, left) of element `index`."""
    image = index % len(self._images)
    height, width = self._images[image][1]
    rng = np.random.default_rng([self._seed, index])
    return image, int(rng.integers(height - self._crop + 1)), int(rng.integers(width - self._crop + 1))

  def __getitem__(self, index: int) -> dict:
    image, top, left = self.offset(index)
    pixels = self._images[image][2]()
    return {"image": _signed(pixels[top:top + self._crop, left:left + self._crop])}


def _photos(names):
  cache = {}

  def reader(name):
    def read():
      if name not in cache:
        cache[name] = photo(name)
      return cache[name]
    return read
  return [(name, photo(name).shape[:2], reader(name)) for name in names]


def _rgb(path: str) -> np.ndarray:
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"), np.uint8)


def _folder_images(directory: str):
  if not directory or not os.path.isdir(directory):
    raise DatasetNotFoundError(f"No folder {directory!r}. {FOLDER_HINT}")
  names = folder.folder_image_names(directory)
  if not names:
    raise DatasetNotFoundError(f"The folder {directory!r} holds no images ({', '.join(folder.IMAGE_SUFFIXES)}). "
                               f"{FOLDER_HINT}")
  images = []
  for name in names:
    path = os.path.join(directory, name)
    with Image.open(path) as image:  # the header only: sizes are checked before training starts
      width, height = image.size
    images.append((path, (height, width), lambda path=path: _rgb(path)))
  return images


class Div2kSource:
  """TFDS div2k/bicubic_x4 elements {"hr", "lr"} as aligned random crops {"image": HR, "lr": LR in [0, 1]}."""

  def __init__(self, source, *, crop: int, size: int, seed: int):
    if crop % SCALE:
      raise ValueError(f"data.resolution={crop} must be a multiple of {SCALE}.")
    self._source, self._crop, self._size, self._seed = source, crop, size, seed

  def __len__(self) -> int:
    return self._size

  def __getitem__(self, index: int) -> dict:
    element = self._source[index % len(self._source)]
    hr, lr = np.asarray(element["hr"]), np.asarray(element["lr"])
    _check_size(f"div2k[{index % len(self._source)}]", hr.shape[0], hr.shape[1], self._crop)
    rng = np.random.default_rng([self._seed, index])
    side = self._crop // SCALE
    top, left = int(rng.integers(lr.shape[0] - side + 1)), int(rng.integers(lr.shape[1] - side + 1))
    return {"image": _signed(hr[SCALE * top:SCALE * top + self._crop, SCALE * left:SCALE * left + self._crop]),
            "lr": lr[top:top + side, left:left + side].astype(np.float32) / 255.0}


def _options(config) -> dict:
  return dict(crop=config.get("resolution", 96), size=config.get("size", 100_000), seed=config.get("crop_seed", 0))


def make_photos(config):
  return RandomCropSource(_photos(PHOTOS_TRAIN), **_options(config))


def make_folder(config):
  return RandomCropSource(_folder_images(config.get("path", "")), **_options(config))


def open_div2k(config, split: str):
  return tfds_source.open_tfds("div2k/bicubic_x4", split, config.get("path", "") or None)


def make_div2k(config):
  return Div2kSource(open_div2k(config, config.get("split", "train")), **_options(config))


SOURCES = {"sr_photos": make_photos, "sr_folder": make_folder, "sr_div2k": make_div2k}


def central_pair(hr_pixels: np.ndarray, eval_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(LR in [0, 1], HR in [-1, 1]) of the image's central part: a square of side eval_size (at most the shorter
  side), or with eval_size 0 the whole image; sides cut down to multiples of 4 (the literature's modcrop)."""
  height, width = hr_pixels.shape[:2]
  if eval_size:
    height = width = min(eval_size, height, width)
  height, width = height // SCALE * SCALE, width // SCALE * SCALE
  top, left = (hr_pixels.shape[0] - height) // 2, (hr_pixels.shape[1] - width) // 2
  hr = _signed(hr_pixels[top:top + height, left:left + width])
  with jax.ensure_compile_time_eval():  # concrete values even when a jitted picture (the grid) asks for them
    return np.asarray(downscale(hr[None]))[0], hr


def held_out_pairs(config, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
  """The first n held-out (LR, HR) pairs, each at its own size (data.eval_size; 0 = whole images): from
  data.eval_path when set (e.g. Set5, Set14, BSD100 folders), else the source's held-out images."""
  name, eval_size = config.get("source", ""), config.get("eval_size", 128)
  if config.get("eval_path", ""):
    pixels = [read() for _, _, read in _folder_images(config.eval_path)[:n]]
  elif name == "sr_photos":
    pixels = [photo(p) for p in PHOTOS_HELD_OUT[:n]]
  elif name == "sr_folder":
    raise DatasetNotFoundError(f"data.eval_path is unset: the held-out images of sr_folder. {FOLDER_HINT}")
  elif name == "sr_div2k":
    source = open_div2k(config, "validation")
    pixels = [np.asarray(source[i]["hr"]) for i in range(min(n, len(source)))]
  else:
    raise ValueError(f"data.source {name!r} is not a super-resolution source; valid: {', '.join(SOURCES)}.")
  return [central_pair(p, eval_size) for p in pixels]


def held_out(config, n: int) -> dict:
  """The first n held-out pairs as one batch {"source": LR, "target": HR}: each pair's central square of the
  smallest pair's shorter side (pictures, `--mode=sample`; the metric uses held_out_pairs, at full size)."""
  pairs = held_out_pairs(config, n)
  side = min(min(lr.shape[:2]) for lr, _ in pairs)
  sources, targets = [], []
  for lr, hr in pairs:  # HR crops at SCALE x the LR offset stay aligned
    top, left = (lr.shape[0] - side) // 2, (lr.shape[1] - side) // 2
    sources.append(lr[top:top + side, left:left + side])
    targets.append(hr[SCALE * top:SCALE * (top + side), SCALE * left:SCALE * (left + side)])
  return {"source": np.stack(sources), "target": np.stack(targets)}


def held_out_loader(data_config):
  """held_out(n), reading the held-out images once (at the first call)."""
  cache = {}

  def load(n: int) -> dict:
    if cache.get("n", -1) < n:
      cache.update(n=n, examples=held_out(data_config, n))
    return {name: value[:n] for name, value in cache["examples"].items()}
  return load


def input_images(directory: str):
  """[(file name, LR f32[H, W, 3] in [0, 1])] of every image of a folder, at its own size: `--input` to upscale."""
  return [(os.path.basename(path), read().astype(np.float32) / 255.0) for path, _, read in _folder_images(directory)]
