"""The data config fields, their defaults, and how a source reads them.

Fields of `config.data` (an `ml_collections.ConfigDict`); a missing field takes
the default below, so an experiment sets only what differs:

  source        "digits" | "idx" | "tfds" | "folder" | "ring8" | "grid25" | "shapes3d" | "voxel_folder"
                (voxel grids, gans/data/voxels.py) | "spoken_digits" | "wav_folder" | "tfds_audio"
                (audio, gans/data/audio.py) | "captioned_shapes" | "caption_folder" (captioned
                images, gans/data/captions.py) | "tfds_captions" (TFDS images + a caption folder,
                gans/data/tfds_captions.py)   ("digits")
  path          directory or file of a file-based source: the IDX directory, the voxel folder, the
                TFDS data_dir ("" = TFDS's own default), the image folder or .zip   ("")
  name          TFDS dataset name, e.g. "mnist", "celeb_a"   ("")
  split         "train" | "test" for idx ("t10k" also accepted); any TFDS split
                string for tfds; ignored by the others   ("train")
  resolution    images are resolution x resolution   (32)
  channels      1 (grayscale) or 3 (RGB); sources convert as needed   (1)
  center_crop   side of the central square cut before resizing; 0 = the largest
                central square. CelebA in the DCGAN convention: 108   (0)
  image_key     TFDS feature holding the image   ("image")
  label_key     TFDS feature holding the class label; "" = no labels. Elements
                without this feature (e.g. celeb_a) get no label either   ("label")
  size          virtual length of a 2D mixture source   (100_000)
  mixture_seed  mixture sample i is drawn from (mixture_seed, i) alone   (0)
  shapes_seed   procedural solid i (source "shapes3d") is drawn from (shapes_seed, i) alone;
                `size` solids, resolution^3 voxels   (0)
  shape_classes comma-separated classes of "shapes3d" (gans/data/voxels.py CLASSES); "" = all   ("")
  limit         train on the first `limit` elements of the source only (0 = all): small training sets
                for limited-data experiments; evaluation's reference data stays the whole source   (0)
  mirror        also read every image flipped left-right, doubling the training set (the official
                StyleGAN --mirror=1); the training pipeline only, not evaluation's reference data   (False)
  num_workers   grain worker processes; 0 reads in this process   (0)
  read_threads  threads reading batches ahead in each process (PIL decodes
                outside the GIL); 0 reads each batch only when asked   (2)

Audio sources (spoken_digits, wav_folder, tfds_audio) give {"audio": f32[clip_length, channels]}:
  sample_rate   clips are resampled to this rate (Hz)   (16000)
  clip_length   samples per clip, cut or zero-padded at the end   (16384)
  words         the words kept (labelled by position); () = every file, unlabelled   (())
  num_clips     spoken digits synthesised, one digit after another   (4000)
  synth_seed    spoken digit i is synthesised from (synth_seed, i) alone   (0)
  cache_dir     where synthesised data is kept; "" = $XDG_CACHE_HOME/gans or ~/.cache/gans   ("")

Captioned images (captioned_shapes, caption_folder; gans/data/captions.py) give {"image", "caption": int32[L]
character ids, "caption_index": int32, "label" (shapes: int32[9] attributes; folder: class id if known),
"embedding": f32[E] (folder with embedding_file)}, one element per (picture, caption) pair:
  caption_length        L, characters per caption (0-padded); longer typed captions are refused, longer
                        captions read from files cut   (160)
  captions_per_picture  captions generated per captioned_shapes picture; `size` is its number of pictures and
                        synth_seed its seed (picture i from (synth_seed, i) alone)   (10)
  max_shapes            captioned_shapes pictures hold 1..max_shapes shapes (1 or 2)   (2)
  embedding_file        caption_folder: the precomputed sentence embeddings in <path>/<split>/, e.g.
                        "char-CNN-RNN-embeddings.pickle" (tfds_captions: in <caption_path>/train/ and test/);
                        "" = none   ("")
  caption_path          tfds_captions: the folder holding text_c10/ (and the embeddings' split folders); the
                        images come from TFDS data.name / data.split in data.path   ("")
"""
import ml_collections

DEFAULTS = dict(
    source="digits",
    path="",
    name="",
    split="train",
    resolution=32,
    channels=1,
    center_crop=0,
    image_key="image",
    label_key="label",
    size=100_000,
    mixture_seed=0,
    shapes_seed=0,
    shape_classes="",
    limit=0,
    mirror=False,
    num_workers=0,
    read_threads=2,
    sample_rate=16_000,
    clip_length=16_384,
    words=(),
    num_clips=4000,
    synth_seed=0,
    cache_dir="",
    caption_length=160,
    captions_per_picture=10,
    max_shapes=2,
    embedding_file="",
    caption_path="",
)


def default_config() -> ml_collections.ConfigDict:
  """A data config holding every field at its default, for experiments to override."""
  return ml_collections.ConfigDict(dict(DEFAULTS))


def field(config, name: str):
  """`config.name`, or its default when the experiment did not set it."""
  return config.get(name, DEFAULTS[name])
