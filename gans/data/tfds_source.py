"""TFDS datasets through `tfds.data_source`: random access to prepared data, no TensorFlow."""
import numpy as np

from gans.data import images
from gans.data.errors import DatasetNotFoundError


def prepare_hint(name: str, data_dir: str | None) -> str:
  data_dir_flag = f" --data_dir={data_dir}" if data_dir else ""
  # data_source reads only array_record (or parquet) files, and `tfds build`
  # writes tfrecord unless told otherwise; building needs TensorFlow.
  return (f"Prepare it once with: pip install -e '.[prepare]' && "
          f"tfds build {name}{data_dir_flag} --file_format=array_record")


def _is_prepared(tfds, name: str, data_dir: str | None) -> bool:
  return tfds.builder(name, data_dir=data_dir).is_prepared()


def open_tfds(name: str, split: str, data_dir: str | None, decoders: dict | None = None):
  """tfds.data_source(name, split), or DatasetNotFoundError when it is not prepared. `decoders`: TFDS's per-feature
  decoders, e.g. {"image": tfds.decode.SkipDecoding()} for a source that decodes images itself."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel  (slow; only this source needs it)
  if not name:
    raise ValueError("data.name must name the TFDS dataset, e.g. 'mnist' or 'celeb_a'")
  try:
    # download=False: a training job must not start a download behind the user's back.
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False, decoders=decoders)
  except Exception as error:  # TFDS raises assorted types for data that is absent
    if _is_prepared(tfds, name, data_dir):
      raise
    where = data_dir or "TFDS's default data_dir (~/tensorflow_datasets)"
    raise DatasetNotFoundError(
        f"TFDS dataset {name!r} (split {split!r}) is not prepared in {where}. {prepare_hint(name, data_dir)}"
    ) from error


def tfds_element(example: dict, *, image_key: str, label_key: str, **image_options) -> dict:
  """One decoded TFDS example -> {"image": f32[R, R, C] in [-1, 1], "label": int32 when present}."""
  if image_key not in example:
    raise KeyError(f"TFDS example has no feature {image_key!r} (set data.image_key); it has {sorted(example)}")
  element = {"image": images.model_image(images.pil_image(np.asarray(example[image_key])), **image_options)}
  if label_key and label_key in example:
    element["label"] = np.int32(example[label_key])
  return element


class TfdsSource:
  """A TFDS data source whose examples come out in this package's element format."""

  def __init__(self, data_source, *, image_key: str = "image", label_key: str = "label", **image_options):
    self._data_source = data_source  # picklable, so grain workers can read it too
    self._keys = dict(image_key=image_key, label_key=label_key)
    self._image_options = image_options

  def __len__(self) -> int:
    return len(self._data_source)

  def __getitem__(self, index: int) -> dict:
    return tfds_element(self._data_source[index], **self._keys, **self._image_options)

  def __repr__(self) -> str:
    return f"TfdsSource({self._data_source!r})"


def tfds_source(name: str, split: str, data_dir: str, **options) -> TfdsSource:
  return TfdsSource(open_tfds(name, split, data_dir or None), **options)
