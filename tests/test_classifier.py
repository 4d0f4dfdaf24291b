"""The project's domain classifier: trained on digits it classifies, separates real from noise, counts classes."""
import ml_collections
import numpy as np
import pytest

from gans.metrics import classifier, frechet

# Logistic regression on the raw 8x8 pixels reaches 0.958 on this held-out split (every 5th digit; sklearn
# LogisticRegression(max_iter=5000)). A CNN that does not beat a linear model is broken.
LINEAR_BASELINE_ACCURACY = 0.958
DIGITS = ml_collections.ConfigDict({"source": "digits", "resolution": 32, "channels": 1})


@pytest.fixture(scope="module")
def digits():
  return classifier.train_and_heldout(DIGITS)


@pytest.fixture(scope="module")
def trained(digits):
  (train_images, train_labels), _ = digits
  return classifier.train(train_images, train_labels, num_classes=10)


def test_digits_are_split_into_disjoint_train_and_heldout_sets(digits):
  (train_images, train_labels), (heldout_images, heldout_labels) = digits
  assert (len(train_images), len(heldout_images)) == (1437, 360)
  assert train_images.shape[1:] == (classifier.RESOLUTION, classifier.RESOLUTION, 1)
  assert set(np.unique(heldout_labels)) == set(range(10))
  # No held-out image also appears among the training images.
  train_rows = {image.tobytes() for image in train_images}
  assert sum(image.tobytes() in train_rows for image in heldout_images) <= 2  # the set holds a few duplicates


def test_heldout_accuracy_beats_a_linear_model_on_raw_pixels(digits, trained):
  _, (heldout_images, heldout_labels) = digits
  assert classifier.accuracy(trained, heldout_images, heldout_labels) > LINEAR_BASELINE_ACCURACY


def test_classifier_fid_is_small_between_real_sets_and_large_against_noise(digits, trained):
  (train_images, _), (heldout_images, _) = digits
  noise = np.random.default_rng(0).uniform(-1, 1, heldout_images.shape).astype(np.float32)

  def stats(images):
    return frechet.activation_statistics(classifier.predict(trained, images)["features"])

  real_vs_real = frechet.frechet_distance(*stats(train_images), *stats(heldout_images))
  real_vs_noise = frechet.frechet_distance(*stats(train_images), *stats(noise))
  assert real_vs_real < 0.05 * real_vs_noise, (real_vs_real, real_vs_noise)


def test_class_coverage_of_real_digits_and_of_one_repeated_image(digits, trained):
  _, (heldout_images, _) = digits
  real = classifier.class_coverage(classifier.predict(trained, heldout_images)["logits"])
  # Every class is predicted, and the histogram is near uniform (collapse onto one class is log 10 = 2.3).
  assert real["class_coverage"] == 1.0 and real["class_kl"] < 0.05
  repeated = np.repeat(heldout_images[:1], 50, axis=0)
  single = classifier.class_coverage(classifier.predict(trained, repeated)["logits"])
  assert single == {"class_coverage": 0.1, "class_kl": pytest.approx(np.log(10))}


def test_other_sizes_and_rgb_reach_the_network_as_32x32_grayscale(digits, trained):
  _, (heldout_images, heldout_labels) = digits
  rgb = np.repeat(heldout_images, 3, axis=-1)  # luma of equal channels is the channel
  np.testing.assert_allclose(np.asarray(classifier.to_input(rgb)), heldout_images, atol=1e-6)
  assert classifier.to_input(np.zeros((2, 8, 8, 1))).shape == (2, 32, 32, 1)
  assert classifier.accuracy(trained, rgb, heldout_labels) == classifier.accuracy(trained, heldout_images,
                                                                                  heldout_labels)


def test_stacked_digits_count_as_modes_of_the_channel_classes(digits, trained):
  _, (heldout_images, heldout_labels) = digits
  rng = np.random.default_rng(0)
  triples = rng.choice(len(heldout_images), (300, 3))
  stacked = np.concatenate([heldout_images[triples[:, c]] for c in range(3)], axis=-1)
  logits = classifier.predict_stacked(trained, stacked)["logits"]
  assert logits.shape == (300, 3, 10)
  predicted = classifier.stacked_modes(logits)["stacked_modes"]
  expected = len({tuple(t) for t in heldout_labels[triples]})
  assert abs(predicted - expected) <= 0.05 * expected  # misclassified channels move a few samples elsewhere


def test_stacked_modes_and_kl_of_constructed_predictions():
  eye = np.eye(10)
  one_mode = np.broadcast_to(eye[[1, 2, 3]], (40, 3, 10))
  assert classifier.stacked_modes(one_mode) == {"stacked_modes": 1, "stacked_kl": pytest.approx(np.log(1000))}
  every_mode = eye[np.stack(np.unravel_index(np.arange(1000), (10, 10, 10)), axis=1)]
  assert classifier.stacked_modes(every_mode) == {"stacked_modes": 1000, "stacked_kl": pytest.approx(0.0, abs=1e-12)}


def test_kl_to_uniform_of_an_uneven_histogram():
  p = np.array([0.5, 0.25, 0.25])
  assert classifier.kl_to_uniform(np.array([2, 1, 1, 0])) == pytest.approx(float(np.sum(p * np.log(p * 4))))


def test_saved_classifier_loads_to_the_same_predictions(tmp_path, digits, trained):
  _, (heldout_images, _) = digits
  path = str(tmp_path / "classifier.npz")
  classifier.save(path, trained, heldout_accuracy=0.5)
  variables, heldout_accuracy = classifier.load(path)
  assert heldout_accuracy == 0.5
  np.testing.assert_array_equal(classifier.predict(variables, heldout_images[:20])["logits"],
                                classifier.predict(trained, heldout_images[:20])["logits"])


def test_the_cache_key_follows_the_dataset_not_the_experiments_resolution(tmp_path):
  at_8 = ml_collections.ConfigDict({"source": "digits", "resolution": 8, "channels": 3})
  fashion = ml_collections.ConfigDict({"source": "idx", "path": "/usr/share/datasets/fashion-mnist"})
  assert classifier.classifier_file(DIGITS, str(tmp_path)) == classifier.classifier_file(at_8, str(tmp_path))
  assert classifier.classifier_file(DIGITS, str(tmp_path)) != classifier.classifier_file(fashion, str(tmp_path))


def test_unlabelled_data_is_refused_with_the_alternative(tmp_path):
  from PIL import Image
  for index in range(3):
    Image.fromarray(np.full((8, 8), 40 * index, np.uint8)).save(tmp_path / f"{index}.png")
  folder = ml_collections.ConfigDict({"source": "folder", "path": str(tmp_path)})
  with pytest.raises(ValueError, match="need class labels.*Inception"):
    classifier.train_and_heldout(folder)
