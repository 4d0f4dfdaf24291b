"""The spoken-digit classifier of the audio experiments, and the paper's inception score from it.

WaveGAN's paper (Donahue et al. 2019, sec. 5.1) scores generated SC09 clips with an "inception score" computed
from a classifier of the ten digits trained on the real training clips, over 10 splits; the score of real
held-out clips is the ceiling. Here the classifier is the project's small CNN (gans/metrics/classifier.py,
the same recipe as the image classifier) on spectrogram features: each clip's log-magnitude spectrogram
(16 ms Hann window, hop of half a window), in dB below the clip's loudest bin, 80 dB of range mapped to
[-1, 1], resized to 32x32. It is trained once on a fixed random 4/5 of the clips, deterministically, and
cached with its held-out accuracy and the held-out clips' inception score.

Scores compare runs evaluated with the same classifier; they are not the paper's classifier's numbers.
"""
import hashlib
import logging
import os

import numpy as np

from gans import audio, data
from gans.data.config import field
from gans.metrics import classifier, inception_score

RECIPE = f"audio-digits-v3/heldout-random-fifth/spectrogram-dB80-32x32/{classifier.RECIPE}"
NUM_SPLITS = 10
HOLDOUT_FRACTION = 5  # one clip in five is held out
HOLDOUT_SEED = 0
_FEATURE_CHUNK = 256


def features(audio_NTC: np.ndarray, sample_rate: int) -> np.ndarray:
  """Clips [N, T, C] -> the classifier's inputs [N, 32, 32, 1] in [-1, 1]."""
  parts = [np.asarray(classifier.to_input(audio.spectrogram_pictures(audio_NTC[i:i + _FEATURE_CHUNK], sample_rate)))
           for i in range(0, len(audio_NTC), _FEATURE_CHUNK)]
  return np.concatenate(parts).astype(np.float32)


def read_clips(data_config) -> tuple[np.ndarray, np.ndarray]:
  """(clips [N, T, C], labels [N]) of the whole source; unreadable files skipped; labels required."""
  source = data.make_source(data_config)
  elements = [e for e in (source[i] for i in range(len(source))) if e is not None]
  if not elements or "label" not in elements[0]:
    raise ValueError(f"The audio inception score needs labelled clips (the spoken digits, or a WAV folder with "
                     f"data.words set); data source {field(data_config, 'source')!r} has none.")
  return (np.stack([e["audio"] for e in elements]).astype(np.float32),
          np.array([e["label"] for e in elements], np.int32))


def classifier_file(data_config, cache_dir: str) -> str:
  names = ("source", "path", "name", "split", "sample_rate", "clip_length", "words", "num_clips", "synth_seed")
  key = "\n".join([RECIPE] + [f"{n}={field(data_config, n)!r}" for n in names])
  return os.path.join(cache_dir, f"audio_classifier_{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz")


def train_for(data_config) -> dict:
  """{"variables", "heldout_accuracy", "real_is", "real_is_std"} of a freshly trained classifier."""
  clips, labels = read_clips(data_config)
  inputs = features(clips, field(data_config, "sample_rate"))
  # A fixed random fifth: every k-th clip would hold out only some digits of the spoken digits (label = i % 10).
  heldout = np.random.default_rng(HOLDOUT_SEED).permutation(len(inputs)) < len(inputs) // HOLDOUT_FRACTION
  num_classes = int(labels.max()) + 1
  logging.info("Training the spoken-digit classifier on %d clips; held out: %d", int((~heldout).sum()),
               int(heldout.sum()))
  variables = classifier.train(inputs[~heldout], labels[~heldout], num_classes)
  logits = classifier.predict(variables, inputs[heldout])["logits"]
  # The score's splits are contiguous: in source order (a folder sorted by word) each would hold few words.
  shuffled = logits[np.random.default_rng(HOLDOUT_SEED).permutation(len(logits))]
  real_is, real_is_std = inception_score.inception_score(shuffled, NUM_SPLITS)
  return {"variables": variables, "heldout_accuracy": float(np.mean(np.argmax(logits, 1) == labels[heldout])),
          "real_is": real_is, "real_is_std": real_is_std}


def cached(data_config, cache_dir: str) -> dict:
  """train_for(data_config), trained on first use and kept in cache_dir."""
  path = classifier_file(data_config, cache_dir)
  if not os.path.exists(path):
    result = train_for(data_config)
    classifier.write_archive(path, result["variables"],
                             **{k: np.float64(v) for k, v in result.items() if k != "variables"})
  variables, values = classifier.read_archive(path)
  return {"variables": variables, **{k: float(values[k]) for k in ("heldout_accuracy", "real_is", "real_is_std")}}


def evaluate(samples_NTC: np.ndarray, data_config, cache_dir: str) -> dict:
  """Inception score (10 splits) and label coverage of generated clips, beside the real held-out ceiling."""
  trained = cached(data_config, cache_dir)
  logits = classifier.predict(trained["variables"], features(samples_NTC, field(data_config, "sample_rate")))["logits"]
  score, score_std = inception_score.inception_score(logits, NUM_SPLITS)
  return {"inception_score": score, "inception_score_std": score_std, "real_inception_score": trained["real_is"],
          "real_inception_score_std": trained["real_is_std"], "classifier_accuracy": trained["heldout_accuracy"],
          **classifier.class_coverage(logits)}
