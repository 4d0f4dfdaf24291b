"""Captioned images for text-to-image GANs: generated captioned shapes (offline) and StackGAN-style folders
(TFDS images with these folders' captions: gans/data/tfds_captions.py).

Every source yields, per element (one picture with ONE of its captions):

  "image"          f32[R, R, C] in [-1, 1] (R = data.resolution, C = data.channels), as every image source
  "caption"        int32[L] character ids of the caption (L = data.caption_length), `encode_caption`'s: 1.. for
                   the characters of ALPHABET in order, 0 = padding after the last character
  "caption_index"  int32 scalar: which of the picture's captions this is (0-based)
  "label"          int32: captioned_shapes: the attribute vector below (evaluation only, never conditioning);
                   caption_folder: the class id, only when <split>/class_info.pickle exists
  "embedding"      f32[E]: caption_folder with data.embedding_file only: the precomputed sentence embedding of
                   this caption: row j of the image's released [captions, E] array for the caption on line j of
                   its caption file (0-based, every line counted, so a caption keeps its line's row even when an
                   earlier line is empty or cleans to nothing). Lines past the
                   array's rows are left out. `CaptionPairs.caption_embeddings` maps each caption to its row
                   (typed captions with precomputed embeddings, gans/sampling.py).

Caption choice. The pipeline gives sources no per-epoch randomness (batch b is a pure function of b), so a
source's elements are the (picture, caption) PAIRS: element i is caption i % C of picture i // C for the shapes
(C = data.captions_per_picture), and the folder's pairs are numbered picture by picture in the same way. Each
epoch's permutation of the pairs therefore decides which caption goes with each picture in each batch: seeded by
the pipeline's seed, resumed exactly by its saved state, and every caption is seen once per epoch. One epoch is
C passes over the pictures; data.limit counts pairs (the first limit // C pictures with all their captions).

Characters. ALPHABET is lower-case letters, digits, space and common punctuation; captions are lower-cased first
(`normalise`). `encode_caption` (typed captions: `--mode=sample --caption=...`) refuses an empty caption,
characters outside the alphabet and captions longer than L, each with a message saying what to do. Captions
read from files are cleaned instead (`clean_caption`: characters outside the alphabet become spaces, runs of
spaces one, cut to L), with one warning per source counting the captions changed.

captioned_shapes (the offline default; `CaptionedShapesSource`)
  Picture p is drawn from numpy's default_rng([data.synth_seed, p]) alone and rendered on access (random access,
  nothing stored): a black background with 1 or 2 shapes (uniform over 1..data.max_shapes), each with
    kind      KINDS      circle, square, triangle (pointing up), diamond, cross (a plus sign)
    colour    COLOURS    red, green, blue, yellow, white (RGB values in COLOUR_RGB)
    size      SIZES      small, medium, large: half-extent 0.065, 0.10, 0.135 of the picture side, times
                         U(0.92, 1.08), so every large shape is larger than every medium one of its kind and so on
    position  POSITIONS  the cells of a 3x3 grid in reading order: top left, top, top right, left, center, right,
                         bottom left, bottom, bottom right; the shape's centre is the cell's centre moved by
                         U(-0.02, 0.02) of the side in x and y. Two shapes take different cells, and the sizes
                         keep every shape inside its cell, so shapes never overlap.
  drawn independently (uniform). Shapes are rendered with anti-aliasing by 4x4 supersampling (coverage-weighted
  blend of the shape's colour over the background).
  Captions: caption j of picture p draws its template (TEMPLATES, 8 paraphrase forms) and its words (SIZE_WORDS,
  KIND_WORDS, POSITION_PHRASES: synonyms; colours have one word each) from default_rng([synth_seed, p, 1 + j]).
  Two-shape pictures: the shapes are ordered by grid cell (reading order: the top-left-most first), and both the
  caption and the label list them in that order: the caption is the template's phrase for each shape joined by
  the template's joiner, e.g. "a small red circle in the top left corner and a big blue box at the bottom right",
  "top left: a tiny red disc; bottom right: a big blue box".
  Label: int32[9] = LABEL_FIELDS (count, kind_0, colour_0, size_0, position_0, kind_1, colour_1, size_1,
  position_1): indices into KINDS, COLOURS, SIZES, POSITIONS (position = 3 * row + column); a one-shape
  picture has -1 in the second shape's four fields. len(source) = data.size pictures x data.captions_per_picture.
  `shape_caption_label(text)` reads a caption in these words (e.g. a typed one) back into its label, for scoring
  pictures generated from it.
  Held-out pictures for evaluation: another data.synth_seed.

caption_folder (`CaptionFolderSource`): StackGAN's CUB-200 / Oxford-102 releases, data.path = the dataset root:
  <path>/<split>/filenames.pickle    list of image keys, e.g. "002.Laysan_Albatross/Laysan_Albatross_0002_1027"
                                     (optional: without it every image under the image folder, sorted, is used)
  <path>/<split>/<embedding_file>    with data.embedding_file (e.g. "char-CNN-RNN-embeddings.pickle"): per key,
                                     in filenames.pickle's order, a float32 [captions, E] array ([10, 1024] in the
                                     release), read as an array [N, captions, E]
  <path>/<split>/class_info.pickle   optional: per key its class id, returned as "label"
  <path>/text_c10/<key>.txt          the captions, one per line (also accepted: text/ instead of text_c10/, and a
                                     caption file found by the key's last part alone, as Oxford-102's
                                     text_c10/class_00077/image_06734.txt for key "jpg/image_06734")
  images: <path>/CUB_200_2011/images/<key>.jpg when that folder exists (CUB), else <path>/<key>.jpg (flowers)
  (.jpg, .jpeg, .png accepted). With CUB_200_2011/images.txt and bounding_boxes.txt present, images are cut
  around the bird's box as the official StackGAN code does (a square of side 1.5 x the box's longer side,
  centred on the box, clipped to the picture), then the largest central square is resized to data.resolution.
  What to fetch: StackGAN-Pytorch's README links the preprocessed char-CNN-RNN embeddings for birds and flowers
  (the birds/ and flowers/ folders: train/ and test/ with filenames.pickle, char-CNN-RNN-embeddings.pickle,
  class_info.pickle); the captions are the text_c10/ folders of Reed et al.'s caption releases
  (github.com/reedscot/cvpr2016: cvpr2016_cub, cvpr2016_flowers; put text_c10/ in the dataset root); the images are CUB-200-2011 (extract CUB_200_2011/ into the
  root) and Oxford-102 (extract jpg/ into the root). Pickles can run code when loaded: use files you trust.
  Bad inputs: a missing root, split folder, filenames or embedding file raises DatasetNotFoundError saying what
  to fetch; an image without a caption file (or with an empty one) is left out with one warning naming the
  paths; an unreadable image is skipped when read (warned once, naming the path); nothing left is an error.
"""
import os
import pickle
import re
import warnings

