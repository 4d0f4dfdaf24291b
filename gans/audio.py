"""Audio: WAV files, resampling, the short-time Fourier transform, SpecGAN's normalisation, Griffin-Lim.

Audio in this project is float32 [T, C] per clip ([N, T, C] per batch) in
[-1, 1]. WAV files are read with scipy.io.wavfile (any PCM width or float) and
written as 16-bit PCM with the stdlib `wave` module.

SpecGAN (Donahue et al. 2019, sec. 3 and its released code) represents a clip
by the log magnitude of its STFT (Hann window of 16 ms, hop of half a
window, frames to the end of the clip, the Nyquist bin dropped: 128 frames x
128 bins for 16384 samples at 16 kHz), each frequency bin normalised by the
training set's mean and standard deviation, clipped to 3 standard deviations
and scaled to [-1, 1]. It inverts spectrograms with Griffin-Lim (16 iterations).
The transforms below are jnp functions (jit-able, differentiable).
"""
import io
import math
import os
import wave

import jax
import jax.numpy as jnp
import numpy as np

LOG_EPSILON = 1e-6  # log(|X| + eps), as SpecGAN's code
CLIP_STDS = 3.0  # normalised spectrograms are clipped to +-3 standard deviations, then divided by 3


# ----------------------------------------------------------------------------- WAV files

class UnreadableAudioError(ValueError):
  """A file that is not a readable WAV file."""


def _write_pcm16(file, audio_TC: np.ndarray, sample_rate: int) -> None:
  audio_TC = np.asarray(audio_TC, np.float32)
  audio_TC = audio_TC[:, None] if audio_TC.ndim == 1 else audio_TC
  pcm = np.clip(np.rint(np.clip(audio_TC, -1.0, 1.0) * 32767.0), -32768, 32767).astype("<i2")
  with wave.open(file, "wb") as writer:
    writer.setnchannels(audio_TC.shape[1])
    writer.setsampwidth(2)
    writer.setframerate(int(sample_rate))
    writer.writeframes(pcm.tobytes())


