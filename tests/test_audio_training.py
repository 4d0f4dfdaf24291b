"""Audio runs end to end on a tiny WAV folder: WAV and spectrogram reports, --mode=sample, the inception score."""
import os

import jax
import numpy as np
import pytest

from gans import audio, sampling, trainer
from gans.metrics import audio_classifier, classifier
from test_training import (assert_four_devices_give_the_numbers_of_one, assert_resumed_equals_straight,
                           tiny_config, train_straight_and_resumed)

RATE = 8000
RUN_RATE, RUN_LENGTH = 4000, 1024  # the training tests' clips (_shortest_clips)
TONES_HZ = (300.0, 500.0, 800.0, 1200.0, 1800.0)  # one "word" per tone


def _tone(frequency: float, seconds: float, phase: float, rate: int = RATE) -> np.ndarray:
  return (0.5 * np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate + phase))[:, None]


def _tone_folder(root, clips_per_word: int) -> tuple[str, ...]:
  words = tuple(f"w{index}" for index in range(len(TONES_HZ)))
  rng = np.random.default_rng(0)
  for word, frequency in zip(words, TONES_HZ):
    for clip in range(clips_per_word):
      audio.write_wav(str(root / word / f"{clip}.wav"), _tone(frequency, 0.2, rng.uniform(0, 6)), RATE)
  return words


def _shortest_clips(config, n_critic: int):
  """The config on the shortest clips the networks take, 1024 samples at 4 kHz (WaveGAN: one sample after
  G's dense layer; SpecGAN: a 16 ms window of 64 samples, 32 frames x 32 bins; tiny_config's are 2048 at 8 kHz), with
  n_critic D updates per step instead of the experiments' 5: fewer updates to compile."""
  with config.unlocked():
    config.data.sample_rate, config.data.clip_length = RUN_RATE, RUN_LENGTH
    config.train.n_critic = n_critic
  return config


def _audio_config(name, root, words, **train):
  config = tiny_config(name, **train)
  with config.unlocked():
    config.data.path, config.data.words = str(root), words
    config.data.cache_dir = str(root / "cache")
    config.eval.metrics = ()
    config.train.num_grid_samples = 4
  return config


@pytest.mark.parametrize("name", ["wavegan_sc09", "specgan_sc09"])
def test_an_audio_run_reports_wavs_and_spectrograms_and_samples_to_wavs(tmp_path, name):
  words = _tone_folder(tmp_path / "data", clips_per_word=2)
  config = _shortest_clips(_audio_config(name, tmp_path / "data", words, steps=1, sample_every=1, log_every=1),
                           n_critic=1)
  if name == "specgan_sc09":
    with config.unlocked():
      config.model.moments_clips = 10  # from the folder, cached beside the data
  workdir = tmp_path / "run"
  trainer.train_and_evaluate(config, str(workdir))
  step_dir = workdir / "samples" / "step_0000001"
  assert sorted(os.listdir(step_dir)) == [f"sample_{i:03d}.wav" for i in range(4)]
  clip, rate = audio.read_wav(str(step_dir / "sample_000.wav"))
  assert rate == RUN_RATE and clip.shape == (RUN_LENGTH, 1)
  assert os.path.exists(workdir / "samples" / "step_0000001.png")
  path = sampling.write_samples(config, str(workdir), 3)
  samples = np.load(path)["samples"]
  assert samples.shape == (3, RUN_LENGTH, 1) and samples.min() >= -1 and samples.max() <= 1
  wavs = sorted(os.listdir(workdir / "sample_wavs"))
  assert wavs == ["sample_000.wav", "sample_001.wav", "sample_002.wav"]
  np.testing.assert_allclose(audio.read_wav(str(workdir / "sample_wavs" / wavs[2]))[0], samples[2], atol=1 / 32767)
  if name == "specgan_sc09":  # the moments are the data's and travel with the checkpoint
    moments = [f for f in os.listdir(tmp_path / "data" / "cache") if f.startswith("specgan_moments")]
    assert len(moments) == 1


def test_the_inception_score_of_real_clips_is_high_and_of_one_word_is_one(tmp_path, monkeypatch):
  monkeypatch.setattr(classifier, "MIN_STEPS", 100)  # five tones are learnt long before the default 300 steps
  words = _tone_folder(tmp_path / "data", clips_per_word=60)  # sorted by word, as SC09's folders
  config = _audio_config("wavegan_sc09", tmp_path / "data", words)
  clips = np.stack([audio.model_clip(_tone(TONES_HZ[i % 5], 0.2, 0.3 * i), RATE, sample_rate=RATE, length=2048)
                    for i in range(100)])
  results = audio_classifier.evaluate(clips, config.data, str(tmp_path / "cache"))
  assert results["classifier_accuracy"] == 1.0
  # Balanced, confidently classified clips of five words: 10 splits of 10 score near 5.
  assert results["inception_score"] > 4.5
  # 60 held-out clips, 10 splits of 6 drawn at random from the five words: about 3.5 (1.0 if the splits
  # followed the folder's order, one word each).
  assert results["real_inception_score"] > 2.5
  assert results["class_coverage"] == 1.0
  one_word = audio_classifier.evaluate(clips[::5], config.data, str(tmp_path / "cache"))
  assert one_word["inception_score"] < 1.1 and one_word["class_coverage"] == 0.2


def _well_conditioned_adam(config):
  """The config with Adam's epsilon at 1e-5 instead of 1e-8.

  WGAN-GP's D loss is linear in D's output, so the gradient of a unit of D's last conv whose LeakyReLU slopes
  are the same on every real, fake and interpolated example is exactly zero (the real and fake terms cancel,
  and the penalty does not depend on its bias). Summed in another order on 4 devices such a gradient comes
  out as one float32 ulp (~1e-8) instead of 0, and Adam's first update lr * g / (|g| + eps), whose slope at
  g = 0 is lr / eps = 1e4, turns that ulp into a parameter change of up to ~0.6 lr (5.4e-5 measured). At eps = 1e-5 the slope
  is 10 and the step is compared at the other variants' tolerance; gradients above 1e-5 still take Adam's
  full normalised step.
  """
  with config.unlocked():
    for group in ("d", "g"):
      config.optim[group].eps = 1e-5
  return config


@pytest.mark.parametrize("name", ["wavegan_digits", "specgan_digits"])  # WaveGAN with phase shuffle n = 2
def test_four_devices_give_the_numbers_of_one(name):
  config = _well_conditioned_adam(_shortest_clips(tiny_config(name), n_critic=1))
  if name == "wavegan_digits":
    assert config.model.phase_shuffle == 2  # the experiment's; with 0 the step agreed before the fix too
  _, state_4 = assert_four_devices_give_the_numbers_of_one(config)
  assert len(jax.tree.leaves(state_4.params)[0].sharding.device_set) == 4


@pytest.mark.parametrize("name", ["wavegan_sc09", "specgan_sc09"])
def test_resume_equals_uninterrupted(tmp_path, name):
  words = _tone_folder(tmp_path / "data", clips_per_word=2)
  # Two D updates per step: a resumed step must also read the critic's further batches where it left off.
  config = _shortest_clips(_audio_config(name, tmp_path / "data", words, steps=2, checkpoint_every=1,
                                        log_every=1, sample_every=0), n_critic=2)
  assert_resumed_equals_straight(config, *train_straight_and_resumed(config, str(tmp_path / "runs"), stop_at=1))
