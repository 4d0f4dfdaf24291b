"""Captioned images from a TFDS dataset: the images through `tfds.data_source`, the captions (and optionally the
released sentence embeddings) from a caption folder, matched by the image's file name.

Source "tfds_captions" (`TfdsCaptionSource`), e.g. CUB-200-2011 as TFDS prepares it:

  data.name          the TFDS dataset, e.g. "caltech_birds2011" (features: image, image/filename, label,
                     label_name, bbox, segmentation_mask)
  data.split         its split ("train", "test", "train+test": TFDS's split strings; caltech_birds2011's are CUB's
                     own image split, 5,994 / 5,794 images, not StackGAN's class split of 8,855 / 2,933)
  data.path          the TFDS data_dir ("" = TFDS's default, ~/tensorflow_datasets)
  data.caption_path  the caption release root: text_c10/<class>/<image>.txt, one caption a line (Reed et al.'s
                     cvpr2016_cub release, github.com/reedscot/cvpr2016); with data.embedding_file also
                     StackGAN's train/ and test/ folders (filenames.pickle + the embedding pickle, StackGAN-Pytorch's
                     README links the birds/ folder), which together hold every CUB image's embeddings
  data.image_key     the image feature ("image"); data.label_key the class ("label", "" = none)

Matching. The example's "image/filename" (caltech_birds2011: "CUB_200_2011/images/001.Black_footed_Albatross/
Black_Footed_Albatross_0001_796111.jpg") gives the key "<folder>/<stem>" (its last two path parts without the
suffix), the key StackGAN's filenames.pickle and text_c10/ use; a caption file or embedding found by the stem
alone is accepted too. Captions pair with embedding rows by line number, as caption_folder
(gans/data/captions.py). The source opens the TFDS split once to read every file name (the images are not
decoded for that: a few seconds for CUB) and fails, naming the first few, when any image has no caption file or,
with data.embedding_file, no embeddings: with the right folders every CUB image has both, so a miss means a wrong
or partial caption_path, and training on a silent subset would be worse.

Elements: as caption_folder's ({"image", "caption", "caption_index", "embedding" with data.embedding_file, "label"
when the dataset has data.label_key}). With a "bbox" feature (TFDS's normalised ymin, xmin, ymax, xmax) the
image is cut around the box as StackGAN cuts CUB's birds (captions.box_crop), then the largest central square is
resized to data.resolution.

What the user must fetch: (1) the TFDS dataset, prepared once in the array_record format that data_source reads:
pip install -e '.[prepare]' && tfds build caltech_birds2011 --file_format=array_record (it downloads CUB itself;
add --data_dir=DIR and set data.path=DIR for another place); (2) the caption folder text_c10/ (and, for the
released embeddings, StackGAN's birds/train and birds/test folders) in data.caption_path.
"""
import io
import os

import numpy as np
from PIL import Image

from gans.data import captions
from gans.data import images
from gans.data import tfds_source
from gans.data.errors import DatasetNotFoundError

FILENAME_KEY = "image/filename"
BOX_KEY = "bbox"
RELEASE_SPLITS = ("train", "test")  # StackGAN's folders; every CUB image is in exactly one
CAPTIONS_HINT = ("data.caption_path must hold text_c10/<class>/<image>.txt (Reed et al.'s captions, "
                 "github.com/reedscot/cvpr2016: cvpr2016_cub) and, with data.embedding_file, StackGAN's train/ and "
                 "test/ folders (filenames.pickle and the embeddings, StackGAN-Pytorch's README links them).")


def filename_key(filename) -> str:
  """"<folder>/<stem>" of an image path, e.g. "001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111"."""
  if isinstance(filename, bytes):
    filename = filename.decode("utf-8")
  parts = os.path.splitext(str(filename).replace("\\", "/"))[0].split("/")
  return "/".join(parts[-2:])


def release_embeddings(root: str, embedding_file: str) -> dict[str, np.ndarray]:
  """image key -> f32[captions, E] from every StackGAN split folder of `root` holding the embedding file."""
  table = {}
  for split in RELEASE_SPLITS:
    names, vectors = (os.path.join(root, split, name) for name in ("filenames.pickle", embedding_file))
    if os.path.isfile(names) and os.path.isfile(vectors):
      keys = [str(key) for key in captions.load_pickle(names)]
      embeddings = np.asarray(captions.load_pickle(vectors), np.float32)
      if embeddings.ndim != 3 or len(embeddings) != len(keys):
        raise ValueError(f"{vectors}: expected per image an array [captions, E] ({len(keys)} images, as "
                         f"{names}), got an array of shape {embeddings.shape}.")
      table.update(zip(keys, embeddings))
  if not table:
    raise DatasetNotFoundError(f"No {'/ or '.join(RELEASE_SPLITS)}/ folder in {root!r} holds filenames.pickle and "
                               f"{embedding_file!r} (data.embedding_file). {CAPTIONS_HINT}")
  return table


def _lookup(table: dict, key: str, by_stem: dict):
  return table.get(key) if key in table else by_stem.get(key.split("/")[-1])


