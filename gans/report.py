"""What a run leaves in its workdir: metrics.jsonl, eval.jsonl, TensorBoard events, sample grids, progress.

Only process 0 writes; every method is a no-op elsewhere, so callers need not check.
"""
import json
import logging
import os
import time

import jax
import numpy as np
from PIL import Image


def image_grid(images_NHWC: np.ndarray, columns: int | None = None) -> np.ndarray:
  """Tiles images in [-1, 1] into one uint8 HWC grid with a 1-pixel border."""
  n, h, w, c = images_NHWC.shape
  columns = columns or int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / columns))
  grid = np.zeros((rows * (h + 1) + 1, columns * (w + 1) + 1, c), np.uint8)
  pixels = np.clip(np.rint((images_NHWC + 1.0) * 127.5), 0, 255).astype(np.uint8)
  for index in range(n):
    row, column = divmod(index, columns)
    grid[1 + row * (h + 1):1 + row * (h + 1) + h, 1 + column * (w + 1):1 + column * (w + 1) + w] = pixels[index]
  return grid[..., 0] if c == 1 else grid


def scatter_plot(points: np.ndarray, reference: np.ndarray | None = None, size: int = 256,
                 extent: float | None = None) -> np.ndarray:
  """Rasterises 2D points (black) over optional reference points (red) into a uint8 RGB image."""
  canvas = np.full((size, size, 3), 255, np.uint8)
  all_points = points if reference is None else np.concatenate([points, reference])
  extent = extent or 1.2 * float(np.max(np.abs(all_points))) or 1.0

  def plot(p, color, radius):
    pixels = np.rint((p / extent + 1.0) * 0.5 * (size - 1)).astype(int)
    for dx in range(-radius, radius + 1):
      for dy in range(-radius, radius + 1):
        x, y = pixels[:, 0] + dx, size - 1 - (pixels[:, 1] + dy)
        inside = (x >= 0) & (x < size) & (y >= 0) & (y < size)
        canvas[y[inside], x[inside]] = color

  plot(points, (0, 0, 0), 0)
  if reference is not None:
    plot(reference, (220, 30, 30), 2)
  return canvas


def to_picture(samples: np.ndarray, reference: np.ndarray | None = None, sample_rate: int = 16_000) -> np.ndarray:
  """A uint8 picture of a batch of samples: a grid for images and for voxels (rendered views), spectrograms
  for audio [N, T, C], a scatter plot for 2D points."""
  if samples.ndim == 5:
    from gans import voxel_views  # pylint: disable=import-outside-toplevel  (scipy, only voxels need it)
    return image_grid(voxel_views.render_batch(samples))
  if samples.ndim == 4:
    return image_grid(samples)
  if samples.ndim == 3:
    from gans import audio  # pylint: disable=import-outside-toplevel  (jax-based STFT, only audio needs it)
    return image_grid(audio.spectrogram_pictures(samples, sample_rate))
  return scatter_plot(samples, reference)


AUDIO_FILES_PER_REPORT = 10  # WAV files (and TensorBoard clips) written per sample report


def write_wavs(directory: str, audio_NTC: np.ndarray, sample_rate: int) -> list[str]:
  """sample_000.wav, sample_001.wav, ... of audio [N, T, C] in [-1, 1] in `directory`; returns the paths."""
  from gans import audio  # pylint: disable=import-outside-toplevel
  paths = [os.path.join(directory, f"sample_{index:03d}.wav") for index in range(len(audio_NTC))]
  for path, clip in zip(paths, audio_NTC):
    audio.write_wav(path, clip, sample_rate)
  return paths


def save_png(path: str, picture: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(picture).save(path)


class Reporter:
  """Writes scalars, pictures and evaluation results, and logs a progress line with steps/s and ETA."""

  def __init__(self, workdir: str, total_steps: int, first_step: int = 0):
    self.workdir = workdir
    self.total_steps = total_steps
    self.active = jax.process_index() == 0
    self._writer = None
    self._last_time, self._last_step = time.time(), first_step
    if self.active:
      os.makedirs(workdir, exist_ok=True)
      from tensorboardX import SummaryWriter  # imported here: only process 0 writes events
      self._writer = SummaryWriter(workdir, flush_secs=30)

  def _append_jsonl(self, name: str, record: dict) -> None:
    with open(os.path.join(self.workdir, name), "a") as f:
      f.write(json.dumps(record) + "\n")

  def scalars(self, step: int, metrics: dict) -> None:
    if not self.active:
      return
    metrics = {name: float(value) for name, value in metrics.items()}
    self._append_jsonl("metrics.jsonl", {"step": step, **metrics})
    for name, value in metrics.items():
      self._writer.add_scalar(name, value, step)

  def evaluation(self, step: int, results: dict) -> None:
    if not self.active:
      return
    self._append_jsonl("eval.jsonl", {"step": step, **results})
    for name, value in results.items():
      if isinstance(value, (int, float)) and np.isfinite(value):
        self._writer.add_scalar(f"eval/{name}", value, step)

  def samples(self, step: int, picture: np.ndarray) -> str | None:
    if not self.active:
      return None
    path = os.path.join(self.workdir, "samples", f"step_{step:07d}.png")
    save_png(path, picture)
    self._writer.add_image("samples", picture if picture.ndim == 3 else picture[..., None], step,
                           dataformats="HWC")
    return path

  def audio(self, step: int, audio_NTC: np.ndarray, sample_rate: int) -> None:
    """The first AUDIO_FILES_PER_REPORT clips as samples/step_NNNNNNN/sample_XXX.wav and TensorBoard audio."""
    if not self.active:
      return
    from gans import audio  # pylint: disable=import-outside-toplevel
    from tensorboardX.proto.summary_pb2 import Summary  # pylint: disable=import-outside-toplevel
    clips = audio_NTC[:AUDIO_FILES_PER_REPORT]
    write_wavs(os.path.join(self.workdir, "samples", f"step_{step:07d}"), clips, sample_rate)
    # The WAV bytes go into the event directly: tensorboardX's add_audio would need the soundfile package.
    values = [Summary.Value(tag=f"samples/{index}", audio=Summary.Audio(
        sample_rate=float(sample_rate), num_channels=clip.shape[-1], length_frames=clip.shape[0],
        encoded_audio_string=audio.wav_bytes(clip, sample_rate), content_type="audio/wav"))
              for index, clip in enumerate(clips)]
    self._writer._get_file_writer().add_summary(Summary(value=values), step)  # pylint: disable=protected-access

  def progress(self, step: int, metrics: dict) -> None:
    now = time.time()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_time, self._last_step = now, step
    eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
    shown = " ".join(f"{name}={float(value):.4g}" for name, value in sorted(metrics.items()) if name.endswith("loss"))
    logging.info("step %d/%d (%.0f%%) | %.2f steps/s | ETA %s | %s", step, self.total_steps,
                 100.0 * step / self.total_steps, rate, _format_duration(eta), shown)

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


def _format_duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}"