import numpy as np
from PIL import Image

from gans.data import folder
from gans.data import images
from gans.data.errors import DatasetNotFoundError

# --- Characters.

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 .,;:!?'\"-()/&+%#"
PADDING = 0
_CHAR_IDS = {character: index + 1 for index, character in enumerate(ALPHABET)}


def normalise(text: str) -> str:
  """Lower case, surrounding whitespace removed: what every caption goes through before encoding."""
  return text.strip().lower()


def encode_caption(text: str, length: int) -> np.ndarray:
  """A typed caption -> int32[length] character ids (0-padded); a clear error for what cannot be encoded."""
  caption = normalise(text)
  if not caption:
    raise ValueError("The caption is empty; give a description, e.g. \"a small red circle in the top left corner\".")
  unknown = sorted(set(caption) - set(_CHAR_IDS))
  if unknown:
    raise ValueError(f"The caption {text!r} has characters outside the alphabet: "
                     f"{', '.join(repr(c) for c in unknown)}. Use only these (captions are lower-cased): "
                     f"{ALPHABET!r}.")
  if len(caption) > length:
    raise ValueError(f"The caption {text!r} has {len(caption)} characters; at most {length} fit "
                     f"(data.caption_length). Shorten it or raise data.caption_length.")
  ids = np.zeros(length, np.int32)
  ids[:len(caption)] = [_CHAR_IDS[c] for c in caption]
  return ids


