"""Tests of gans.data: every source's element format and the pipeline's guarantees."""
import gzip
import json
import os
import struct
import warnings
import zipfile

import ml_collections
import numpy as np
import pytest
from PIL import Image

from gans import data
from gans.data import images

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def data_config(**fields) -> ml_collections.ConfigDict:
  config = data.default_config()
  config.update(fields)
  config.read_threads = 0  # deterministic warning capture; the threads change no batch
  return config


class IndexSource:
  """Element i is {"index": i}: lets a test see exactly which elements a pipeline read."""

  def __init__(self, size):
    self._size = size

  def __len__(self):
    return self._size

  def __getitem__(self, index):
    return {"index": np.int64(index)}


def write_idx(path, array, compress):
  codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int16): 0x0B}
  header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
  with open(path, "wb") as file:
    file.write(gzip.compress(payload) if compress else payload)


def write_gray_png(path, level, size=(6, 6)):
  Image.new("L", size, color=level).save(path)


def first_batches(config, count, **iterator_args):
  iterator = data.make_iterator(config, **iterator_args)
  batches = [next(iterator) for _ in range(count)]
  iterator.close()
  return batches


def assert_batches_equal(expected, actual):
  assert len(expected) == len(actual)
  for expected_batch, actual_batch in zip(expected, actual):
    assert expected_batch.keys() == actual_batch.keys()
    for key in expected_batch:
      np.testing.assert_array_equal(expected_batch[key], actual_batch[key])


# 2D mixtures ----------------------------------------------------------------


def test_ring8_has_eight_distinct_unit_circle_modes_at_multiples_of_45_degrees():
  means, std = data.mixture_modes("ring8")
  assert means.shape == (8, 2) and means.dtype == np.float32
  assert len(np.unique(np.round(means, 6), axis=0)) == 8
  np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1.0, atol=1e-6)
  angles = np.sort(np.mod(np.arctan2(means[:, 1], means[:, 0]), 2 * np.pi))
  np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-6)
  assert std == 0.01


def test_grid25_modes_are_the_5x5_grid_with_spacing_2():
  means, std = data.mixture_modes("grid25")
  expected = {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
  assert {tuple(m) for m in means.astype(int).tolist()} == expected
  assert len(means) == 25 and std == 0.05


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_samples_cover_every_mode_and_stay_within_5_std(name):
  means, std = data.mixture_modes(name)
  points = data.make_source(data_config(source=name, size=5000)).read_batch(np.arange(5000))["x"]
  distances = np.linalg.norm(points[:, None, :] - means[None], axis=-1)
  assert distances.min(axis=1).max() < 5 * std
  counts = np.bincount(distances.argmin(axis=1), minlength=len(means))
  expected = len(points) / len(means)
  assert counts.min() > 0.7 * expected and counts.max() < 1.3 * expected
  # Per-axis spread around the nearest mode is the configured std.
  offsets = points - means[distances.argmin(axis=1)]
  np.testing.assert_allclose(offsets.std(axis=0), std, rtol=0.05)


def test_mixture_sample_depends_only_on_seed_and_index():
  source = data.make_source(data_config(source="ring8", size=100, mixture_seed=3))
  batch = source.read_batch([42, 7, 42])["x"]
  np.testing.assert_array_equal(batch[0], batch[2])
  np.testing.assert_array_equal(source[7]["x"], batch[1])
  assert source[7]["x"].shape == (2,) and source[7]["x"].dtype == np.float32
  other_seed = data.make_source(data_config(source="ring8", size=100, mixture_seed=4))
  assert not np.array_equal(other_seed[7]["x"], source[7]["x"])


def test_unknown_names_fail_listing_the_valid_ones():
  with pytest.raises(ValueError, match="grid25.*ring8"):
    data.mixture_modes("ring7")
  with pytest.raises(ValueError, match="digits.*folder"):
    data.make_source(data_config(source="cifar"))


# Image sources --------------------------------------------------------------


def test_digits_come_out_at_the_configured_resolution_and_channels_in_signed_unit_range():
  source = data.make_source(data_config(source="digits", resolution=16, channels=3))
  assert len(source) == 1797
  element = source[0]
  assert element["image"].shape == (16, 16, 3) and element["image"].dtype == np.float32
  assert element["label"].dtype == np.int32 and element["label"] == 0  # sklearn's first digit is a 0
  np.testing.assert_array_equal(element["image"][..., 0], element["image"][..., 2])  # grey to RGB
  batch = first_batches(data_config(source="digits", resolution=16, channels=3), 1, batch_size=256, seed=0)[0]
  assert batch["image"].min() == -1.0 and batch["image"].max() == 1.0
  assert set(batch["label"].tolist()) == set(range(10))


def test_digits_at_native_resolution_keep_sklearn_pixel_values():
  import sklearn.datasets  # pylint: disable=import-outside-toplevel
  expected = sklearn.datasets.load_digits().images[5] / 16.0 * 2.0 - 1.0
  image = data.make_source(data_config(source="digits", resolution=8, channels=1))[5]["image"]
  np.testing.assert_allclose(image[..., 0], expected, atol=0.5 / 127.5)  # uint8 rounding only


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_idx_files_round_trip_exact_pixels_and_labels(tmp_path, compress):
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, size=(5, 6, 6), dtype=np.uint8)
  labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
  suffix = ".gz" if compress else ""
  write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", pixels, compress)
  write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
  np.testing.assert_array_equal(data.read_idx(str(tmp_path / f"t10k-images-idx3-ubyte{suffix}")), pixels)
  source = data.make_source(data_config(source="idx", path=str(tmp_path), split="test", resolution=6))
  assert len(source) == 5
  for index in range(5):
    np.testing.assert_array_equal(source[index]["image"][..., 0], pixels[index].astype(np.float32) / 127.5 - 1)
    assert source[index]["label"] == labels[index]


