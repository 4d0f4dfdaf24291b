"""Inception Score against a direct evaluation of its definition and closed-form cases."""
import numpy as np
import pytest

from gans.metrics import inception_score


def _direct_score(probabilities):
  marginal = probabilities.mean(axis=0)
  kl = np.sum(probabilities * (np.log(probabilities) - np.log(marginal)), axis=1)
  return np.exp(kl.mean())


def test_matches_definition_per_split():
  rng = np.random.default_rng(0)
  logits = rng.standard_normal((53, 12)) * 3
  probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  bounds = [i * 53 // 5 for i in range(6)]  # uneven splits: 10, 11, 10, 11, 11
  scores = [_direct_score(probabilities[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
  mean, std = inception_score.inception_score(logits, num_splits=5)
  assert mean == pytest.approx(np.mean(scores), rel=1e-12)
  assert std == pytest.approx(np.std(scores), rel=1e-9)


def test_confident_and_diverse_classifier_scores_the_class_count():
  logits = 200.0 * np.tile(np.eye(8), (10, 1))  # every split holds each class equally often
  mean, std = inception_score.inception_score(logits, num_splits=10)
  assert mean == pytest.approx(8.0, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def test_uninformative_classifier_scores_one():
  mean, std = inception_score.inception_score(np.zeros((40, 1008)), num_splits=10)
  assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_needs_a_sample_per_split():
  with pytest.raises(ValueError, match="10 splits"):
    inception_score.inception_score(np.zeros((9, 5)), num_splits=10)