def decode_caption(ids) -> str:
  """int32 character ids -> the caption (up to the first padding id)."""
  ids = np.asarray(ids).reshape(-1)
  end = int(np.argmax(ids == PADDING)) if np.any(ids == PADDING) else len(ids)
  body = ids[:end]
  if np.any((body < 1) | (body > len(ALPHABET))):
    raise ValueError(f"Character ids must be in [1, {len(ALPHABET)}] before the padding; got {body.tolist()}.")
  return "".join(ALPHABET[i - 1] for i in body)


def clean_caption(text: str, length: int) -> tuple[str, bool]:
  """A caption read from a file as encode_caption accepts it, and whether it had to change beyond lower-casing:
  characters outside the alphabet become spaces, runs of whitespace one space, the result cut to `length`."""
  lowered = normalise(text)
  cleaned = " ".join("".join(c if c in _CHAR_IDS else " " for c in lowered).split())[:length].rstrip()
  return cleaned, cleaned != lowered


# --- Generated captioned shapes.

KINDS = ("circle", "square", "triangle", "diamond", "cross")
COLOURS = ("red", "green", "blue", "yellow", "white")
COLOUR_RGB = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 230), "yellow": (235, 210, 40),
              "white": (245, 245, 245)}
SIZES = ("small", "medium", "large")
SIZE_HALF_EXTENT = {"small": 0.065, "medium": 0.10, "large": 0.135}  # of the picture side
SIZE_JITTER = 0.08  # half-extent times U(1 - jitter, 1 + jitter)
POSITION_JITTER = 0.02  # of the picture side
POSITIONS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")
LABEL_FIELDS = ("count", "kind_0", "colour_0", "size_0", "position_0", "kind_1", "colour_1", "size_1", "position_1")
SUPERSAMPLING = 4

KIND_WORDS = {"circle": ("circle", "disc", "round dot"), "square": ("square", "box", "block"),
              "triangle": ("triangle", "wedge"), "diamond": ("diamond", "rhombus"),
              "cross": ("cross", "plus sign", "plus")}
SIZE_WORDS = {"small": ("small", "tiny", "little"), "medium": ("medium", "medium-sized", "mid-sized"),
              "large": ("large", "big", "huge")}
# Where a shape is, as a phrase after it ("a red circle <phrase>"); "{P}:" templates use the POSITIONS name.
POSITION_PHRASES = {
    "top left": ("in the top left corner", "at the top left"),
    "top": ("at the top", "along the top edge"),
    "top right": ("in the top right corner", "at the top right"),
    "left": ("on the left", "at the left side"),
    "center": ("in the center", "in the middle"),
    "right": ("on the right", "at the right side"),
    "bottom left": ("in the bottom left corner", "at the bottom left"),
    "bottom": ("at the bottom", "along the bottom edge"),
    "bottom right": ("in the bottom right corner", "at the bottom right"),
}
# (prefix, one shape's phrase, joiner between two shapes' phrases). Slots: {s} size word, {c} colour, {k} kind
# word, {L} position phrase, {P} position name.
TEMPLATES = (
    ("", "a {s} {c} {k} {L}", " and "),
    ("", "{P}: a {s} {c} {k}", "; "),
    ("there is ", "a {s} {c} {k} {L}", " and "),
    ("", "{L} a {s} {c} {k}", ", and "),
    ("", "a {c} {k}, {s}, {L}", "; "),
    ("", "a {s} {k} colored {c} {L}", " and "),
    ("", "a {k} that is {s} and {c}, {L}", "; "),
    ("a picture of ", "a {s} {c} {k} {L}", " and "),
)


def draw_shapes(seed: int, picture: int, max_shapes: int) -> np.ndarray:
  """The attributes of picture `picture`: int32[count, 4] rows (kind, colour, size, position) in reading order,
  a pure function of (seed, picture); the random geometry (scale, offsets) follows from draw_geometry."""
  rng = np.random.default_rng([seed, picture])
  count = int(rng.integers(1, max_shapes + 1))
  positions = np.sort(rng.choice(len(POSITIONS), size=count, replace=False))
  return np.stack([rng.integers(len(KINDS), size=count), rng.integers(len(COLOURS), size=count),
                   rng.integers(len(SIZES), size=count), positions], axis=1).astype(np.int32)


