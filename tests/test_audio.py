"""Audio: WAV files, sources and their bad inputs, STFT and SpecGAN's normalisation, Griffin-Lim, phase shuffle."""
import os
import shutil
import wave

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans import audio
from gans import data
from gans.data import audio as audio_data
from gans.variants import wavegan

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (apt-get install espeak-ng)")


# ----------------------------------------------------------------------------- WAV files and sources

def test_wav_written_and_read_back_equal(tmp_path):
  rng = np.random.default_rng(0)
  pcm = rng.integers(-32768, 32768, size=(300, 2)).astype(np.int16)
  clip = pcm.astype(np.float32) / 32767.0  # exactly the values write_wav stores as 16-bit PCM
  audio.write_wav(str(tmp_path / "a.wav"), clip, 22_050)
  read, rate = audio.read_wav(str(tmp_path / "a.wav"))
  assert rate == 22_050 and read.shape == (300, 2)
  np.testing.assert_array_equal(np.rint(read * 32768.0).astype(np.int16), pcm)
  with wave.open(str(tmp_path / "a.wav")) as file:  # a standard file any player reads
    assert (file.getnchannels(), file.getsampwidth(), file.getframerate()) == (2, 2, 22_050)


def test_model_clip_resamples_mixes_down_and_fits_the_length():
  rate, seconds = 44_100, 0.5
  t = np.arange(int(rate * seconds)) / rate
  tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
  stereo = np.stack([tone, 0.5 * tone], axis=1).astype(np.float32)
  clip = audio.model_clip(stereo, rate, sample_rate=16_000, length=16_384)
  assert clip.shape == (16_384, 1) and clip.dtype == np.float32
  assert np.all(clip[8_000:] == 0.0)  # 0.5 s = 8000 samples at 16 kHz, then zero padding
  expected = 0.375 * np.sin(2 * np.pi * 440.0 * np.arange(8_000) / 16_000)  # the mono mixdown's mean
  np.testing.assert_allclose(clip[100:7_900, 0], expected[100:7_900], atol=2e-3)
  long = audio.model_clip(np.ones((40_000, 1), np.float32), 16_000, sample_rate=16_000, length=1000)
  assert long.shape == (1000, 1) and np.all(long == 1.0)


def _folder_config(path, words=()):
  config = data.default_config()
  config.source, config.path, config.words = "wav_folder", str(path), tuple(words)
  config.sample_rate, config.clip_length = 8000, 4096
  return config


def test_wav_folder_labels_words_and_skips_unreadable_files(tmp_path):
  for word in ("zero", "one", "up"):
    audio.write_wav(str(tmp_path / word / "a.wav"), np.full((100, 1), 0.25), 16_000)
  (tmp_path / "one" / "broken.wav").write_bytes(b"RIFF but not really")
  source = data.make_source(_folder_config(tmp_path, ("zero", "one")))
  assert len(source) == 3  # up/ is not a chosen word
  elements = [source[i] for i in range(len(source))]
  broken = [e for e in elements if e is None]
  assert len(broken) == 1
  with pytest.warns(UserWarning, match=r"broken\.wav"):
    source2 = data.make_source(_folder_config(tmp_path, ("zero", "one")))
    [source2[i] for i in range(len(source2))]
  labels = sorted(int(e["label"]) for e in elements if e is not None)
  assert labels == [0, 1]
  good = next(e for e in elements if e is not None)
  assert good["audio"].shape == (4096, 1) and abs(float(good["audio"][10, 0]) - 0.25) < 1e-3


def test_sc09_file_names_give_the_word():
  assert audio_data.word_of("Zero_0a2b400e_nohash_0.wav") == "zero"
  assert audio_data.word_of("train/seven/0a2b400e_nohash_0.wav") == "seven"