def test_idx_reads_multibyte_big_endian_and_rejects_a_truncated_file(tmp_path):
  values = np.array([[-300, 2], [1000, -1]], dtype=np.int16)
  write_idx(tmp_path / "values.idx", values, compress=False)
  np.testing.assert_array_equal(data.read_idx(str(tmp_path / "values.idx")), values)
  raw = (tmp_path / "values.idx").read_bytes()
  with pytest.raises(ValueError, match="needs 8"):
    data.parse_idx(raw[:-1])


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST), reason="apt-get install dataset-fashion-mnist to run")
def test_fashion_mnist_package_reads_with_published_statistics():
  train = data.make_source(data_config(source="idx", path=FASHION_MNIST, split="train", resolution=28))
  test = data.make_source(data_config(source="idx", path=FASHION_MNIST, split="test", resolution=28))
  assert (len(train), len(test)) == (60000, 10000)
  assert train[0]["image"].shape == (28, 28, 1)
  labels = data.read_idx(os.path.join(FASHION_MNIST, "train-labels-idx1-ubyte.gz"))
  np.testing.assert_array_equal(np.bincount(labels), [6000] * 10)  # balanced: 6000 per class
  assert [int(train[i]["label"]) for i in range(5)] == labels[:5].tolist() == [9, 0, 0, 3, 0]
  # The commonly used normalisation constant: training pixel mean 0.2860 of [0, 1].
  pixels = data.read_idx(os.path.join(FASHION_MNIST, "train-images-idx3-ubyte.gz"))
  assert abs(pixels.mean() / 255 - 0.2860) < 5e-4
  np.testing.assert_array_equal(train[0]["image"][..., 0], pixels[0].astype(np.float32) / 127.5 - 1)


def test_central_square_and_resize():
  # A 12x8 image whose central 8x8 is black and whose 2-pixel margins are white.
  pixels = np.full((8, 12), 255, dtype=np.uint8)
  pixels[:, 2:10] = 0
  image = images.model_image(Image.fromarray(pixels), resolution=4, channels=3)
  assert image.shape == (4, 4, 3)
  np.testing.assert_array_equal(image, -1.0)
  cropped = images.model_image(Image.fromarray(pixels), resolution=4, channels=1, center_crop=4)
  np.testing.assert_array_equal(cropped, -1.0)
  with pytest.raises(ValueError, match="exceeds"):
    images.model_image(Image.fromarray(pixels), resolution=4, channels=1, center_crop=9)