def draw_geometry(seed: int, picture: int, attributes: np.ndarray) -> list[tuple[float, float, float]]:
  """Per shape (centre x, centre y, half-extent) in units of the picture side (x right, y down)."""
  rng = np.random.default_rng([seed, picture, 0])
  geometry = []
  for _, _, size, position in attributes:
    row, column = divmod(int(position), 3)
    dx, dy = rng.uniform(-POSITION_JITTER, POSITION_JITTER, 2)
    half = SIZE_HALF_EXTENT[SIZES[size]] * rng.uniform(1 - SIZE_JITTER, 1 + SIZE_JITTER)
    geometry.append(((column + 0.5) / 3 + dx, (row + 0.5) / 3 + dy, half))
  return geometry


def labels(attributes: np.ndarray) -> np.ndarray:
  """int32[9] as LABEL_FIELDS: the count, then each shape's (kind, colour, size, position), -1 where absent."""
  label = np.full(len(LABEL_FIELDS), -1, np.int32)
  label[0] = len(attributes)
  label[1:1 + attributes.size] = attributes.reshape(-1)
  return label


def inside(kind: str, x: np.ndarray, y: np.ndarray, half: float) -> np.ndarray:
  """Whether points (x, y), relative to the shape's centre, are inside a shape of this half-extent."""
  ax, ay = np.abs(x), np.abs(y)
  if kind == "circle":
    return x * x + y * y <= half * half
  if kind == "square":
    return np.maximum(ax, ay) <= half
  if kind == "triangle":  # apex at the top (y = -half), base along y = +half
    return (ay <= half) & (ax <= (y + half) / 2)
  if kind == "diamond":
    return ax + ay <= half
  if kind == "cross":  # arms one third of the extent thick
    arm = half / 3
    return ((ax <= half) & (ay <= arm)) | ((ay <= half) & (ax <= arm))
  raise ValueError(f"Unknown shape kind {kind!r}; valid: {', '.join(KINDS)}.")


def coverage(kind: str, center_x: float, center_y: float, half: float, resolution: int) -> np.ndarray:
  """float32[R, R]: the fraction of each pixel the shape covers, from SUPERSAMPLING^2 samples per pixel."""
  covered = np.zeros((resolution, resolution), np.float32)
  # Only the pixels the shape's bounding box touches are sampled.
  low = [max(0, int(np.floor((c - half) * resolution))) for c in (center_y, center_x)]
  high = [min(resolution, int(np.ceil((c + half) * resolution))) for c in (center_y, center_x)]
  if high[0] <= low[0] or high[1] <= low[1]:
    return covered
  offsets = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING
  ys = ((np.arange(low[0], high[0])[:, None] + offsets).reshape(-1)) / resolution - center_y
  xs = ((np.arange(low[1], high[1])[:, None] + offsets).reshape(-1)) / resolution - center_x
  hits = inside(kind, xs[None, :], ys[:, None], half).astype(np.float32)
  rows, columns = high[0] - low[0], high[1] - low[1]
  covered[low[0]:high[0], low[1]:high[1]] = hits.reshape(rows, SUPERSAMPLING, columns, SUPERSAMPLING).mean((1, 3))
  return covered


def render(attributes: np.ndarray, geometry, resolution: int) -> np.ndarray:
  """uint8[R, R, 3]: the shapes over a black background."""
  pixels = np.zeros((resolution, resolution, 3), np.float32)
  for (kind, colour, _, _), (center_x, center_y, half) in zip(attributes, geometry):
    alpha = coverage(KINDS[kind], center_x, center_y, half, resolution)[..., None]
    pixels = pixels * (1 - alpha) + np.asarray(COLOUR_RGB[COLOURS[colour]], np.float32) * alpha
  return np.round(pixels).astype(np.uint8)


def describe(attributes: np.ndarray, template: int, rng) -> str:
  """A caption of the shapes in `attributes` (reading order) with TEMPLATES[template], synonyms drawn by rng."""
  prefix, phrase, joiner = TEMPLATES[template]
  phrases = []
  for kind, colour, size, position in attributes:
    position_name = POSITIONS[position]
    phrases.append(phrase.format(s=rng.choice(SIZE_WORDS[SIZES[size]]), c=COLOURS[colour],
                                 k=rng.choice(KIND_WORDS[KINDS[kind]]), L=rng.choice(POSITION_PHRASES[position_name]),
                                 P=position_name))
  return prefix + joiner.join(phrases)


