"""Captioned images: the generated captioned shapes, the caption alphabet, StackGAN-style folders, the pipeline."""
import pickle
import re
import warnings

import ml_collections
import numpy as np
import pytest
from PIL import Image

from gans import data
from gans.data import captions
from gans.data import images

# What the caption words mean, written down here independently of the module's tables: the tests parse
# captions with these and compare with the labels.
KIND_MEANING = {"circle": 0, "disc": 0, "round dot": 0, "square": 1, "box": 1, "block": 1, "triangle": 2,
                "wedge": 2, "diamond": 3, "rhombus": 3, "cross": 4, "plus sign": 4, "plus": 4}
COLOUR_MEANING = {"red": 0, "green": 1, "blue": 2, "yellow": 3, "white": 4}
SIZE_MEANING = {"small": 0, "tiny": 0, "little": 0, "medium": 1, "medium-sized": 1, "mid-sized": 1, "large": 2,
                "big": 2, "huge": 2}
POSITION_MEANING = {"top left": 0, "top right": 2, "bottom left": 6, "bottom right": 8, "top": 1, "bottom": 7,
                    "left": 3, "right": 5, "center": 4, "middle": 4}


def data_config(**fields) -> ml_collections.ConfigDict:
  config = data.default_config()
  config.update(fields)
  config.read_threads = 0
  return config


def shapes_source(**options) -> captions.CaptionedShapesSource:
  arguments = dict(resolution=64, channels=3, size=400, captions_per_picture=5, caption_length=160, max_shapes=2,
                   seed=0)
  return captions.CaptionedShapesSource(**{**arguments, **options})


def words_in_order(caption: str, meaning: dict) -> list[int]:
  """The meanings of the words of `meaning` in the caption, in order of appearance (longest phrase first)."""
  pattern = r"(?<![\w-])(" + "|".join(re.escape(w) for w in sorted(meaning, key=len, reverse=True)) + r")(?![\w-])"
  return [meaning[match] for match in re.findall(pattern, caption)]


def parsed(caption: str) -> list[list[int]]:
  """Per shape named in the caption: [kind, colour, size, position], read from its words."""
  columns = [words_in_order(caption, m) for m in (KIND_MEANING, COLOUR_MEANING, SIZE_MEANING, POSITION_MEANING)]
  assert len({len(c) for c in columns}) == 1, (caption, columns)
  return [list(shape) for shape in zip(*columns)]


def expected_shapes(label: np.ndarray) -> list[list[int]]:
  return [label[1 + 4 * s:5 + 4 * s].tolist() for s in range(label[0])]


# Captioned shapes -------------------------------------------------------------


def test_every_caption_names_the_labelled_shapes_in_label_order():
  source = shapes_source()
  counts = set()
  for index in range(0, len(source), 3):  # every picture, each caption index
    element = source[index]
    label = element["label"]
    counts.add(int(label[0]))
    text = captions.decode_caption(element["caption"])
    assert parsed(text) == expected_shapes(label)
    np.testing.assert_array_equal(captions.shape_caption_label(text), label)  # the module's own reading
    if label[0] == 1:
      assert (label[5:] == -1).all()
    else:
      assert label[4] < label[8]  # two shapes in reading order of their cells
  assert counts == {1, 2}


@pytest.mark.parametrize("template", range(len(captions.TEMPLATES)))
def test_every_paraphrase_template_names_one_and_two_shapes_correctly(template):
  rng = np.random.default_rng(template)
  for count in (1, 2, 2, 2):
    attributes = captions.draw_shapes(template * 10 + count, int(rng.integers(1000)), 2)[:count]
    if len(attributes) < count:
      continue
    for _ in range(10):  # synonyms vary
      caption = captions.describe(attributes, template, rng)
      assert parsed(caption) == attributes.tolist()
      captions.encode_caption(caption, captions.longest_shape_caption())  # fits and is in the alphabet