def test_an_empty_or_missing_folder_is_an_error_naming_it(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(data.DatasetNotFoundError, match=r"No \.wav files in .*empty"):
    data.make_source(_folder_config(tmp_path / "empty"))
  with pytest.raises(data.DatasetNotFoundError, match="No folder of WAV files at .*missing"):
    data.make_source(_folder_config(tmp_path / "missing"))


def test_missing_espeak_says_how_to_install_it(monkeypatch, tmp_path):
  monkeypatch.setattr(shutil, "which", lambda name: None)
  with pytest.raises(data.DatasetNotFoundError, match="apt-get install espeak-ng"):
    audio_data.spoken_digits(str(tmp_path), 10, 0)


@needs_espeak
def test_spoken_digits_are_deterministic_labelled_and_cached(tmp_path):
  clips, labels = audio_data.spoken_digits(str(tmp_path / "a"), 12, seed=3)
  again, _ = audio_data.spoken_digits(str(tmp_path / "b"), 12, seed=3)
  assert clips.shape == (12, 16_000) and clips.dtype == np.int16
  np.testing.assert_array_equal(clips, again)
  np.testing.assert_array_equal(labels, np.arange(12) % 10)
  peaks = np.abs(clips).max(axis=1) / 32767.0
  assert np.all(peaks > 0.2) and len(np.unique(np.round(peaks, 3))) > 6  # each clip said, at varied loudness
  assert os.listdir(tmp_path / "a") == [os.path.basename(audio_data.spoken_digits_file(str(tmp_path / "a"), 12, 3))]
  config = data.default_config()
  config.source, config.cache_dir, config.num_clips, config.synth_seed = "spoken_digits", str(tmp_path / "a"), 12, 3
  config.sample_rate, config.clip_length = 8000, 8192
  element = data.make_source(config)[4]
  assert element["audio"].shape == (8192, 1) and int(element["label"]) == 4


# ----------------------------------------------------------------------------- STFT, normalisation, Griffin-Lim

def test_stft_round_trip_and_specgan_shape():
  x = jax.random.uniform(jax.random.key(0), (2, 16_384), minval=-1.0, maxval=1.0)
  spectrum = audio.stft(x, 256, 128)
  assert spectrum.shape == (2, 128, 129)  # 128 frames (padded at the end) of 129 bins
  # From the second hop on every sample is seen by two windows whose squares sum to >= 0.5; the first hop only
  # by the first window's rising edge (its first weight is 0: sample 0 cannot be recovered, as in TensorFlow).
  rebuilt = audio.istft(spectrum, 256, 128, 16_384)
  np.testing.assert_allclose(rebuilt[:, 128:], x[:, 128:], atol=1e-4)
  np.testing.assert_allclose(rebuilt[:, 32:128], x[:, 32:128], atol=1e-2)
  assert audio.log_magnitude(x, 256, 128).shape == (2, 128, 128)  # the Nyquist bin dropped


def test_normalisation_round_trip_clip_and_moments():
  rng = np.random.default_rng(0)
  log_magnitudes = rng.normal(loc=np.linspace(-3, 2, 8), scale=np.linspace(0.5, 2.0, 8), size=(50, 16, 8))
  moments = audio.spectrogram_moments(log_magnitudes)
  np.testing.assert_allclose(moments["mean"], log_magnitudes.reshape(-1, 8).mean(0), rtol=1e-5)
  np.testing.assert_allclose(moments["std"], log_magnitudes.reshape(-1, 8).std(0), rtol=1e-5)
  normalised = np.asarray(audio.normalise(jnp.asarray(log_magnitudes, jnp.float32), moments))
  assert normalised.min() >= -1.0 and normalised.max() <= 1.0
  z = (log_magnitudes - moments["mean"]) / moments["std"]
  inside = np.abs(z) < 3.0
  back = np.asarray(audio.denormalise(normalised, moments))
  np.testing.assert_allclose(back[inside], log_magnitudes[inside], atol=1e-4)
  np.testing.assert_allclose(normalised[~inside], np.sign(z[~inside]), atol=1e-6)  # clipped at 3 std -> +-1


def test_griffin_lim_recovers_a_tone():
  rate, length = 16_000, 16_384
  tone = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(length) / rate).astype(np.float32)
  magnitude = jnp.abs(audio.stft(jnp.asarray(tone)[None], 256, 128))
  rebuilt = audio.griffin_lim(magnitude, 256, 128, length, iterations=16)
  rebuilt_magnitude = jnp.abs(audio.stft(rebuilt, 256, 128))
  spectral_convergence = float(jnp.linalg.norm(rebuilt_magnitude - magnitude) / jnp.linalg.norm(magnitude))
  assert spectral_convergence < 0.05, spectral_convergence
  # A tone's phase is not determined by its magnitude, its loudness and pitch are: compare those.
  interior = np.asarray(rebuilt[0, 512:-512])
  np.testing.assert_allclose(np.sqrt(np.mean(interior ** 2)), 0.5 / np.sqrt(2), rtol=0.05)
  spectrum = np.abs(np.fft.rfft(np.asarray(rebuilt[0])))
  assert abs(np.argmax(spectrum) * rate / length - 1000.0) < 2.0


# ----------------------------------------------------------------------------- phase shuffle

def _reflected_roll(x_TC, k):
  """x shifted right by k samples, the samples shifted in taken from the mirror image at the border."""
  length = len(x_TC)
  indices = np.arange(length) - k
  indices = np.where(indices < 0, -indices, indices)
  indices = np.where(indices > length - 1, 2 * (length - 1) - indices, indices)
  return x_TC[indices]


def test_a_phase_shift_of_k_is_a_reflected_roll():
  x = np.asarray(jax.random.normal(jax.random.key(0), (5, 12, 3)))
  shifts = np.array([-2, -1, 0, 1, 2])
  shifted = np.asarray(wavegan.shift_with_reflection(jnp.asarray(x), jnp.asarray(shifts), 2))
  for example, k in enumerate(shifts):
    np.testing.assert_array_equal(shifted[example], _reflected_roll(x[example], k))
  np.testing.assert_array_equal(shifted[2], x[2])


def test_phase_shuffle_draws_per_example_shifts_and_n0_is_identity():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(64, 20, 2)), jnp.float32)
  np.testing.assert_array_equal(wavegan.phase_shuffle(x, jax.random.key(0), 0), x)
  shuffled = np.asarray(wavegan.phase_shuffle(x, jax.random.key(0), 2))
  found = set()
  for example in range(64):
    matches = [k for k in range(-2, 3) if np.array_equal(shuffled[example], _reflected_roll(np.asarray(x[example]), k))]
    assert len(matches) == 1
    found.add(matches[0])
  assert found == {-2, -1, 0, 1, 2}
