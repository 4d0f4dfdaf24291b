"""Audio sources: spoken digits made by espeak-ng (offline), folders of WAV files, TFDS audio datasets.

Every source yields {"audio": f32[clip_length, channels] in [-1, 1], "label": int32} (the label where the
source has one), resampled to data.sample_rate, mixed down to mono, cut or zero-padded at the end.

Spoken digits (the offline default): "zero" ... "nine" said by the espeak-ng speech synthesiser with
varied voices, variants (male/female timbres), pitch, speed, amplitude and onset, 1 s at 16 kHz, made once
per (num_clips, synth_seed) into the data cache, deterministically, with progress shown.
"""
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile

import numpy as np

from gans import audio
from gans.data import folder
from gans.data.errors import DatasetNotFoundError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ESPEAK_INSTALL_HINT = ("The spoken-digits source synthesises its clips with espeak-ng, which is not installed: "
                       "`apt-get install espeak-ng` (Debian/Ubuntu), `brew install espeak-ng` (macOS), "
                       "or use a folder of WAV files (data.source='wav_folder', data.path=DIR).")
WAV_FOLDER_HINT = ("Set data.path to a folder (searched recursively) of .wav files; a word's class is its "
                   "parent folder's name (Speech Commands: zero/, one/, ...) or the file name's first '_' part "
                   "(SC09: Zero_0a2b400e_nohash_0.wav).")