def shape_caption(seed: int, picture: int, caption_index: int, attributes: np.ndarray) -> str:
  """Caption `caption_index` of picture `picture`: a pure function of (seed, picture, caption_index)."""
  rng = np.random.default_rng([seed, picture, 1 + caption_index])
  return describe(attributes, int(rng.integers(len(TEMPLATES))), rng)


def longest_shape_caption() -> int:
  """The most characters any captioned_shapes caption can have (two shapes, longest words of each kind)."""
  longest = lambda words: max(words, key=len)
  size = longest([w for words in SIZE_WORDS.values() for w in words])
  kind = longest([w for words in KIND_WORDS.values() for w in words])
  place = longest([p for phrases in POSITION_PHRASES.values() for p in phrases])
  return max(len(prefix) + len(joiner) + 2 * len(phrase.format(s=size, c=longest(COLOURS), k=kind, L=place,
                                                               P=longest(POSITIONS)))
             for prefix, phrase, joiner in TEMPLATES)


def _phrase_pattern(meanings: dict) -> re.Pattern:
  # Longest phrase first, so "top left" is read as one position and "plus sign" as one kind.
  alternatives = "|".join(re.escape(p) for p in sorted(meanings, key=len, reverse=True))
  return re.compile(r"(?<![\w-])(" + alternatives + r")(?![\w-])")


_WORD_MEANINGS = (
    {word: KINDS.index(kind) for kind, words in KIND_WORDS.items() for word in words},
    {colour: index for index, colour in enumerate(COLOURS)},
    {word: SIZES.index(size) for size, words in SIZE_WORDS.items() for word in words},
    # Every POSITION_PHRASES phrase holds its position's name, but "in the middle".
    {**{name: index for index, name in enumerate(POSITIONS)}, "middle": POSITIONS.index("center")},
)
_WORD_PATTERNS = tuple(_phrase_pattern(meanings) for meanings in _WORD_MEANINGS)


def shape_caption_label(text: str) -> np.ndarray:
  """The int32[9] label (LABEL_FIELDS) a caption in captioned_shapes' words describes, for scoring pictures
  generated from typed captions: per shape in order of mention, its kind, colour, size and position words.
  Every shape must be given all four, in different cells, at most two shapes; otherwise a ValueError."""
  caption = normalise(text)
  columns = [[meanings[m] for m in pattern.findall(caption)]
             for pattern, meanings in zip(_WORD_PATTERNS, _WORD_MEANINGS)]
  counts = dict(zip(("kinds", "colours", "sizes", "positions"), (len(c) for c in columns)))
  if len(set(counts.values())) != 1 or not 1 <= counts["kinds"] <= 2:
    raise ValueError(f"The caption {text!r} does not name one or two shapes each with a kind ({', '.join(KINDS)}), "
                     f"a colour ({', '.join(COLOURS)}), a size ({', '.join(SIZES)}) and a position "
                     f"({', '.join(POSITIONS)}); found {counts}.")
  attributes = np.asarray(columns, np.int32).T
  if len(attributes) == 2 and attributes[0, 3] == attributes[1, 3]:
    raise ValueError(f"The caption {text!r} puts both shapes in one cell; captioned_shapes pictures never do.")
  return labels(attributes[np.argsort(attributes[:, 3], kind="stable")])