def decode_image(value) -> Image.Image:
  """An image feature as data_source returns it: encoded bytes (SkipDecoding) or a decoded uint8 array."""
  if isinstance(value, (bytes, np.bytes_)):
    with Image.open(io.BytesIO(value)) as picture:
      return picture.convert("RGB")
  return images.pil_image(np.asarray(value))


def crop_to_box(picture: Image.Image, box) -> Image.Image:
  """StackGAN's cut around a box given as TFDS's normalised (ymin, xmin, ymax, xmax)."""
  ymin, xmin, ymax, xmax = (float(v) for v in box)
  width, height = picture.size
  return captions.box_crop(picture, (xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height))


def _skip_image_decoding(image_feature: str) -> dict:
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  return {image_feature: tfds.decode.SkipDecoding()}


class TfdsCaptionSource(captions.CaptionPairs):
  """source[i] -> one (image, caption) pair: the image from a TFDS data source, its captions from a folder."""

  def __init__(self, data_source, caption_path: str, *, resolution: int, channels: int, caption_length: int,
               embedding_file: str = "", image_feature: str = "image", label_feature: str = "label",
               name: str = ""):
    if not caption_path or not os.path.isdir(caption_path):
      raise DatasetNotFoundError(f"No caption folder at {caption_path!r} (data.caption_path). {CAPTIONS_HINT}")
    self._data_source, self._name = data_source, name
    self._features = dict(image=image_feature, label=label_feature)
    self._image_options = dict(resolution=resolution, channels=channels)
    self._length = caption_length
    by_path, by_stem = captions._caption_files(caption_path)  # pylint: disable=protected-access
    embeddings = release_embeddings(caption_path, embedding_file) if embedding_file else None
    embeddings_by_stem = {key.split("/")[-1]: row for key, row in (embeddings or {}).items()}
    self._examples, all_captions, all_embeddings, missing = [], [], [], []
    for index in range(len(data_source)):
      example = data_source[index]
      if FILENAME_KEY not in example:
        raise KeyError(f"TFDS dataset {name!r} has no feature {FILENAME_KEY!r} to match captions by; it has "
                       f"{sorted(example)}. tfds_captions needs a dataset that names its image files "
                       f"(caltech_birds2011 does).")
      key = filename_key(example[FILENAME_KEY])
      caption_file = by_path.get(key) or by_stem.get(key.split("/")[-1])
      numbered = captions._read_captions(caption_file, caption_length)[0] if caption_file else []  # pylint: disable=protected-access
      rows = None
      if embeddings is not None:
        rows = _lookup(embeddings, key, embeddings_by_stem)
        numbered = [(line, text) for line, text in numbered if rows is not None and line < len(rows)]
      if not numbered:
        missing.append(key)
        continue
      self._examples.append(index)
      all_captions.append([text for _, text in numbered])
      if rows is not None:
        all_embeddings.append(rows[[line for line, _ in numbered]])
    if missing:
      what = "caption file (text_c10/<key>.txt)" + (" or embeddings" if embedding_file else "")
      raise DatasetNotFoundError(
          f"{len(missing)} of {len(data_source)} images of TFDS {name!r} have no {what} in {caption_path!r}, "
          f"e.g. {', '.join(missing[:3])}. Captions are matched by image file name. {CAPTIONS_HINT}")
    if not self._examples:
      raise DatasetNotFoundError(f"TFDS {name!r} has no images. {CAPTIONS_HINT}")
    self._set_pairs(all_captions, all_embeddings if embeddings is not None else None)

  def __getitem__(self, index: int) -> dict:
    image, caption_index = self.pair(int(index))
    example = self._data_source[self._examples[image]]
    picture = decode_image(example[self._features["image"]])
    if BOX_KEY in example:
      picture = crop_to_box(picture, example[BOX_KEY])
    element = self._caption_element(image, caption_index, images.model_image(picture, **self._image_options))
    if self._features["label"] and self._features["label"] in example:
      element["label"] = np.int32(example[self._features["label"]])
    return element

  def __repr__(self) -> str:
    return f"TfdsCaptionSource({self._name!r}, {len(self._examples)} images, {len(self)} captions)"


def tfds_caption_source(name: str, split: str, data_dir: str, caption_path: str, *, image_key: str = "image",
                        label_key: str = "label", **options) -> TfdsCaptionSource:
  """The TFDS split (images not decoded until read) paired with the caption folder; see the module docstring."""
  if not name:
    raise ValueError("data.name must name the TFDS dataset with image file names, e.g. 'caltech_birds2011'.")
  # Checked before TFDS is opened: a wrong caption_path should not wait for (or hide behind) TFDS.
  if not caption_path or not os.path.isdir(caption_path):
    raise DatasetNotFoundError(f"No caption folder at {caption_path!r} (data.caption_path). {CAPTIONS_HINT}")
  data_source = tfds_source.open_tfds(name, split, data_dir or None, decoders=_skip_image_decoding(image_key))
  return TfdsCaptionSource(data_source, caption_path, image_feature=image_key, label_feature=label_key, name=name,
                           **options)