def test_typed_captions_read_back_as_labels_in_reading_order_and_unreadable_ones_are_refused():
  np.testing.assert_array_equal(captions.shape_caption_label("A large blue square at the bottom"),
                                [1, 1, 2, 2, 7, -1, -1, -1, -1])
  np.testing.assert_array_equal(captions.shape_caption_label("bottom right: a big blue box; top left: a tiny red disc"),
                                [2, 0, 0, 0, 0, 1, 2, 2, 8])
  with pytest.raises(ValueError, match="found {'kinds': 1, 'colours': 1, 'sizes': 0, 'positions': 0}"):
    captions.shape_caption_label("a red circle")
  with pytest.raises(ValueError, match="one cell"):
    captions.shape_caption_label("a small red circle on the left and a big blue box at the left side")


def test_a_picture_has_paraphrased_captions_and_a_caption_is_a_function_of_seed_picture_and_index():
  source = shapes_source(captions_per_picture=10)
  texts = [source.caption(7, j) for j in range(10)]
  assert len(set(texts)) > 3
  assert texts == [shapes_source(captions_per_picture=10).caption(7, j) for j in range(10)]
  assert [captions.decode_caption(source[70 + j]["caption"]) for j in range(10)] == texts
  assert [int(source[70 + j]["caption_index"]) for j in range(10)] == list(range(10))


def test_rendering_is_determined_by_the_seed_and_differs_across_seeds():
  first, again, other = shapes_source(seed=3), shapes_source(seed=3), shapes_source(seed=4)
  for index in (0, 11, 123):
    for key in ("image", "caption", "label"):
      np.testing.assert_array_equal(first[index][key], again[index][key])
  assert any(not np.array_equal(first[i]["image"], other[i]["image"]) for i in (0, 11, 123))
  assert any(not np.array_equal(first[i]["label"], other[i]["label"]) for i in range(0, 50, 5))