class CaptionedShapesSource:
  """source[i] -> caption i % C of generated picture i // C; see the module docstring."""

  def __init__(self, *, resolution: int, channels: int, size: int, captions_per_picture: int, caption_length: int,
               max_shapes: int, seed: int = 0):
    if channels != 3:
      raise ValueError(f"captioned_shapes pictures are coloured and their captions name the colours; set "
                       f"data.channels=3 (got {channels}).")
    if max_shapes not in (1, 2):
      raise ValueError(f"data.max_shapes must be 1 or 2, got {max_shapes}.")
    if captions_per_picture < 1 or size < 1:
      raise ValueError(f"data.size ({size}) and data.captions_per_picture ({captions_per_picture}) must be positive.")
    if caption_length < longest_shape_caption():
      raise ValueError(f"data.caption_length={caption_length} is shorter than the longest captioned_shapes caption "
                       f"({longest_shape_caption()} characters); raise it.")
    self._resolution, self._channels, self._size = resolution, channels, size
    self._captions, self._length, self._max_shapes, self._seed = captions_per_picture, caption_length, max_shapes, seed

  def __len__(self) -> int:
    return self._size * self._captions

  def attributes(self, picture: int) -> np.ndarray:
    return draw_shapes(self._seed, picture, self._max_shapes)

  def pixels(self, picture: int) -> np.ndarray:
    """uint8[R, R, 3] of picture `picture` at the configured resolution."""
    attributes = self.attributes(picture)
    return render(attributes, draw_geometry(self._seed, picture, attributes), self._resolution)

  def caption(self, picture: int, caption_index: int) -> str:
    return shape_caption(self._seed, picture, caption_index, self.attributes(picture))

  def __getitem__(self, index: int) -> dict:
    if not 0 <= index < len(self):
      raise IndexError(f"index {index} outside [0, {len(self)})")
    picture, caption_index = divmod(int(index), self._captions)
    attributes = self.attributes(picture)
    pixels = render(attributes, draw_geometry(self._seed, picture, attributes), self._resolution)
    image = images.model_image(images.pil_image(pixels), resolution=self._resolution, channels=self._channels)
    caption = shape_caption(self._seed, picture, caption_index, attributes)
    return {"image": image, "caption": encode_caption(caption, self._length), "caption_index": np.int32(caption_index),
            "label": labels(attributes)}

  def __repr__(self) -> str:
    return (f"CaptionedShapesSource({self._size} pictures x {self._captions} captions, seed {self._seed}, "
            f"up to {self._max_shapes} shapes)")


# --- StackGAN-style folders of captioned images.

CAPTION_FOLDER_HINT = (
    "caption_folder reads StackGAN's CUB-200 / Oxford-102 layout (gans/data/captions.py): data.path is the root "
    "holding <split>/filenames.pickle (+ char-CNN-RNN-embeddings.pickle from StackGAN-Pytorch's README links), "
    "text_c10/ (Reed et al.'s captions, github.com/reedscot/cvpr2016) and the images (CUB_200_2011/ or jpg/).")
CAPTION_DIRECTORIES = ("text_c10", "text")
CAPTION_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CUB_DIRECTORY = "CUB_200_2011"
BOX_SCALE = 0.75  # StackGAN crops to a square of half-side 0.75 x the box's longer side


def load_pickle(path: str):
  # latin1 reads the numpy arrays Python 2 pickled (the StackGAN releases) as well as Python 3 pickles.
  with open(path, "rb") as file:
    return pickle.load(file, encoding="latin1")


def _first_existing(paths) -> str | None:
  return next((p for p in paths if os.path.exists(p)), None)


def _caption_files(root: str) -> tuple[dict, dict]:
  """The caption files under text_c10/ (or text/): by relative path without .txt, and by file stem alone."""
  directory = _first_existing(os.path.join(root, d) for d in CAPTION_DIRECTORIES)
  if directory is None:
    raise DatasetNotFoundError(f"No caption folder ({' or '.join(CAPTION_DIRECTORIES)}) in {root!r}. "
                               f"{CAPTION_FOLDER_HINT}")
  relative = {os.path.splitext(name)[0]: os.path.join(directory, name)
              for name in folder.files_under(directory, (".txt",))}
  by_stem = {}
  for key, path in relative.items():
    by_stem.setdefault(os.path.basename(key), path)
  return relative, by_stem


def _cub_boxes(root: str) -> dict:
  """CUB's bounding boxes (x, y, width, height) by image key, when images.txt and bounding_boxes.txt exist."""
  names_path = os.path.join(root, CUB_DIRECTORY, "images.txt")
  boxes_path = os.path.join(root, CUB_DIRECTORY, "bounding_boxes.txt")
  if not (os.path.isfile(names_path) and os.path.isfile(boxes_path)):
    return {}
  with open(names_path) as file:
    names = dict(line.split()[:2] for line in file if line.strip())
  boxes = {}
  with open(boxes_path) as file:
    for line in file:
      if line.strip():
        image_id, *box = line.split()
        boxes[os.path.splitext(names[image_id])[0]] = tuple(float(v) for v in box)
  return boxes


