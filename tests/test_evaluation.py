"""Evaluation plumbing: periodic and --mode=eval results, shared samples, cached reference statistics, errors."""
import json
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

import experiments
from gans import data, evaluation, trainer
from gans.metrics import classifier, eval_config, extract, fid, frechet, reference
from gans.metrics.progress import Progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSIFIER_RESULTS = {"classifier_fid", "class_coverage", "class_kl"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  """A cache holding an untrained (numpy-initialised) digits classifier: the plumbing, not the training."""
  cache = str(tmp_path_factory.mktemp("cache"))
  variables = {"params": classifier.numpy_init(classifier.Classifier(10), (32, 32, 1), seed=0)}
  digits = ml_collections.ConfigDict({"source": "digits"})
  classifier.save(classifier.classifier_file(digits, cache), variables, heldout_accuracy=0.1)
  return cache


def tiny_digits_config(cache_dir: str, **train):
  config = experiments.get_config("dcgan_digits")
  with config.unlocked():
    config.model.update(g_channels=4, d_channels=4, z_dim=8)
    config.data.resolution = 8
    config.train.update(batch_size=8, log_every=1, sample_every=0, checkpoint_every=1, **train)
    config.eval.update(num_samples=40, batch_size=8, cache_dir=cache_dir)
  return config


def read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def test_training_evaluates_periodically_and_eval_mode_repeats_the_last_result(tmp_path, cache_dir):
  config = tiny_digits_config(cache_dir, steps=2, eval_every=1)
  assert tuple(config.eval.metrics) == eval_config.CLASSIFIER_METRICS
  trainer.train_and_evaluate(config, str(tmp_path))
  during = read_jsonl(tmp_path / "eval.jsonl")
  assert [line["step"] for line in during] == [1, 2]
  assert all(set(line) == {"step"} | CLASSIFIER_RESULTS for line in during)

  result = evaluation.evaluate_checkpoint(config, str(tmp_path))
  after = read_jsonl(tmp_path / "eval.jsonl")
  assert len(after) == 3 and after[2] == result
  # The same checkpoint on the same evaluation stream: the numbers the trainer reported at its last step.
  assert after[2] == during[1]
  assert 0.1 <= result["class_coverage"] <= 1.0 and result["classifier_fid"] > 0


def test_metrics_share_one_generation(cache_dir):
  config = tiny_digits_config(cache_dir)
  calls = []

  def generate(n):
    calls.append(n)
    return np.random.default_rng(len(calls)).uniform(-1, 1, (n, 8, 8, 1)).astype(np.float32)

  results = evaluation.evaluate(config, generate)
  assert calls == [40] and set(results) == CLASSIFIER_RESULTS


def test_class_coverage_of_one_repeated_sample_is_one_class(cache_dir):
  config = tiny_digits_config(cache_dir)
  one = np.random.default_rng(0).uniform(-1, 1, (1, 8, 8, 1)).astype(np.float32)
  results = evaluation.evaluate(config, lambda n: np.repeat(one, n, axis=0))
  assert results["class_coverage"] == 0.1 and results["class_kl"] == pytest.approx(np.log(10))


class CountingExtractor:
  """A FeatureExtractor stand-in that counts how often it is asked for features."""

  def __init__(self, batch_size=64):
    self.batch_size = batch_size
    self.calls = 0

  def __call__(self, batches):
    self.calls += 1
    images = np.concatenate(list(batches))
    return {"pool3": images.reshape(len(images), -1)[:, :16].astype(np.float64)}


def test_reference_statistics_are_computed_once_per_dataset_and_resolution(tmp_path):
  config = ml_collections.ConfigDict({"source": "digits", "resolution": 8, "channels": 1})
  extractor = CountingExtractor()
  first = reference.reference_statistics(config, extractor, "pool3", "net", str(tmp_path), num_reference=100)
  again = reference.reference_statistics(config, extractor, "pool3", "net", str(tmp_path), num_reference=100)
  assert extractor.calls == 1 and first["features"].shape == (100, 16)
  np.testing.assert_array_equal(first["sigma"], again["sigma"])
  config.resolution = 4
  reference.reference_statistics(config, extractor, "pool3", "net", str(tmp_path), num_reference=100)
  reference.reference_statistics(config, extractor, "pool3", "other net", str(tmp_path), num_reference=100)
  assert extractor.calls == 3


def test_reference_subset_is_fixed_and_in_source_order():
  subset = reference.reference_indices(1797, 100)
  np.testing.assert_array_equal(subset, reference.reference_indices(1797, 100))
  assert len(np.unique(subset)) == 100 and np.all(np.diff(subset) > 0)
  np.testing.assert_array_equal(reference.reference_indices(50, 0), np.arange(50))


def toy_inception(variables, images_NHWC):
  """A cheap stand-in for the FID Inception: 4x4 average-pooled pixels as "pool3", their first 10 as logits."""
  pooled = jax.image.resize(images_NHWC, (images_NHWC.shape[0], 4, 4, 3), "linear").reshape(-1, 48)
  features = pooled * variables["scale"]
  return {"pool3": features, "logits_unbiased": features[:, :10]}


def test_inception_metrics_compare_samples_with_the_data_source(tmp_path, monkeypatch):
  toy = extract.FeatureExtractor({"scale": np.float32(3.0)}, batch_size=40, mesh=fid.data_mesh(),
                                 forward=toy_inception)
  monkeypatch.setattr(evaluation, "_inception_extractor", lambda config, with_logits: (toy, "toy"))
  config = tiny_digits_config(str(tmp_path))
  stand_in_weights = tmp_path / "weights.npz"  # exists, so the weights check passes; the toy network is used
  stand_in_weights.write_bytes(b"")
  with config.unlocked():
    config.eval.update(metrics=("fid", "kid", "is", "precision_recall"), num_samples=80, num_reference=300,
                       kid_subsets=5, inception_weights=str(stand_in_weights))
  fake = np.random.default_rng(0).uniform(-1, 1, (80, 8, 8, 1)).astype(np.float32)
  results = evaluation.evaluate(config, lambda n: fake[:n])
  assert set(results) == {"fid", "kid", "kid_std", "is", "is_std", "precision", "recall"}

  # The FID the evaluator reports is the one of the data source's images, made RGB, against the samples'.
  source = data.make_source(config.data)
  real = np.stack([source[int(i)]["image"] for i in reference.reference_indices(len(source), 300)])
  features = lambda images: np.asarray(toy_inception({"scale": 3.0}, np.repeat(images, 3, axis=-1))["pool3"])
  expected = frechet.frechet_distance(*frechet.activation_statistics(features(real)),
                                      *frechet.activation_statistics(features(fake)))
  assert results["fid"] == pytest.approx(expected, rel=1e-6)
  assert results["precision"] < 0.5  # uniform noise lies mostly outside the digits' manifold


def test_missing_inception_weights_say_where_to_get_them_before_anything_is_restored(tmp_path):
  config = experiments.get_config("dcgan_mnist")
  assert set(config.eval.metrics) == {"fid", "kid"}
  with pytest.raises(evaluation.MissingInceptionWeightsError) as unset:
    evaluation.evaluate_checkpoint(config, str(tmp_path))  # no checkpoint there: the weights are checked first
  message = str(unset.value)
  assert "pt_inception-2015-12-05-6726825d.pth" in message and "github.com/mseitzer/pytorch-fid" in message
  assert "--config.eval.inception_weights=FILE" in message and "fid, kid" in message
  with config.unlocked():
    config.eval.inception_weights = str(tmp_path / "nowhere.pth")
  with pytest.raises(evaluation.MissingInceptionWeightsError, match="nowhere.pth' is not a file"):
    evaluation.evaluate(config, lambda n: None)


def test_unknown_metric_and_wrong_sample_shapes_are_refused(cache_dir):
  config = tiny_digits_config(cache_dir)
  with config.unlocked():
    config.eval.metrics = ("fdi",)
  with pytest.raises(ValueError, match="Unknown metric 'fdi'.*classifier_fid.*fid"):
    evaluation.evaluate(config, lambda n: None)
  with config.unlocked():
    config.eval.metrics = ("stacked_modes",)
  with pytest.raises(ValueError, match="stacked_modes needs images with one stacked grayscale image per channel"):
    evaluation.evaluate(config, lambda n: np.zeros((n, 8, 8, 1), np.float32))


def test_launch_eval_without_inception_weights_is_one_line(tmp_path):
  result = subprocess.run([sys.executable, os.path.join(ROOT, "launch.py"), "--experiment=dcgan_mnist",
                           "--mode=eval", f"--workdir={tmp_path}"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
  assert result.returncode != 0
  assert "pt_inception-2015-12-05-6726825d.pth" in result.stderr and "Traceback" not in result.stderr


def test_progress_off_a_terminal_logs_one_line_per_update_that_crosses_a_quarter(caplog):
  caplog.set_level("INFO")
  with Progress(100, "Counting", interactive=False) as progress:
    for count in (10, 20, 30, 40):  # 10, 30, 60, 100: crosses 1/4, then 1/2, then 3/4 and 4/4 at once
      progress.update(count)
  lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("Counting")]
  assert [line.split(" (")[0] for line in lines] == ["Counting: 30/100", "Counting: 60/100", "Counting: 100/100"]


def test_classifier_features_sharded_over_four_devices_equal_one_device(cache_dir):
  config = tiny_digits_config(cache_dir)
  variables, _, _ = classifier.cached_classifier(config.data, cache_dir)
  mesh = fid.data_mesh()
  assert mesh is not None and mesh.shape[extract.DATA_AXIS] == 4
  sharded = extract.FeatureExtractor(variables, batch_size=8, mesh=mesh, forward=classifier.outputs)
  images = np.random.default_rng(1).uniform(-1, 1, (21, 8, 8, 1)).astype(np.float32)  # 21: a padded last batch
  outputs = sharded(images)
  single = classifier.predict(variables, images)
  for name in ("features", "logits"):
    np.testing.assert_allclose(outputs[name], single[name], rtol=1e-5, atol=1e-5)
