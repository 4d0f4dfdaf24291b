"""Sources of image pairs for image-to-image translation: {"a": f32[R, R, C], "b": f32[R, R, C]} in [-1, 1].

"a" is the input domain and "b" the output domain after `data.direction` (AtoB, or BtoA which swaps them, as
the official `--direction`). Paired sources (pix2pix) hold aligned pairs; unpaired sources (CycleGAN) pair
element i's "a" with an independently drawn "b" (the official unaligned dataset's random B index), so a
batch is two independent batches of the two domains.

Sources (`data.source`):
  edges2fashion     offline, no download: Fashion-MNIST IDX files (data.path); domain A is `edge_map` of the
                    image, domain B the image; labels kept. data.paired=True: aligned pairs; False: A from the
                    first half of the split and B from the second half, never the same garment (the held-out
                    test pairs stay known, which makes an unpaired translation measurable).
  paired_folder     the official pix2pix layout: data.path/<split>/*.jpg, each A|B side by side (width = 2 x height).
  unpaired_folder   the official CycleGAN layout: data.path/trainA, trainB, testA, testB (split "train"/"test").
  tfds_cycle_gan    TFDS cycle_gan/<data.name> (e.g. horse2zebra) through tfds.data_source, its
                    trainA/trainB (testA/testB) splits; prepared once beforehand (gans/data/tfds_source.py).

Images load at data.resolution (the official load_size); random crop to data.crop_size and flips
(data.flip) are the variant's jitter, drawn on the device with the step's key
(gans/variants/image2image/training.py), so every source stays a pure function of its index.
"""
import os

import numpy as np
from PIL import Image

from gans.data import arrays, folder, images, tfds_source
from gans.data.errors import DatasetNotFoundError

DIRECTIONS = ("AtoB", "BtoA")
# The edge operator: Sobel gradient magnitude of the image in [0, 1] (replicated border) above this value
# is an edge. 1.0 is a quarter of the response to a full black-to-white step; about 24% of the pixels of a
# 32x32 Fashion-MNIST image are edges.
EDGE_THRESHOLD = 1.0
PAIRED_FOLDER_HINT = ("Paired data in the official pix2pix format: data.path/<split>/ holds one image per "
                      "pair, A and B side by side (e.g. facades from the pix2pix datasets page).")
UNPAIRED_FOLDER_HINT = ("Unpaired data in the official CycleGAN layout: data.path/trainA, trainB, testA, testB "
                        "(e.g. horse2zebra from the CycleGAN datasets page).")


def edge_map(pixels_HW: np.ndarray) -> np.ndarray:
  """uint8 grey image -> uint8 edge map: black (0) edges on white (255), as pix2pix's edges2* data.

  Sobel gradients of the image scaled to [0, 1] with a replicated border; a pixel is an edge where the
  gradient magnitude exceeds EDGE_THRESHOLD.
  """
  p = np.pad(pixels_HW.astype(np.float32) / 255.0, 1, mode="edge")
  gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
  gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
  return np.where(np.hypot(gx, gy) > EDGE_THRESHOLD, 0, 255).astype(np.uint8)


def _check_direction(direction: str) -> None:
  if direction not in DIRECTIONS:
    raise ValueError(f"data.direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}.")


def _oriented(a: np.ndarray, b: np.ndarray, direction: str) -> dict:
  return {"a": a, "b": b} if direction == "AtoB" else {"a": b, "b": a}


def independent_index(seed: int, index: int, size: int) -> int:
  """The unpaired partner of element `index`: a draw from [0, size) that depends on (seed, index) alone."""
  return int(np.random.default_rng([seed, index]).integers(size))


class Edges2FashionSource:
  """Fashion-MNIST as edges (A) <-> garments (B), paired or unpaired; see the module docstring."""

  def __init__(self, directory: str, split: str, *, resolution: int, channels: int, paired: bool,
               direction: str = "AtoB", seed: int = 0):
    _check_direction(direction)
    images_path, labels_path = arrays.idx_files(directory, split)
    self._pixels = arrays.read_idx(images_path)
    self._labels = arrays.read_idx(labels_path) if labels_path else None
    self._options = dict(resolution=resolution, channels=channels)
    self._paired, self._direction, self._seed = paired, direction, seed
    self._half = len(self._pixels) // 2

  def __len__(self) -> int:
    return len(self._pixels) if self._paired else self._half

  def _grey(self, index: int) -> np.ndarray:
    """The garment at the model's resolution as uint8, before the edge operator sees it."""
    image = images.pil_image(self._pixels[index])
    return np.asarray(images.resize_square(image, self._options["resolution"]), np.uint8)

  def _model(self, pixels_HW: np.ndarray) -> np.ndarray:
    return images.model_image(images.pil_image(pixels_HW), **self._options)

  def __getitem__(self, index: int) -> dict:
    index_b = index if self._paired else self._half + independent_index(self._seed, index, self._half)
    garment_a = self._grey(index)
    element = _oriented(self._model(edge_map(garment_a)), self._model(self._grey(index_b)), self._direction)
    if self._labels is not None:  # the class of the input's garment
      element["label"] = np.int32(self._labels[index if self._direction == "AtoB" or self._paired else index_b])
    return element