def make_folder_with_one_corrupt_image(root):
  levels = [0, 50, 100, 150, 200]
  os.makedirs(root / "sub")
  for i, level in enumerate(levels):
    write_gray_png(root / ("sub" if i % 2 else "") / f"{i:05d}.png", level, size=(8, 6))
  (root / "00002_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
  (root / "notes.txt").write_text("not an image")
  return levels


def gray_levels(batches):
  return [int(round((v + 1) * 127.5)) for b in batches for v in b["image"][:, 0, 0, 0]]


def test_folder_skips_a_corrupt_image_with_one_warning_naming_it(tmp_path):
  levels = make_folder_with_one_corrupt_image(tmp_path)
  config = data_config(source="folder", path=str(tmp_path), resolution=4, channels=1)
  assert len(data.make_source(config)) == 6  # five PNGs and the broken one; the .txt is not an image
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    batches = first_batches(config, 6, batch_size=3, seed=0)  # three epochs
  first_epoch = gray_levels(batches[:2])
  assert set(first_epoch) == set(levels)  # every good image; the bad one's slot went to a good one
  broken_path = str(tmp_path / "00002_broken.png")
  assert len([w for w in caught if broken_path in str(w.message)]) == 1


def test_zip_reads_like_the_folder_it_was_made_from(tmp_path):
  folder = tmp_path / "images"
  make_folder_with_one_corrupt_image(folder)
  archive = tmp_path / "images.zip"
  with zipfile.ZipFile(archive, "w") as zipped:
    for directory, _, files in os.walk(folder):
      for name in files:
        zipped.write(os.path.join(directory, name), os.path.relpath(os.path.join(directory, name), folder))
  from_folder = data.make_source(data_config(source="folder", path=str(folder), resolution=4, channels=3))
  from_zip = data.make_source(data_config(source="folder", path=str(archive), resolution=4, channels=3))
  assert len(from_zip) == len(from_folder) == 6
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pairs = [(from_folder[i], from_zip[i]) for i in range(6)]
  unreadable = [expected is None for expected, _ in pairs]
  assert unreadable == [actual is None for _, actual in pairs] and sum(unreadable) == 1
  for expected, actual in pairs:
    if expected is not None:
      np.testing.assert_array_equal(expected["image"], actual["image"])
  assert any(os.path.join(str(archive), "00002_broken.png") in str(w.message) for w in caught)


def test_all_corrupt_folder_fails_instead_of_spinning(tmp_path):
  (tmp_path / "a.png").write_bytes(b"garbage")
  config = data_config(source="folder", path=str(tmp_path), resolution=4)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with pytest.raises(ValueError, match="unreadable"):
      first_batches(config, 1, batch_size=2, seed=0)


# TFDS -----------------------------------------------------------------------


def test_tfds_mock_mnist_maps_to_images_and_int32_labels(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  config = data_config(source="tfds", name="mnist", path=str(tmp_path), resolution=32, channels=3)
  with tfds.testing.mock_data(num_examples=6):
    source = data.make_source(config)
    assert len(source) == 6
    batch = first_batches(config, 1, batch_size=4, seed=0)[0]
  assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.float32
  assert batch["image"].min() >= -1 and batch["image"].max() <= 1
  assert batch["label"].dtype == np.int32 and set(batch["label"].tolist()) <= set(range(10))


def test_tfds_celeb_a_has_no_label_and_is_cropped_to_a_square(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  config = data_config(source="tfds", name="celeb_a", path=str(tmp_path), resolution=64, channels=3,
                       center_crop=108)
  with tfds.testing.mock_data(num_examples=2):
    element = data.make_source(config)[1]
  assert set(element) == {"image"} and element["image"].shape == (64, 64, 3)


def test_tfds_element_mapping_uses_the_configured_keys():
  example = {"img": np.full((10, 6, 1), 255, np.uint8), "cls": np.int64(7), "other": "ignored"}
  element = data.tfds_source.tfds_element(example, image_key="img", label_key="cls", resolution=4, channels=1)
  np.testing.assert_array_equal(element["image"], np.ones((4, 4, 1), np.float32))
  assert element["label"] == 7 and element["label"].dtype == np.int32
  with pytest.raises(KeyError, match="image_key"):
    data.tfds_source.tfds_element(example, image_key="image", label_key="", resolution=4, channels=1)


def test_unprepared_tfds_dataset_says_how_to_prepare_it(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(data.DatasetNotFoundError) as raised:
    data.make_source(data_config(source="tfds", name="mnist", path=str(tmp_path)))
  message = str(raised.value)
  assert str(tmp_path) in message and "tfds build mnist" in message and "array_record" in message


# Missing data ---------------------------------------------------------------


@pytest.mark.parametrize("source, hint", [("idx", "apt-get install dataset-fashion-mnist"), ("folder", "FFHQ")])
def test_missing_path_raises_dataset_not_found_naming_path_and_hint(tmp_path, source, hint):
  missing = str(tmp_path / "nowhere")
  with pytest.raises(data.DatasetNotFoundError) as raised:
    data.make_source(data_config(source=source, path=missing))
  assert isinstance(raised.value, FileNotFoundError)
  assert missing in str(raised.value) and hint in str(raised.value)


def test_folder_without_images_or_a_file_that_is_no_zip_is_not_found(tmp_path):
  (tmp_path / "readme.txt").write_text("no images here")
  with pytest.raises(data.DatasetNotFoundError, match="No images"):
    data.make_source(data_config(source="folder", path=str(tmp_path)))
  write_gray_png(tmp_path / "one.png", 0)
  with pytest.raises(data.DatasetNotFoundError, match="one.png"):
    data.make_source(data_config(source="folder", path=str(tmp_path / "one.png")))


# Pipeline -------------------------------------------------------------------


@pytest.mark.parametrize("source", ["ring8", "digits"])
def test_set_state_resumes_exactly_after_a_json_round_trip(source):
  config = data_config(source=source, size=50, resolution=8)
  iterator = data.make_iterator(config, batch_size=16, seed=5)
  for _ in range(4):  # crosses an epoch boundary for the 50-point mixture
    next(iterator)
  state = json.loads(json.dumps(iterator.get_state()))
  expected = [next(iterator) for _ in range(3)]
  iterator.close()
  resumed = data.make_iterator(config, batch_size=16, seed=5)
  resumed.set_state(state)
  assert_batches_equal(expected, [next(resumed) for _ in range(3)])
  resumed.close()


def test_set_state_refuses_a_state_from_another_pipeline():
  config = data_config(source="ring8", size=50)
  saved = data.make_iterator(config, batch_size=8, seed=0)
  next(saved)
  other = data.make_iterator(config, batch_size=16, seed=0)
  with pytest.raises(ValueError, match=r"differs in \['batch_size'\]"):
    other.set_state(saved.get_state())
  saved.close()
  other.close()


def test_iteration_is_determined_by_the_seed():
  config = data_config(source="digits", resolution=8)
  first, again = (first_batches(config, 2, batch_size=8, seed=1) for _ in range(2))
  assert_batches_equal(first, again)
  other_seed = first_batches(config, 2, batch_size=8, seed=2)
  assert not np.array_equal(first[0]["image"], other_seed[0]["image"])


def epoch_of(source, shard_index, shard_count, batch_size, seed, epochs=1):
  batches = data.ShuffledBatches(source, batch_size=batch_size, seed=seed, shard_index=shard_index,
                                 shard_count=shard_count)
  batches_per_epoch = batches.epoch_length * epochs // batch_size
  return np.concatenate([batches[b]["index"] for b in range(batches_per_epoch)])


def test_two_shards_are_disjoint_and_together_cover_an_epoch():
  source = IndexSource(24)
  shard0, shard1 = (epoch_of(source, s, 2, batch_size=4, seed=9) for s in (0, 1))
  assert len(shard0) == len(shard1) == 12
  assert not set(shard0) & set(shard1)
  assert sorted(np.concatenate([shard0, shard1])) == list(range(24))


def test_every_epoch_is_a_new_permutation_and_uneven_shards_stay_equal_length():
  source = IndexSource(13)
  two_epochs = epoch_of(source, 0, 1, batch_size=13, seed=0, epochs=2)
  first, second = two_epochs[:13], two_epochs[13:]
  assert sorted(first) == sorted(second) == list(range(13))
  assert not np.array_equal(first, second)
  # 13 elements over 2 shards: 6 each per epoch, so both shards count epochs alike.
  assert [len(epoch_of(source, s, 2, batch_size=6, seed=0)) for s in (0, 1)] == [6, 6]


def test_the_grain_iterator_yields_the_shuffled_batches_in_order():
  source = IndexSource(10)
  expected = [data.ShuffledBatches(source, batch_size=4, seed=3)[b]["index"] for b in range(5)]
  iterator = iter(data.batched_dataset(source, batch_size=4, seed=3, read_threads=2))
  assert [next(iterator)["index"].tolist() for _ in range(5)] == [e.tolist() for e in expected]
  assert all(len(e) == 4 for e in expected)  # batches straddle epochs: never a short batch
  iterator.close()


def test_workers_need_parsed_flags():
  from absl import flags  # pylint: disable=import-outside-toplevel
  if flags.FLAGS.is_parsed():
    pytest.skip("absl flags were parsed by another test; the guard cannot be observed")
  with pytest.raises(RuntimeError, match="absl"):
    data.make_iterator(data_config(source="ring8", num_workers=1), batch_size=2, seed=0)


def test_worker_processes_yield_the_same_batches_and_resume_exactly():
  from absl import flags  # pylint: disable=import-outside-toplevel
  was_parsed = flags.FLAGS.is_parsed()
  flags.FLAGS.mark_as_parsed()  # grain's workers read absl flags, as they do under launch.py
  try:
    in_process = first_batches(data_config(source="ring8", size=40), 5, batch_size=8, seed=2)
    config = data_config(source="ring8", size=40, num_workers=1)
    iterator = data.make_iterator(config, batch_size=8, seed=2)
    from_worker = [next(iterator) for _ in range(2)]
    state = json.loads(json.dumps(iterator.get_state()))
    from_worker += [next(iterator) for _ in range(3)]
    iterator.close()
    assert_batches_equal(in_process, from_worker)
    resumed = data.make_iterator(config, batch_size=8, seed=2)
    resumed.set_state(state)
    assert_batches_equal(in_process[2:], [next(resumed) for _ in range(3)])
    resumed.close()
  finally:
    if not was_parsed:
      flags.FLAGS.unparse_flags()


def test_mirror_doubles_the_set_with_flipped_images_and_resumes_exactly(tmp_path):
  levels = make_folder_with_one_corrupt_image(tmp_path)
  config = data_config(source="folder", path=str(tmp_path), resolution=4, channels=1, mirror=True)
  source, mirrored = data.make_source(config), data.pipeline.training_source(config)
  assert len(mirrored) == 2 * len(source) == 2 * (len(levels) + 1)
  for index in range(len(source)):
    plain, flipped = source[index], mirrored[index + len(source)]
    if plain is None:  # the corrupt file stays unreadable in both halves
      assert flipped is None and mirrored[index] is None
      continue
    np.testing.assert_array_equal(mirrored[index]["image"], plain["image"])
    np.testing.assert_array_equal(flipped["image"], plain["image"][:, ::-1])
  # Resumed from a saved state, the mirrored stream goes on exactly; a plain run's state is refused.
  iterator = data.make_iterator(config, batch_size=4, seed=2)
  for _ in range(3):
    next(iterator)
  state = json.loads(json.dumps(iterator.get_state()))
  expected = [next(iterator) for _ in range(4)]
  iterator.close()
  resumed = data.make_iterator(config, batch_size=4, seed=2)
  resumed.set_state(state)
  assert_batches_equal(expected, [next(resumed) for _ in range(4)])
  resumed.close()
  plain_config = data_config(source="folder", path=str(tmp_path), resolution=4, channels=1)
  plain = data.make_iterator(plain_config, batch_size=4, seed=2)
  with pytest.raises(ValueError, match="mirror"):
    plain.set_state(state)
  plain.close()
  with pytest.raises(ValueError, match="has none"):
    data.pipeline.training_source(data_config(source="ring8", mirror=True))


def test_limit_keeps_the_first_elements_of_any_source():
  for source in ("digits", "ring8"):
    config = data_config(source=source, size=50, resolution=8, limit=20)
    limited, full = data.pipeline.training_source(config), data.make_source(config)
    assert len(limited) == 20
    key = "image" if source == "digits" else "x"
    np.testing.assert_array_equal(limited[19][key], full[19][key])
    with pytest.raises(IndexError):
      limited[20]
    iterator = data.make_iterator(config, batch_size=40, seed=0)  # two epochs of the 20 in one batch
    values = next(iterator)[key].reshape(40, -1)
    iterator.close()
    assert len(np.unique(values, axis=0)) == 20