def box_crop(image: Image.Image, box) -> Image.Image:
  """The official StackGAN cut around a CUB box: centre of the box, half-side 0.75 x its longer side, clipped."""
  x, y, width, height = box
  radius = int(max(width, height) * BOX_SCALE)
  center_x, center_y = int((2 * x + width) / 2), int((2 * y + height) / 2)
  left, top = max(0, center_x - radius), max(0, center_y - radius)
  right, bottom = min(image.width, center_x + radius), min(image.height, center_y + radius)
  return image.crop((left, top, right, bottom))


def _read_captions(path: str, length: int) -> tuple[list[tuple[int, str]], int]:
  """(line number, cleaned caption) of the caption file's non-empty lines, and how many had to change. The line
  number (0-based, counting every line) is what pairs a caption with the release's embedding of the same row."""
  with open(path, encoding="utf-8", errors="replace") as file:
    lines = file.read().splitlines()
  cleaned = [(number, *clean_caption(line, length)) for number, line in enumerate(lines) if line.strip()]
  return [(number, text) for number, text, _ in cleaned if text], sum(changed for _, _, changed in cleaned)


def caption_key(text: str) -> str:
  """What two captions must share to be the same caption: lower case, whitespace runs as one space."""
  return " ".join(normalise(text).split())


def _keys(root: str, split: str, image_directory: str) -> list[str]:
  filenames = os.path.join(root, split, "filenames.pickle")
  if os.path.isfile(filenames):
    return [str(key) for key in load_pickle(filenames)]
  return [os.path.splitext(name)[0] for name in folder.files_under(image_directory, CAPTION_IMAGE_SUFFIXES)]


def _warn_left_out(problems: list[str], total: int) -> None:
  if problems:
    shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
    warnings.warn(f"Left out {len(problems)} of {total} captioned images: {shown}")


class CaptionPairs:
  """The (image, caption) pair numbering shared by the captioned-image sources: pair i is caption i - first[k]
  of image k; with embeddings, caption j of image k has the embedding row self._embeddings[k][j]."""

  def _set_pairs(self, captions: list[list[str]], embeddings: list[np.ndarray] | None) -> None:
    self._captions, self._embeddings = captions, embeddings or []
    self._first_pair = np.cumsum([0] + [len(c) for c in captions[:-1]]).astype(np.int64)
    self._num_pairs = int(self._first_pair[-1]) + len(captions[-1])

  def __len__(self) -> int:
    return self._num_pairs

  def pair(self, index: int) -> tuple[int, int]:
    """(image number, caption number) of pair `index`."""
    if not 0 <= index < self._num_pairs:
      raise IndexError(f"index {index} outside [0, {self._num_pairs})")
    image = int(np.searchsorted(self._first_pair, index, side="right")) - 1
    return image, int(index - self._first_pair[image])

  def captions(self, image: int) -> list[str]:
    return list(self._captions[image])

  def caption_embeddings(self) -> dict[str, np.ndarray]:
    """caption_key(caption) -> its released embedding f32[E], for every caption of the source (a caption that
    several images share keeps its first image's row). Empty without embeddings."""
    table = {}
    for texts, rows in zip(self._captions, self._embeddings):
      for text, row in zip(texts, rows):
        table.setdefault(caption_key(text), row)
    return table

  def _caption_element(self, image: int, caption_index: int, pixels: np.ndarray) -> dict:
    element = {"image": pixels, "caption": encode_caption(self._captions[image][caption_index], self._length),
               "caption_index": np.int32(caption_index)}
    if self._embeddings:
      element["embedding"] = self._embeddings[image][caption_index]
    return element