def _image_names(directory: str, hint: str) -> list[str]:
  if not os.path.isdir(directory):
    raise DatasetNotFoundError(f"No folder {directory!r}. {hint}")
  names = folder.folder_image_names(directory)
  if not names:
    raise DatasetNotFoundError(f"The folder {directory!r} holds no images ({', '.join(folder.IMAGE_SUFFIXES)}). "
                               f"{hint}")
  return [os.path.join(directory, name) for name in names]


def _load(path: str, resolution: int, channels: int) -> Image.Image:
  with Image.open(path) as image:
    image.load()
    return image.convert("RGB" if channels == 3 else "L")


def _model_image(image: Image.Image, resolution: int, channels: int) -> np.ndarray:
  # Resize to load_size x load_size whatever the aspect (the official transforms.Resize([load, load])).
  image = image.resize((resolution, resolution), Image.Resampling.BICUBIC)
  return images.to_signed_unit(np.asarray(image, np.uint8).reshape(resolution, resolution, channels))


class PairedFolderSource:
  """The official aligned dataset: each file holds A (left half) and B (right half)."""

  def __init__(self, directory: str, *, resolution: int, channels: int, direction: str = "AtoB"):
    _check_direction(direction)
    self._paths = _image_names(directory, PAIRED_FOLDER_HINT)
    self._options = dict(resolution=resolution, channels=channels)
    self._direction = direction

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int) -> dict:
    path = self._paths[index]
    image = _load(path, **self._options)
    width, height = image.size
    if width != 2 * height:
      raise ValueError(f"{path}: a paired (AB) image must be twice as wide as high, A left and B right; this "
                       f"one is {width}x{height}. {PAIRED_FOLDER_HINT}")
    a = _model_image(image.crop((0, 0, height, height)), **self._options)
    b = _model_image(image.crop((height, 0, width, height)), **self._options)
    return _oriented(a, b, self._direction)


class UnpairedSource:
  """Two domains as one source: element i is A[i % |A|] with an independently drawn B, |source| = max(|A|, |B|)."""

  def __init__(self, read_a, size_a: int, read_b, size_b: int, *, direction: str = "AtoB", seed: int = 0):
    _check_direction(direction)
    if direction == "BtoA":
      read_a, size_a, read_b, size_b = read_b, size_b, read_a, size_a
    self._read_a, self._size_a, self._read_b, self._size_b, self._seed = read_a, size_a, read_b, size_b, seed

  def __len__(self) -> int:
    return max(self._size_a, self._size_b)

  def __getitem__(self, index: int) -> dict:
    return {"a": self._read_a(index % self._size_a),
            "b": self._read_b(independent_index(self._seed, index, self._size_b))}

  def domain_images(self, domain: str, n: int) -> np.ndarray:
    """The first n images (at most all) of domain "a" or "b", in order."""
    read, size = (self._read_a, self._size_a) if domain == "a" else (self._read_b, self._size_b)
    return np.stack([read(i) for i in range(min(n, size))])


def _domain_dir(path: str, split: str, domain: str) -> str:
  split = {"t10k": "test"}.get(split, split)
  return os.path.join(path, f"{split}{domain}")


def unpaired_folder_source(path: str, split: str, *, resolution: int, channels: int, direction: str = "AtoB",
                           seed: int = 0) -> UnpairedSource:
  if not path or not os.path.isdir(path):
    raise DatasetNotFoundError(f"No folder {path!r} for unpaired data. {UNPAIRED_FOLDER_HINT}")
  domains = [_image_names(_domain_dir(path, split, d), UNPAIRED_FOLDER_HINT) for d in ("A", "B")]
  readers = [lambda i, paths=paths: _model_image(_load(paths[i], resolution, channels), resolution, channels)
             for paths in domains]
  return UnpairedSource(readers[0], len(domains[0]), readers[1], len(domains[1]), direction=direction, seed=seed)


def domain_images(path: str, split: str, domain: str, n: int, *, resolution: int, channels: int) -> np.ndarray:
  """The first n images of one domain folder (e.g. testA), sorted by name: held-out inputs without targets."""
  paths = _image_names(_domain_dir(path, split, domain), UNPAIRED_FOLDER_HINT)[:n]
  return np.stack([_model_image(_load(p, resolution, channels), resolution, channels) for p in paths])


