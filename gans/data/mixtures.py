"""2D Gaussian mixtures of the mode-collapse literature (VEEGAN, PacGAN).

The source is random access and stores nothing: sample i is a pure function of
(mixture_seed, i), so any index can be read by any worker, in any order, and
always reads the same point. Reads are vectorised (`read_batch`) because a 2D
GAN step is so cheap that per-point Python would dominate training time.
"""
import numpy as np

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's stream increment


def _ring8() -> tuple[np.ndarray, float]:
  # endpoint=False matters: linspace(0, 2pi, 8) repeats angle 0 as 2pi and
  # leaves only 7 distinct modes.
  angles = np.linspace(0.0, 2.0 * np.pi, 8, endpoint=False)
  return np.stack([np.cos(angles), np.sin(angles)], axis=-1), 0.01


def _grid25() -> tuple[np.ndarray, float]:
  coordinates = np.arange(-4.0, 5.0, 2.0)
  xs, ys = np.meshgrid(coordinates, coordinates, indexing="ij")
  return np.stack([xs.ravel(), ys.ravel()], axis=-1), 0.05


MIXTURES = {"ring8": _ring8, "grid25": _grid25}


def mixture_modes(name: str) -> tuple[np.ndarray, float]:
  """(means f32[K, 2], std) of the named mixture; every component has weight 1/K."""
  if name not in MIXTURES:
    raise ValueError(f"Unknown mixture {name!r}; valid names: {sorted(MIXTURES)}")
  means, std = MIXTURES[name]()
  return means.astype(np.float32), std


def _mix64(z: np.ndarray) -> np.ndarray:
  """SplitMix64's output function: a bijection of uint64 that scrambles every bit."""
  z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return z ^ (z >> np.uint64(31))


def counter_uniforms(seed: int, indices: np.ndarray, count: int) -> np.ndarray:
  """f64[len(indices), count] uniform in (0, 1), a pure function of (seed, index).

  Each index seeds its own SplitMix64 stream, so one point never depends on
  which other points are drawn with it.
  """
  with np.errstate(over="ignore"):  # uint64 arithmetic is meant to wrap
    keys = _mix64(_mix64(np.uint64(seed) + _GOLDEN_GAMMA) ^ np.asarray(indices, dtype=np.uint64))
    steps = np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN_GAMMA
    bits = _mix64(keys[:, None] + steps[None, :])
  # The top 53 bits fill a double's mantissa; +0.5 keeps 0 out, so log(u) is finite.
  return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


class MixtureSource:
  """Random-access samples of a 2D mixture: source[i] -> {"x": f32[2]}."""

  def __init__(self, name: str, *, size: int, mixture_seed: int = 0):
    self._name = name
    self._means, self._std = mixture_modes(name)
    self._size = size  # virtual length: only sets how long an "epoch" is
    self._mixture_seed = mixture_seed  # which of the infinitely many datasets of this mixture

  def __len__(self) -> int:
    return self._size

  def read_batch(self, indices) -> dict:
    """{"x": f32[len(indices), 2]}, row j equal to self[indices[j]]["x"]."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= self._size):
      raise IndexError(f"indices outside [0, {self._size}) for a mixture of size {self._size}")
    u_mode, u_radius, u_angle = counter_uniforms(self._mixture_seed, indices, 3).T
    modes = np.minimum((u_mode * len(self._means)).astype(np.int64), len(self._means) - 1)
    # Box-Muller: two independent standard normals from two uniforms.
    radius = np.sqrt(-2.0 * np.log(u_radius))
    normals = np.stack([radius * np.cos(2 * np.pi * u_angle), radius * np.sin(2 * np.pi * u_angle)], axis=-1)
    return {"x": (self._means[modes] + self._std * normals).astype(np.float32)}

  def __getitem__(self, index: int) -> dict:
    return {"x": self.read_batch([index])["x"][0]}

  def __repr__(self) -> str:
    return f"MixtureSource({self._name!r}, size={self._size}, mixture_seed={self._mixture_seed})"