def write_wav(path: str, audio_TC: np.ndarray, sample_rate: int) -> None:
  """Writes float audio [T] or [T, C] in [-1, 1] (clipped) as 16-bit PCM."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as file:
    _write_pcm16(file, audio_TC, sample_rate)


def wav_bytes(audio_TC: np.ndarray, sample_rate: int) -> bytes:
  """The bytes of the WAV file `write_wav` would write."""
  buffer = io.BytesIO()
  _write_pcm16(buffer, audio_TC, sample_rate)
  return buffer.getvalue()


def read_wav(path: str) -> tuple[np.ndarray, int]:
  """(float32 [T, C] in [-1, 1], sample rate) of a WAV file of any PCM width or float; UnreadableAudioError
  for anything else."""
  import scipy.io.wavfile  # pylint: disable=import-outside-toplevel  (only file sources need it)
  try:
    rate, samples = scipy.io.wavfile.read(path)
  except (ValueError, OSError, EOFError, IndexError) as error:  # scipy raises these for non-WAV data
    raise UnreadableAudioError(f"{path}: not a readable WAV file ({error})") from error
  samples = samples[:, None] if samples.ndim == 1 else samples
  if samples.dtype == np.uint8:  # 8-bit WAV is unsigned
    audio = (samples.astype(np.float32) - 128.0) / 128.0
  elif np.issubdtype(samples.dtype, np.integer):
    audio = samples.astype(np.float32) / float(-np.iinfo(samples.dtype).min)
  else:
    audio = samples.astype(np.float32)
  return audio, int(rate)


def resample(audio_TC: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
  """Polyphase resampling (scipy's resample_poly, its Kaiser-windowed anti-aliasing filter) along time."""
  if from_rate == to_rate:
    return audio_TC
  import scipy.signal  # pylint: disable=import-outside-toplevel
  divisor = math.gcd(int(from_rate), int(to_rate))
  return scipy.signal.resample_poly(audio_TC, to_rate // divisor, from_rate // divisor, axis=0).astype(np.float32)


def model_clip(audio_TC: np.ndarray, rate: int, *, sample_rate: int, length: int, channels: int = 1) -> np.ndarray:
  """Any clip -> float32 [length, channels] in [-1, 1]: resampled, mixed down to mono (or the mono copied
  into `channels`), cut or zero-padded at the end."""
  audio = resample(np.asarray(audio_TC, np.float32), rate, sample_rate)
  if audio.shape[1] != channels:
    audio = np.repeat(audio.mean(axis=1, keepdims=True), channels, axis=1)
  audio = audio[:length]
  audio = np.pad(audio, ((0, length - len(audio)), (0, 0)))
  return np.clip(audio, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- STFT

def window_for(sample_rate: int, milliseconds: float = 16.0) -> int:
  """SpecGAN's 16 ms analysis window in samples (256 at 16 kHz), a power of two for the FFT."""
  return 2 ** int(round(math.log2(sample_rate * milliseconds / 1000.0)))


def hann(window: int) -> jax.Array:
  """The periodic Hann window (tf.signal.hann_window's default): its half-overlapped copies sum to one."""
  return 0.5 - 0.5 * jnp.cos(2.0 * jnp.pi * jnp.arange(window) / window)


def num_frames(length: int, hop: int) -> int:
  """Frames of a clip padded at its end (TensorFlow's pad_end=True): ceil(length / hop)."""
  return -(-length // hop)


def _frame_indices(frames: int, window: int, hop: int) -> np.ndarray:
  return np.arange(frames)[:, None] * hop + np.arange(window)[None, :]


def stft(audio_NT: jax.Array, window: int, hop: int) -> jax.Array:
  """Complex STFT [N, frames, window // 2 + 1] with a periodic Hann window, the clip zero-padded at its end."""
  length = audio_NT.shape[-1]
  frames = num_frames(length, hop)
  padded = jnp.pad(audio_NT, ((0, 0), (0, (frames - 1) * hop + window - length)))
  return jnp.fft.rfft(padded[:, _frame_indices(frames, window, hop)] * hann(window), axis=-1)


def istft(spectrum: jax.Array, window: int, hop: int, length: int) -> jax.Array:
  """Inverse of `stft`: windowed overlap-add divided by the overlapped squared windows -> [N, length]."""
  frames = spectrum.shape[1]
  weighted = jnp.fft.irfft(spectrum, n=window, axis=-1) * hann(window)
  indices = _frame_indices(frames, window, hop).reshape(-1)
  total = (frames - 1) * hop + window
  audio = jnp.zeros((spectrum.shape[0], total), weighted.dtype).at[:, indices].add(
      weighted.reshape(spectrum.shape[0], -1))
  norm = jnp.zeros((total,), weighted.dtype).at[indices].add(jnp.tile(jnp.square(hann(window)), frames))
  return (audio / jnp.maximum(norm, 1e-8))[:, :length]


def log_magnitude(audio_NT: jax.Array, window: int, hop: int) -> jax.Array:
  """SpecGAN's features: log(|STFT| + 1e-6) without the Nyquist bin, [N, frames, window // 2]."""
  return jnp.log(jnp.abs(stft(audio_NT, window, hop))[..., :-1] + LOG_EPSILON)


def griffin_lim(magnitude: jax.Array, window: int, hop: int, length: int, iterations: int = 16,
                key: jax.Array | None = None) -> jax.Array:
  """Audio [N, length] whose STFT magnitude approaches `magnitude` [N, frames, window // 2 + 1] (Griffin &
  Lim 1984): alternate projections, starting from random phases (zero phases when key is None)."""
  if key is None:
    phase = jnp.ones(magnitude.shape, jnp.complex64)
  else:
    phase = jnp.exp(2j * jnp.pi * jax.random.uniform(key, magnitude.shape)).astype(jnp.complex64)

  def project(_, phase):
    spectrum = stft(istft(magnitude * phase, window, hop, length), window, hop)
    return spectrum / jnp.maximum(jnp.abs(spectrum), 1e-8)

  phase = jax.lax.fori_loop(0, iterations, project, phase)
  return istft(magnitude * phase, window, hop, length)


# ----------------------------------------------------------------------------- SpecGAN's normalisation

def spectrogram_moments(log_magnitudes: np.ndarray) -> dict:
  """Per-frequency-bin mean and standard deviation over clips and frames of [N, frames, bins]."""
  values = np.asarray(log_magnitudes, np.float64).reshape(-1, log_magnitudes.shape[-1])
  return {"mean": values.mean(axis=0).astype(np.float32), "std": values.std(axis=0).astype(np.float32)}


def normalise(log_magnitude_NFB: jax.Array, moments: dict) -> jax.Array:
  """(x - mean) / std per bin, clipped to +-3 std, divided by 3: [-1, 1]."""
  z = (log_magnitude_NFB - moments["mean"]) / jnp.maximum(moments["std"], 1e-8)
  return jnp.clip(z, -CLIP_STDS, CLIP_STDS) / CLIP_STDS


def denormalise(normalised_NFB: jax.Array, moments: dict) -> jax.Array:
  """The log magnitude a normalised spectrogram stands for (exact inside the +-3 std clip)."""
  return normalised_NFB * CLIP_STDS * moments["std"] + moments["mean"]


def spectrogram_to_audio(normalised_NFB: jax.Array, moments: dict, window: int, hop: int, length: int,
                         iterations: int = 16) -> jax.Array:
  """A normalised spectrogram [N, frames, window // 2] -> audio [N, length] by Griffin-Lim, the Nyquist bin
  zero, clipped to [-1, 1]."""
  magnitude = jnp.maximum(jnp.exp(denormalise(normalised_NFB, moments)) - LOG_EPSILON, 0.0)
  magnitude = jnp.pad(magnitude, ((0, 0), (0, 0), (0, 1)))
  return jnp.clip(griffin_lim(magnitude, window, hop, length, iterations), -1.0, 1.0)


# ----------------------------------------------------------------------------- pictures

def spectrogram_pictures(audio_NTC: np.ndarray, sample_rate: int, dynamic_range: float = 80.0) -> np.ndarray:
  """Log spectrograms of the first channel as images [N, bins, frames, 1] in [-1, 1]: low frequencies at the
  bottom, time left to right, the loudest bin of each clip white, `dynamic_range` dB below it black."""
  window = window_for(sample_rate)
  magnitude = np.abs(np.asarray(stft(jnp.asarray(audio_NTC[..., 0]), window, window // 2)))[..., :-1]
  decibels = 20.0 * np.log10(magnitude + 1e-8)
  decibels -= decibels.max(axis=(1, 2), keepdims=True)
  images = np.clip(decibels / dynamic_range + 1.0, 0.0, 1.0) * 2.0 - 1.0
  return images.transpose(0, 2, 1)[:, ::-1, :, None]