def test_each_shape_lies_in_its_labelled_cell_with_its_colour_and_nothing_else_is_drawn():
  source = shapes_source(size=80)
  named_colours = {name: np.asarray(rgb) for name, rgb in captions.COLOUR_RGB.items()}
  # The colours are what their names say.
  assert named_colours["red"].argmax() == 0 and named_colours["green"].argmax() == 1
  assert named_colours["blue"].argmax() == 2 and named_colours["white"].min() > 200
  assert named_colours["yellow"][:2].min() > 2 * named_colours["yellow"][2]
  for picture in range(80):
    element = source[picture * 5]
    pixels = source.pixels(picture)
    np.testing.assert_array_equal(np.round((element["image"] + 1) * 127.5).astype(np.uint8), pixels)
    drawn = pixels.max(-1) > 0
    shapes = expected_shapes(element["label"])
    cells = np.zeros((3, 3), bool)
    for kind, colour, size, position in shapes:
      row, column = divmod(position, 3)
      cells[row, column] = True
      cell = np.zeros_like(drawn)
      cell[row * 64 // 3:(row + 1) * 64 // 3 + 1, column * 64 // 3:(column + 1) * 64 // 3 + 1] = True
      ys, xs = np.nonzero(drawn & cell)
      assert len(ys) > 10
      assert row / 3 <= (ys.mean() + 0.5) / 64 < (row + 1) / 3
      assert column / 3 <= (xs.mean() + 0.5) / 64 < (column + 1) / 3
      colours, counts = np.unique(pixels[drawn & cell], axis=0, return_counts=True)
      np.testing.assert_array_equal(colours[counts.argmax()], named_colours[captions.COLOURS[colour]])
    # Nothing outside the labelled cells (each cell's boundary row/column shared with its neighbours aside).
    interior = np.zeros_like(drawn)
    for row, column in zip(*np.nonzero(~cells)):
      interior[row * 64 // 3 + 2:(row + 1) * 64 // 3 - 1, column * 64 // 3 + 2:(column + 1) * 64 // 3 - 1] = True
    assert not (drawn & interior).any()


def test_pixel_area_grows_from_small_to_medium_to_large_for_every_kind():
  source = shapes_source(size=600, max_shapes=1)
  areas = {}
  for picture in range(600):
    kind, colour, size, _ = source.attributes(picture)[0]
    brightest = max(captions.COLOUR_RGB[captions.COLOURS[colour]])  # coverage = pixel value / the colour's
    areas.setdefault((kind, size), []).append(source.pixels(picture).max(-1).astype(np.float64).sum() / brightest)
  for kind in range(len(captions.KINDS)):
    assert max(areas[kind, 0]) < min(areas[kind, 1]) and max(areas[kind, 1]) < min(areas[kind, 2])


def test_bad_shape_options_are_refused():
  with pytest.raises(ValueError, match="data.channels=3"):
    shapes_source(channels=1)
  with pytest.raises(ValueError, match="max_shapes"):
    shapes_source(max_shapes=3)
  with pytest.raises(ValueError, match="caption_length"):
    shapes_source(caption_length=40)
  with pytest.raises(ValueError, match="mirror"):
    data.make_iterator(data_config(source="captioned_shapes", channels=3, mirror=True), batch_size=2, seed=0)


# The caption alphabet ---------------------------------------------------------


def test_encode_decode_round_trip_lower_cases_and_pads_with_zeros():
  ids = captions.encode_caption("  A Small RED circle, top-left (1st)!  ", 48)
  assert ids.dtype == np.int32 and ids.shape == (48,)
  text = "a small red circle, top-left (1st)!"
  assert (ids[:len(text)] > 0).all() and (ids[len(text):] == 0).all()
  assert captions.decode_caption(ids) == text
  assert captions.decode_caption(captions.encode_caption(captions.ALPHABET, len(captions.ALPHABET))) == \
      captions.ALPHABET.strip()


@pytest.mark.parametrize("text", ["", "   \n"])
def test_an_empty_caption_is_refused(text):
  with pytest.raises(ValueError, match="empty"):
    captions.encode_caption(text, 32)


def test_characters_outside_the_alphabet_are_named_with_the_alphabet():
  with pytest.raises(ValueError) as error:
    captions.encode_caption("a red ☺ circle_é", 32)
  message = str(error.value)
  for character in ("'☺'", "'_'", "'é'"):
    assert character in message
  assert repr(captions.ALPHABET) in message


def test_a_caption_longer_than_the_caption_length_is_refused_and_bad_ids_do_not_decode():
  with pytest.raises(ValueError, match="caption_length"):
    captions.encode_caption("a" * 33, 32)
  with pytest.raises(ValueError, match="ids"):
    captions.decode_caption([1, 2, len(captions.ALPHABET) + 1, 0])


def test_captions_from_files_are_cleaned_to_the_alphabet_and_cut():
  assert captions.clean_caption("This bird\ufffd\ufffdhas  a RED_crown", 100) == ("this bird has a red crown", True)
  assert captions.clean_caption("a small bird", 100) == ("a small bird", False)
  assert captions.clean_caption("a small bird", 7) == ("a small", True)


# StackGAN-style folders -------------------------------------------------------


def write_stackgan_folder(root, *, embeddings: bool, cub: bool = True):
  """Four images in StackGAN's layout: #1 has no caption file, #2 is corrupt. Returns keys, captions, embeddings."""
  keys = ["001.Albatross/Albatross_0001", "001.Albatross/Albatross_0002", "002.Wren/Wren_0003", "002.Wren/Wren_0004"]
  if not cub:
    keys = ["jpg/image_00001", "jpg/image_00002", "jpg/image_00003", "jpg/image_00004"]
  image_root = root / "CUB_200_2011" / "images" if cub else root
  lines = {}
  for number, key in enumerate(keys):
    image_path = image_root / f"{key}.jpg"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    if number == 2:
      image_path.write_bytes(b"not a jpeg")
    else:
      Image.new("RGB", (12, 8), color=(40 * number, 0, 0)).save(image_path)
    if number == 1:
      continue
    lines[key] = [f"Bird {number}, caption {j}." for j in range(3 + number)]
    class_folder = key.split("/")[0] if cub else f"class_{number:05d}"
    caption_path = root / "text_c10" / class_folder / f"{key.split('/')[-1]}.txt"
    caption_path.parent.mkdir(parents=True, exist_ok=True)
    caption_path.write_text("\n".join(lines[key]) + "\n\n")
  (root / "train").mkdir()
  with open(root / "train" / "filenames.pickle", "wb") as file:
    pickle.dump(keys, file)
  with open(root / "train" / "class_info.pickle", "wb") as file:
    pickle.dump([1, 1, 2, 2], file)
  vectors = np.random.default_rng(0).normal(size=(4, 4, 6)).astype(np.float32)
  if embeddings:
    with open(root / "train" / "char-CNN-RNN-embeddings.pickle", "wb") as file:
      pickle.dump(vectors, file)
  return keys, lines, vectors


def folder_config(root, **fields):
  return data_config(source="caption_folder", path=str(root), resolution=8, channels=3, caption_length=40, **fields)


@pytest.mark.parametrize("cub", [True, False])
def test_caption_folder_pairs_every_caption_with_its_image_and_embedding(tmp_path, cub):
  keys, lines, vectors = write_stackgan_folder(tmp_path, embeddings=True, cub=cub)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    source = data.make_source(folder_config(tmp_path, embedding_file="char-CNN-RNN-embeddings.pickle"))
  missing = [str(w.message) for w in caught if "no caption file" in str(w.message)]
  assert len(missing) == 1 and keys[1].split("/")[-1] in missing[0]
  # Images 0, 2, 3 with 3, 5, 6 captions; the 4 embeddings per image keep the first 4 of image 3's captions.
  assert len(source) == 3 + 4 + 4
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    elements = [source[i] for i in range(len(source))]
  assert [e is None for e in elements] == [False] * 3 + [True] * 4 + [False] * 4
  assert sum(keys[2].split("/")[-1] in str(w.message) and "unreadable" in str(w.message) for w in caught) == 1
  for index, (image, key) in zip([0, 7], [(0, keys[0]), (3, keys[3])]):
    for j in range(3):
      element = elements[index + j]
      assert captions.decode_caption(element["caption"]) == lines[key][j].lower()
      assert int(element["caption_index"]) == j and int(element["label"]) == [1, 1, 2, 2][image]
      np.testing.assert_array_equal(element["embedding"], vectors[image, j])
      assert element["image"].shape == (8, 8, 3) and element["image"].dtype == np.float32
  np.testing.assert_allclose(elements[7]["image"][..., 0], 120 / 127.5 - 1, atol=1 / 127.5)


def test_caption_folder_without_embeddings_and_through_the_pipeline(tmp_path):
  write_stackgan_folder(tmp_path, embeddings=False)
  config = folder_config(tmp_path)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    assert len(data.make_source(config)) == 3 + 5 + 6
    iterator = data.make_iterator(config, batch_size=14, seed=0)
    batch = next(iterator)
    iterator.close()
  assert set(batch) == {"image", "caption", "caption_index", "label"}
  assert batch["image"].shape == (14, 8, 8, 3) and batch["caption"].shape == (14, 40)
  assert batch["caption"].dtype == np.int32 and batch["caption_index"].dtype == np.int32
  assert all(captions.decode_caption(c).startswith("bird ") for c in batch["caption"])


def test_caption_folder_cuts_cub_images_around_the_bird_box_as_stackgan():
  image = Image.fromarray(np.arange(60 * 100 * 3, dtype=np.uint8).reshape(60, 100, 3))
  cut = captions.box_crop(image, (10, 10, 20, 10))  # half-side 0.75 * 20 = 15 around the centre (20, 15)
  assert cut.size == (30, 30)
  np.testing.assert_array_equal(np.asarray(cut), np.asarray(image)[0:30, 5:35])


def test_caption_folder_missing_inputs_say_what_to_fetch(tmp_path):
  with pytest.raises(data.DatasetNotFoundError, match="filenames.pickle"):
    data.make_source(folder_config(tmp_path / "nowhere"))
  write_stackgan_folder(tmp_path, embeddings=False)
  with pytest.raises(data.DatasetNotFoundError, match="char-CNN-RNN"):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      data.make_source(folder_config(tmp_path, embedding_file="char-CNN-RNN-embeddings.pickle"))
  for path in (tmp_path / "text_c10").rglob("*.txt"):
    path.unlink()
  with pytest.raises(data.DatasetNotFoundError, match="No image with captions"):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      data.make_source(folder_config(tmp_path))


# The pipeline -----------------------------------------------------------------


def test_captioned_shapes_batches_have_the_element_format_and_resume_the_same_captions():
  config = data_config(source="captioned_shapes", channels=3, resolution=16, size=50, captions_per_picture=4)
  iterator = data.make_iterator(config, batch_size=6, seed=1)
  first = next(iterator)
  assert {k: (v.shape, v.dtype) for k, v in first.items()} == {
      "image": ((6, 16, 16, 3), np.float32), "caption": ((6, 160), np.int32), "caption_index": ((6,), np.int32),
      "label": ((6, 9), np.int32)}
  assert -1 <= first["image"].min() and first["image"].max() <= 1
  state = iterator.get_state()
  expected = [next(iterator) for _ in range(2)]
  iterator.close()
  resumed = data.make_iterator(config, batch_size=6, seed=1)
  resumed.set_state(state)
  for batch in expected:
    actual = next(resumed)
    for key in batch:
      np.testing.assert_array_equal(batch[key], actual[key])
  resumed.close()


def test_an_epoch_visits_every_picture_caption_pair_once():
  source = shapes_source(size=4, captions_per_picture=3, resolution=16)
  batches = data.ShuffledBatches(source, batch_size=12, seed=0)
  pictures = [images.to_signed_unit(source.pixels(p)) for p in range(4)]
  for epoch in range(2):
    batch = batches[epoch]
    seen = set()
    for image, caption_index in zip(batch["image"], batch["caption_index"]):
      picture = next(p for p in range(4) if np.array_equal(pictures[p], image))
      seen.add((picture, int(caption_index)))
    assert seen == {(p, j) for p in range(4) for j in range(3)}


# TFDS images with a caption folder --------------------------------------------------------------


def write_caption_release(root):
  """write_stackgan_folder's captions (#1 has none) with StackGAN's embeddings split over train/ (#0-#2) and test/
  (#3), as the birds release splits CUB by class. Returns keys, captions, embeddings."""
  keys, lines, vectors = write_stackgan_folder(root, embeddings=False)
  for split, chosen in (("train", slice(0, 3)), ("test", slice(3, 4))):
    (root / split).mkdir(exist_ok=True)
    with open(root / split / "filenames.pickle", "wb") as file:
      pickle.dump(keys[chosen], file)
    with open(root / split / "char-CNN-RNN-embeddings.pickle", "wb") as file:
      pickle.dump(vectors[chosen], file)
  return keys, lines, vectors


def png_bytes(pixels: np.ndarray) -> bytes:
  import io  # pylint: disable=import-outside-toplevel
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="PNG")
  return buffer.getvalue()


def fake_birds(keys):
  """caltech_birds2011-like examples, the image encoded (as SkipDecoding leaves it): a 40x20 picture whose left
  half is level 10 and right half level 50 * (k + 1), the bbox (normalised ymin, xmin, ymax, xmax) well inside
  the right half, so StackGAN's cut around it holds the right half's level alone."""
  examples = []
  for number, key in keys:
    pixels = np.full((20, 40, 3), 10, np.uint8)
    pixels[:, 20:] = 50 * (number + 1)
    examples.append({"image": png_bytes(pixels), "image/filename": f"CUB_200_2011/images/{key}.jpg".encode(),
                     "label": number, "label_name": "bird", "bbox": np.array([0.2, 0.6, 0.8, 0.9], np.float32)})
  return examples


def tfds_captions_config(tmp_path, **fields):
  fields = {"caption_path": str(tmp_path / "release"), **fields}
  return data_config(source="tfds_captions", name="caltech_birds2011", path=str(tmp_path / "tfds"), resolution=8,
                     channels=3, caption_length=40, **fields)


def test_tfds_captions_pairs_tfds_images_with_captions_and_embeddings_by_file_name(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  (tmp_path / "release").mkdir()
  keys, lines, vectors = write_caption_release(tmp_path / "release")
  asked = []

  def as_data_source(builder, split, decoders=None, **kwargs):
    del kwargs
    asked.append((builder.name, split, decoders))
    return fake_birds([(3, keys[3]), (0, keys[0])])  # TFDS's order, not the release's

  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    source = data.make_source(tfds_captions_config(tmp_path, embedding_file="char-CNN-RNN-embeddings.pickle"))
  (name, split, decoders), = asked
  assert (name, split) == ("caltech_birds2011", "train")
  assert isinstance(decoders["image"], tfds.decode.SkipDecoding)  # the file-name scan decodes no image
  assert len(source) == 4 + 3  # image #3: its 6 captions cut to its 4 embeddings; image #0: 3 captions
  for index, (number, j) in enumerate([(3, 0), (3, 1), (3, 2), (3, 3), (0, 0), (0, 1), (0, 2)]):
    element = source[index]
    assert captions.decode_caption(element["caption"]) == lines[keys[number]][j].lower()
    np.testing.assert_array_equal(element["embedding"], vectors[number, j])  # #3's from test/, #0's from train/
    assert int(element["caption_index"]) == j and int(element["label"]) == number
    assert element["image"].shape == (8, 8, 3)
    np.testing.assert_allclose(element["image"], 50 * (number + 1) / 127.5 - 1, atol=1e-6)  # cut around the box
  table = source.caption_embeddings()
  np.testing.assert_array_equal(table[captions.caption_key(lines[keys[3]][2])], vectors[3, 2])


def test_tfds_captions_refuse_images_without_captions_and_missing_folders_or_datasets(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  (tmp_path / "release").mkdir()
  keys, _, _ = write_caption_release(tmp_path / "release")

  def as_data_source(builder, split, **kwargs):
    del builder, split, kwargs
    return fake_birds(list(enumerate(keys[:2])))  # #1 has no caption file

  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    with pytest.raises(data.DatasetNotFoundError, match=r"1 of 2 images .* no caption file .*Albatross_0002"):
      data.make_source(tfds_captions_config(tmp_path))
    with pytest.raises(data.DatasetNotFoundError, match="data.caption_path.*text_c10"):
      data.make_source(tfds_captions_config(tmp_path, caption_path=str(tmp_path / "nowhere")))
  with pytest.raises(data.DatasetNotFoundError, match="tfds build caltech_birds2011 .*array_record"):
    data.make_source(tfds_captions_config(tmp_path))  # not prepared in data.path


def test_caption_folder_pairs_a_caption_with_the_embedding_row_of_its_line(tmp_path):
  keys, _, vectors = write_stackgan_folder(tmp_path, embeddings=True)
  caption_file = tmp_path / "text_c10" / "001.Albatross" / "Albatross_0001.txt"
  caption_file.write_text("first line\n\nthird line\n\u2603\nfifth line\n")  # an empty line, one that cleans away
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    source = data.make_source(folder_config(tmp_path, embedding_file="char-CNN-RNN-embeddings.pickle"))
  # Lines 0 and 2 have rows 0 and 2; line 4 is past image #0's 4 rows.
  assert source.captions(0) == ["first line", "third line"]
  np.testing.assert_array_equal(source[1]["embedding"], vectors[0, 2])
  table = source.caption_embeddings()
  np.testing.assert_array_equal(table[captions.caption_key("  Third   LINE ")], vectors[0, 2])
  assert captions.caption_key("fifth line") not in table