# What the synthesiser varies per clip (espeak-ng's English voices that sound different from each other, its
# male and female variants, pitch 0-99, words per minute, loudness, onset within the clip).
SYNTH_RATE = 16_000
SYNTH_SECONDS = 1.0
VOICES = ("en", "en-us", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
PITCH_RANGE = (20, 80)
WORDS_PER_MINUTE_RANGE = (130, 230)
PEAK_RANGE = (0.25, 0.95)
SILENCE_THRESHOLD = 0.02  # of the clip's peak: leading and trailing synthesiser silence is trimmed below it


def espeak_binary() -> str:
  """The espeak-ng executable, or DatasetNotFoundError saying how to install it."""
  path = shutil.which("espeak-ng")
  if path is None:
    raise DatasetNotFoundError(ESPEAK_INSTALL_HINT)
  return path


def synth_settings(index: int, seed: int) -> dict:
  """The synthesiser's settings of clip `index`: a pure function of (seed, index); digit = index % 10."""
  rng = np.random.default_rng([seed, index])
  return dict(word=DIGIT_WORDS[index % 10], voice=str(rng.choice(VOICES)), variant=str(rng.choice(VARIANTS)),
              pitch=int(rng.integers(*PITCH_RANGE)), speed=int(rng.integers(*WORDS_PER_MINUTE_RANGE)),
              peak=float(rng.uniform(*PEAK_RANGE)), onset=float(rng.uniform()))


def synthesise(settings: dict, binary: str) -> np.ndarray:
  """One spoken word as float32 [SYNTH_RATE * SYNTH_SECONDS]: synthesised, trimmed, scaled to its peak, placed
  at a random onset among the positions where it fits."""
  with tempfile.TemporaryDirectory() as directory:
    path = os.path.join(directory, "word.wav")
    subprocess.run([binary, "-v", f"{settings['voice']}+{settings['variant']}", "-p", str(settings["pitch"]),
                    "-s", str(settings["speed"]), "-w", path, settings["word"]], check=True, capture_output=True)
    samples, rate = audio.read_wav(path)
  samples = audio.resample(samples, rate, SYNTH_RATE)[:, 0]
  loud = np.flatnonzero(np.abs(samples) > SILENCE_THRESHOLD * np.abs(samples).max())
  samples = samples[loud[0]:loud[-1] + 1] * (settings["peak"] / np.abs(samples).max())
  length = int(SYNTH_RATE * SYNTH_SECONDS)
  samples = samples[:length]
  start = int(settings["onset"] * (length - len(samples)))
  clip = np.zeros(length, np.float32)
  clip[start:start + len(samples)] = samples
  return clip


def spoken_digits_file(cache_dir: str, num_clips: int, seed: int) -> str:
  recipe = (f"spoken-digits-v1/{num_clips}/{seed}/{VOICES}/{VARIANTS}/{PITCH_RANGE}/{WORDS_PER_MINUTE_RANGE}/"
            f"{PEAK_RANGE}")
  return os.path.join(cache_dir, f"spoken_digits_{hashlib.sha256(recipe.encode()).hexdigest()[:24]}.npz")


def spoken_digits(cache_dir: str, num_clips: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(int16 [num_clips, 16000] at 16 kHz, labels int32 [num_clips]), synthesised on first use and cached."""
  from gans.metrics.progress import Progress  # pylint: disable=import-outside-toplevel
  path = spoken_digits_file(cache_dir, num_clips, seed)
  if not os.path.exists(path):
    binary = espeak_binary()
    clips = np.zeros((num_clips, int(SYNTH_RATE * SYNTH_SECONDS)), np.int16)
    logging.info("Synthesising %d spoken digits with espeak-ng into %s (once)", num_clips, path)
    with Progress(num_clips, "Synthesising spoken digits") as progress:
      for index in range(num_clips):
        clips[index] = np.rint(synthesise(synth_settings(index, seed), binary) * 32767.0).astype(np.int16)
        progress.update(1)
    os.makedirs(cache_dir, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "wb") as file:
      np.savez(file, clips=clips, labels=np.arange(num_clips, dtype=np.int32) % 10)
    os.replace(temporary, path)  # a concurrent reader never sees half a file
  with np.load(path) as archive:
    return archive["clips"], archive["labels"]


class ArrayAudioSource:
  """source[i] -> {"audio": f32[length, channels], "label": int32} from int16 clips held in memory."""

  def __init__(self, clips_NT: np.ndarray, labels_N: np.ndarray | None, rate: int, **clip_options):
    self._clips_NT = clips_NT
    self._labels_N = labels_N
    self._rate = rate
    self._clip_options = clip_options  # sample_rate, length, channels

  def __len__(self) -> int:
    return len(self._clips_NT)

  def __getitem__(self, index: int) -> dict:
    clip = self._clips_NT[index].astype(np.float32)[:, None] / 32768.0
    element = {"audio": audio.model_clip(clip, self._rate, **self._clip_options)}
    if self._labels_N is not None:
      element["label"] = np.int32(self._labels_N[index])
    return element


def spoken_digits_source(cache_dir: str, num_clips: int, seed: int, **clip_options) -> ArrayAudioSource:
  clips, labels = spoken_digits(cache_dir, num_clips, seed)
  return ArrayAudioSource(clips, labels, SYNTH_RATE, **clip_options)


# ----------------------------------------------------------------------------- WAV folders

def word_of(relative_path: str) -> str:
  """A clip's word: its parent folder (Speech Commands), else the file name before the first '_' (SC09)."""
  parent = os.path.basename(os.path.dirname(relative_path))
  return (parent or os.path.basename(relative_path).split("_")[0]).lower()


def wav_names(root: str) -> list[str]:
  return folder.files_under(root, (".wav",))


class WavFolderSource:
  """source[i] -> {"audio", "label" (when `words` is given)}, or None for a file that cannot be read (warned
  once per path, then skipped by the pipeline)."""

  def __init__(self, path: str, words: tuple[str, ...] = (), **clip_options):
    if not path or not os.path.isdir(path):
      raise DatasetNotFoundError(f"No folder of WAV files at {path!r}. {WAV_FOLDER_HINT}")
    names = wav_names(path)
    self._words = tuple(w.lower() for w in words)
    if self._words:  # keep the chosen words (SC09: the ten digits of Speech Commands), labelled by position
      names = [name for name in names if word_of(name) in self._words]
    if not names:
      chosen = f" of the words {', '.join(self._words)}" if self._words else ""
      raise DatasetNotFoundError(f"No .wav files{chosen} in {path!r}. {WAV_FOLDER_HINT}")
    self._path = path
    self._names = names
    self._clip_options = clip_options
    self._reported = set()

  def __len__(self) -> int:
    return len(self._names)

  def file_path(self, index: int) -> str:
    return os.path.join(self._path, self._names[index])

  def __getitem__(self, index: int) -> dict | None:
    try:
      samples, rate = audio.read_wav(self.file_path(index))
    except audio.UnreadableAudioError as error:
      folder.warn_once(self._reported, self.file_path(index), f"Skipping unreadable audio file: {error}")
      return None
    element = {"audio": audio.model_clip(samples, rate, **self._clip_options)}
    if self._words:
      element["label"] = np.int32(self._words.index(word_of(self._names[index])))
    return element

  def __repr__(self) -> str:
    return f"WavFolderSource({self._path!r}, {len(self)} files)"


# ----------------------------------------------------------------------------- TFDS

class TfdsAudioSource:
  """A TFDS audio dataset through tfds.data_source (e.g. speech_commands), optionally kept to some words.

  TFDS's speech_commands labels only ten command words and files every other word, the digits included, as
  "_unknown_": SC09 cannot be selected from it by label, so the sc09 experiments read the Speech Commands
  release as a WAV folder. Words that are labels (speech_commands: yes, no, up, ...) are selected here.
  """

  def __init__(self, data_source, label_names: list[str], words: tuple[str, ...], rate: int, **clip_options):
    self._data_source = data_source
    self._rate = rate
    self._clip_options = clip_options
    self._words = tuple(w.lower() for w in words)
    if self._words:
      missing = [w for w in self._words if w not in label_names]
      if missing:
        raise ValueError(f"The TFDS dataset has no label {', '.join(missing)} (its labels: {', '.join(label_names)}); "
                         f"for SC09 read the Speech Commands release as a folder: {WAV_FOLDER_HINT}")
      wanted = {label_names.index(w): position for position, w in enumerate(self._words)}
      keep = [(i, wanted[int(example["label"])]) for i, example in enumerate(data_source)
              if int(example["label"]) in wanted]
      self._indices = np.array([i for i, _ in keep], np.int64)
      self._labels = np.array([label for _, label in keep], np.int32)
    else:
      self._indices, self._labels = np.arange(len(data_source)), None

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index: int) -> dict:
    example = self._data_source[int(self._indices[index])]
    samples = np.asarray(example["audio"])
    samples = samples[:, None] if samples.ndim == 1 else samples
    scale = float(-np.iinfo(samples.dtype).min) if np.issubdtype(samples.dtype, np.integer) else 1.0
    element = {"audio": audio.model_clip(samples.astype(np.float32) / scale, self._rate, **self._clip_options)}
    if self._labels is not None:
      element["label"] = self._labels[index]
    elif "label" in example:
      element["label"] = np.int32(example["label"])
    return element


def tfds_audio_source(name: str, split: str, data_dir: str, words: tuple[str, ...], **clip_options):
  from gans.data import tfds_source  # pylint: disable=import-outside-toplevel
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  data_source = tfds_source.open_tfds(name, split, data_dir or None)
  info = tfds.builder(name, data_dir=data_dir or None).info
  label_names = list(info.features["label"].names) if "label" in info.features else []
  rate = int(getattr(info.features["audio"], "sample_rate", None) or 16_000)
  return TfdsAudioSource(data_source, label_names, words, rate, **clip_options)
