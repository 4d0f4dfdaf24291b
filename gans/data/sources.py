"""make_source: a data config -> a random-access source (len(source), source[i] -> dict)."""
from gans.data import arrays
from gans.data import audio
from gans.data import captions
from gans.data import folder
from gans.data import image2image
from gans.data import mixtures
from gans.data import super_resolution
from gans.data import tfds_captions
from gans.data import tfds_source
from gans.data import voxels
from gans.data.config import field


def _image_options(config) -> dict:
  return dict(resolution=field(config, "resolution"), channels=field(config, "channels"),
              center_crop=field(config, "center_crop"))


def _digits(config):
  return arrays.digits_source(**_image_options(config))


def _idx(config):
  return arrays.idx_source(field(config, "path"), field(config, "split"), **_image_options(config))


def _tfds(config):
  return tfds_source.tfds_source(field(config, "name"), field(config, "split"), field(config, "path"),
                                 image_key=field(config, "image_key"), label_key=field(config, "label_key"),
                                 **_image_options(config))


def _folder(config):
  return folder.folder_source(field(config, "path"), **_image_options(config))


def _clip_options(config) -> dict:
  return dict(sample_rate=field(config, "sample_rate"), length=field(config, "clip_length"),
              channels=field(config, "channels"))


def _cache_dir(config) -> str:
  from gans.metrics import reference  # pylint: disable=import-outside-toplevel
  return field(config, "cache_dir") or reference.default_cache_dir()


def _spoken_digits(config):
  return audio.spoken_digits_source(_cache_dir(config), field(config, "num_clips"), field(config, "synth_seed"),
                                    **_clip_options(config))


def _wav_folder(config):
  return audio.WavFolderSource(field(config, "path"), tuple(field(config, "words")), **_clip_options(config))


def _tfds_audio(config):
  return audio.tfds_audio_source(field(config, "name"), field(config, "split"), field(config, "path"),
                                 tuple(field(config, "words")), **_clip_options(config))


def _mixture(name):
  def make(config):
    return mixtures.MixtureSource(name, size=field(config, "size"), mixture_seed=field(config, "mixture_seed"))
  return make


def _shapes3d(config):
  classes = tuple(c.strip() for c in field(config, "shape_classes").split(",") if c.strip()) or voxels.CLASSES
  return voxels.ShapesSource(resolution=field(config, "resolution"), size=field(config, "size"),
                             seed=field(config, "shapes_seed"), classes=classes)


def _voxel_folder(config):
  return voxels.VoxelFolderSource(field(config, "path"), resolution=field(config, "resolution"),
                                  split=field(config, "split"))


def _captioned_shapes(config):
  return captions.CaptionedShapesSource(
      resolution=field(config, "resolution"), channels=field(config, "channels"), size=field(config, "size"),
      captions_per_picture=field(config, "captions_per_picture"), caption_length=field(config, "caption_length"),
      max_shapes=field(config, "max_shapes"), seed=field(config, "synth_seed"))


def _caption_folder(config):
  return captions.CaptionFolderSource(
      field(config, "path"), field(config, "split"), resolution=field(config, "resolution"),
      channels=field(config, "channels"), caption_length=field(config, "caption_length"),
      embedding_file=field(config, "embedding_file"))


def _tfds_captions(config):
  return tfds_captions.tfds_caption_source(
      field(config, "name"), field(config, "split"), field(config, "path"), field(config, "caption_path"),
      image_key=field(config, "image_key"), label_key=field(config, "label_key"),
      resolution=field(config, "resolution"), channels=field(config, "channels"),
      caption_length=field(config, "caption_length"), embedding_file=field(config, "embedding_file"))


SOURCES = {
    "digits": _digits,
    "idx": _idx,
    "tfds": _tfds,
    "folder": _folder,
    "spoken_digits": _spoken_digits,
    "wav_folder": _wav_folder,
    "tfds_audio": _tfds_audio,
    **{name: _mixture(name) for name in mixtures.MIXTURES},
    "shapes3d": _shapes3d,
    "voxel_folder": _voxel_folder,
    # Image pairs {"a", "b"} for pix2pix and CycleGAN (gans/data/image2image.py).
    **image2image.SOURCES,
    # HR crops for super-resolution, {"image"} (+ {"lr"} from DIV2K) (gans/data/super_resolution.py).
    **super_resolution.SOURCES,
    # Captioned images {"image", "caption", "caption_index", "label"[, "embedding"]} (gans/data/captions.py).
    "captioned_shapes": _captioned_shapes,
    "caption_folder": _caption_folder,
    # The same elements, images from a TFDS dataset and captions from a folder (gans/data/tfds_captions.py).
    "tfds_captions": _tfds_captions,
}


def make_source(config):
  """The random-access source the data config describes.

  Images come out as {"image": f32[R, R, C] in [-1, 1]} plus {"label": int32}
  where the source has labels; 2D mixtures as {"x": f32[2]}. Only the folder
  sources (folder, caption_folder) can return None, for a file it cannot decode (warned once, then skipped
  by the pipeline). Missing data raises DatasetNotFoundError saying how to get it.
  """
  name = field(config, "source")
  if name not in SOURCES:
    raise ValueError(f"Unknown data source {name!r}; valid sources: {sorted(SOURCES)}")
  return SOURCES[name](config)