class CaptionFolderSource(CaptionPairs):
  """source[i] -> one (image, caption) pair of a StackGAN-style folder; see the module docstring.

  Captions (and embeddings) are read when the source is made, images when an element is read (None, skipped by
  the pipeline with one warning naming the path, for an image that cannot be decoded).
  """

  def __init__(self, path: str, split: str, *, resolution: int, channels: int, caption_length: int,
               embedding_file: str = ""):
    if not path or not os.path.isdir(path):
      raise DatasetNotFoundError(f"No caption folder root at {path!r}. {CAPTION_FOLDER_HINT}")
    self._path = path
    self._image_options = dict(resolution=resolution, channels=channels)
    self._length = caption_length
    cub_images = os.path.join(path, CUB_DIRECTORY, "images")
    self._image_directory = cub_images if os.path.isdir(cub_images) else path
    self._boxes = _cub_boxes(path)
    keys = _keys(path, split, self._image_directory)
    if not keys:
      raise DatasetNotFoundError(f"No images in {self._image_directory!r} and no {split}/filenames.pickle in "
                                 f"{path!r}. {CAPTION_FOLDER_HINT}")
    embeddings = self._load_embeddings(split, embedding_file, len(keys))
    class_info = os.path.join(path, split, "class_info.pickle")
    classes = np.asarray(load_pickle(class_info), np.int32) if os.path.isfile(class_info) else None
    self._load_pairs(keys, embeddings, classes)
    self._reported = set()

  def _load_embeddings(self, split: str, embedding_file: str, count: int) -> np.ndarray | None:
    if not embedding_file:
      return None
    embedding_path = os.path.join(self._path, split, embedding_file)
    if not os.path.isfile(embedding_path):
      raise DatasetNotFoundError(f"No sentence embeddings at {embedding_path!r} (data.embedding_file). "
                                 f"{CAPTION_FOLDER_HINT}")
    embeddings = np.asarray(load_pickle(embedding_path), np.float32)
    if embeddings.ndim != 3 or len(embeddings) != count:
      raise ValueError(f"{embedding_path}: expected per image an array [captions, E] ({count} images, as "
                       f"filenames.pickle), got an array of shape {embeddings.shape}.")
    return embeddings

  def _load_pairs(self, keys, embeddings, classes) -> None:
    by_path, by_stem = _caption_files(self._path)
    self._keys, self._image_paths, self._classes = [], [], []
    all_captions, all_embeddings = [], []
    problems, changed = [], 0
    for index, key in enumerate(keys):
      image_path = _first_existing(os.path.join(self._image_directory, key + suffix)
                                   for suffix in CAPTION_IMAGE_SUFFIXES + ("",))
      caption_path = by_path.get(key) or by_stem.get(os.path.basename(key))
      if image_path is None or not os.path.isfile(image_path):
        problems.append(f"no image {os.path.join(self._image_directory, key)}.jpg")
        continue
      if caption_path is None:
        problems.append(f"no caption file for {image_path} (text_c10/{key}.txt)")
        continue
      numbered, cleaned = _read_captions(caption_path, self._length)
      changed += cleaned
      if embeddings is not None:  # the caption of line j has embedding row j; lines past the rows are left out
        numbered = [(line, text) for line, text in numbered if line < len(embeddings[index])]
      if not numbered:
        problems.append(f"no captions in {caption_path}")
        continue
      self._keys.append(key)
      self._image_paths.append(image_path)
      all_captions.append([text for _, text in numbered])
      if embeddings is not None:
        all_embeddings.append(embeddings[index][[line for line, _ in numbered]])
      if classes is not None:
        self._classes.append(classes[index])
    _warn_left_out(problems, len(keys))
    if not self._keys:
      raise DatasetNotFoundError(f"No image with captions in {self._path!r}. {CAPTION_FOLDER_HINT}")
    if changed:
      warnings.warn(f"{changed} captions in {self._path!r} were cleaned to the alphabet (other characters became "
                    f"spaces) or cut to data.caption_length={self._length}.")
    self._set_pairs(all_captions, all_embeddings if embeddings is not None else None)

  def _image(self, image: int) -> np.ndarray | None:
    path = self._image_paths[image]
    try:
      with Image.open(path) as picture:
        picture.load()  # Image.open is lazy: decode now so a truncated file fails here
        box = self._boxes.get(self._keys[image])
        picture = box_crop(picture.convert("RGB"), box) if box else picture
        return images.model_image(picture, **self._image_options)
    except folder._UNREADABLE_ERRORS as error:  # pylint: disable=protected-access
      folder.warn_once(self._reported, path, f"Skipping unreadable image {path}: {error}")
      return None

  def __getitem__(self, index: int) -> dict | None:
    image, caption_index = self.pair(int(index))
    pixels = self._image(image)
    if pixels is None:
      return None
    element = self._caption_element(image, caption_index, pixels)
    if self._classes:
      element["label"] = np.int32(self._classes[image])
    return element

  def __repr__(self) -> str:
    return f"CaptionFolderSource({self._path!r}, {len(self._keys)} images, {self._num_pairs} captions)"