def tfds_cycle_gan_source(name: str, split: str, data_dir: str, *, resolution: int, channels: int,
                          direction: str = "AtoB", seed: int = 0) -> UnpairedSource:
  """TFDS cycle_gan/<name>: its <split>A and <split>B splits as one unpaired source."""
  if not name:
    raise ValueError("data.name must name the cycle_gan config, e.g. 'horse2zebra' (TFDS cycle_gan/horse2zebra).")
  split = {"t10k": "test"}.get(split, split)
  sources = [tfds_source.open_tfds(f"cycle_gan/{name}", f"{split}{d}", data_dir or None) for d in ("A", "B")]

  def reader(source):
    def read(index):
      pixels = np.asarray(source[index]["image"])
      return _model_image(images.pil_image(pixels).convert("RGB" if channels == 3 else "L"), resolution, channels)
    return read

  return UnpairedSource(reader(sources[0]), len(sources[0]), reader(sources[1]), len(sources[1]),
                        direction=direction, seed=seed)


# ----------------------------------------------------------------------------- make_source entries and held-out data

def _options(config) -> dict:
  return dict(resolution=config.get("resolution", 32), channels=config.get("channels", 1))


def make_edges2fashion(config, split: str | None = None, paired: bool | None = None):
  return Edges2FashionSource(config.get("path", ""), split or config.get("split", "train"), **_options(config),
                             paired=config.get("paired", True) if paired is None else paired,
                             direction=config.get("direction", "AtoB"), seed=config.get("unpaired_seed", 0))


def make_paired_folder(config, split: str | None = None):
  return PairedFolderSource(os.path.join(config.get("path", ""), split or config.get("split", "train")),
                            **_options(config), direction=config.get("direction", "AtoB"))


def make_unpaired_folder(config, split: str | None = None):
  return unpaired_folder_source(config.get("path", ""), split or config.get("split", "train"), **_options(config),
                                direction=config.get("direction", "AtoB"), seed=config.get("unpaired_seed", 0))


def make_tfds_cycle_gan(config, split: str | None = None):
  return tfds_cycle_gan_source(config.get("name", ""), split or config.get("split", "train"), config.get("path", ""),
                               **_options(config), direction=config.get("direction", "AtoB"),
                               seed=config.get("unpaired_seed", 0))


SOURCES = {
    "edges2fashion": make_edges2fashion,
    "paired_folder": make_paired_folder,
    "unpaired_folder": make_unpaired_folder,
    "tfds_cycle_gan": make_tfds_cycle_gan,
}


def held_out(config, n: int) -> dict:
  """The first n held-out examples at the evaluation size (data.crop_size, no jitter, as the official test.py
  sets load_size = crop_size): {"source": inputs, "target": outputs where the pairs are known, "label" where
  the classes are}. Unpaired folders and TFDS have no known pairs: their test inputs, and the output domain's
  test images as "unpaired_target" (real images to compare the translations with as a set: FID)."""
  source_name = config.get("source", "")
  eval_config = dict(config)
  eval_config["resolution"] = config.get("crop_size", 0) or config.get("resolution", 32)
  test_split = config.get("test_split", "test")
  if source_name == "edges2fashion":
    source = make_edges2fashion(eval_config, test_split, paired=True)
  elif source_name == "paired_folder":
    source = make_paired_folder(eval_config, test_split)
  elif source_name in ("unpaired_folder", "tfds_cycle_gan"):
    source = SOURCES[source_name](eval_config, test_split)
    return {"source": source.domain_images("a", n), "unpaired_target": source.domain_images("b", n)}
  else:
    raise ValueError(f"data.source {source_name!r} is not an image-to-image source; valid: {', '.join(SOURCES)}.")
  elements = [source[i] for i in range(min(n, len(source)))]
  result = {"source": np.stack([e["a"] for e in elements]), "target": np.stack([e["b"] for e in elements])}
  if "label" in elements[0]:
    result["label"] = np.stack([e["label"] for e in elements])
  return result


def input_images(directory: str, data_config) -> np.ndarray:
  """Every image of a folder (sorted by name) as the model's inputs: f32[N, crop, crop, channels] in [-1, 1],
  resized to data.crop_size (the held-out size) like the official test.py with load_size = crop_size."""
  side = data_config.get("crop_size", 0) or data_config.get("resolution", 32)
  channels = data_config.get("channels", 1)
  paths = _image_names(directory, "--input takes a folder of images (PNG, JPEG, BMP, WebP) to translate.")
  return np.stack([_model_image(_load(path, side, channels), side, channels) for path in paths])
