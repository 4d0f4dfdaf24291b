"""C++ kernels for XLA:CPU, as FFI custom calls, where XLA's own lowering is slow; `lax` everywhere else.

Five kernels so far (kernels.cc). Four for the 3D-GAN's layers (gans/layers3d.py): `conv_kernel_grad`, the
kernel gradient of a stride-1 3D convolution, which XLA:CPU runs as a convolution behind untiled transposes of
both operands; `space_to_depth_padded`, which XLA:CPU runs as a loop with index arithmetic per element;
`conv3d_stride2`, the strided conv's forward read in place, without the space-to-depth and depth-tap copies of
XLA's form; and `conv_transpose3d_stride2`, the transposed conv by output phases, without the sub-voxel conv's
border, depth-tap copies and depth-to-space (README, 3D-GAN). One for every Winograd conv (gans/winograd.py):
`winograd_tiles`, the tiles' transform in one pass, which XLA:CPU writes as two concatenation loops. Each has
derivatives of its own (`with_lax_derivatives`: a second-order gradient, e.g. a gradient penalty through a
layer, differentiates the `lax` form).

The source is compiled on first use with the machine's C++ compiler ($CXX, else g++; -O3 -march=native) against
the FFI headers jaxlib ships, and cached in $XDG_CACHE_HOME/gans/cpu_kernels (~/.cache/gans/cpu_kernels) under
a name that hashes the source, the flags, jaxlib's version and the CPU, so a new machine or version rebuilds
it (about 2 s). Without a compiler, or if the build fails, the first call logs why and `available()` is False:
callers keep their `lax` forms.
"""
import ctypes
import functools
import hashlib
import logging
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
from typing import Callable, Optional

import jax
import jaxlib
import numpy as np
from jax import lax

_SOURCE = pathlib.Path(__file__).with_name("kernels.cc")
_TARGETS = ("gans_conv_kernel_grad", "gans_space_to_depth_padded", "gans_conv3d_stride2",
            "gans_conv_transpose3d_stride2", "gans_winograd_tiles")
_FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w")
# The kernel gradient's vector side has channels in multiples of this (one AVX-512 register of floats).
VECTOR_CHANNELS = 16


def _cpu_identity() -> str:
  try:
    flags = [line for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")]
  except OSError:
    flags = []
  return platform.machine() + (flags[0] if flags else platform.processor())


def _library_path(compiler: str) -> pathlib.Path:
  key = hashlib.sha256("\n".join([_SOURCE.read_text(), compiler, " ".join(_FLAGS), jaxlib.__version__,
                                  _cpu_identity()]).encode()).hexdigest()[:16]
  cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "gans" / "cpu_kernels"
  return cache / f"{_SOURCE.stem}-{key}.so"


def _build(compiler: str, library: pathlib.Path) -> None:
  """Compiles into a temporary file and renames it, so that concurrent first uses (pytest -n) never load a
  half-written library."""
  library.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=library.parent, suffix=".so", delete=False) as tmp:
    pass
  try:
    subprocess.run([compiler, *_FLAGS, f"-I{jax.ffi.include_dir()}", str(_SOURCE), "-o", tmp.name],
                   check=True, capture_output=True, text=True)
    os.replace(tmp.name, library)
  finally:
    if os.path.exists(tmp.name):
      os.remove(tmp.name)


@functools.cache
def _library() -> Optional[ctypes.CDLL]:
  """Builds (once per machine and version), loads and registers the kernels; None, logged, if that fails."""
  compiler = shutil.which(os.environ.get("CXX", "g++"))
  if compiler is None:
    logging.warning("gans.cpu_kernels: no C++ compiler (set $CXX or install g++); XLA's own forms are used, "
                    "slower on the CPU.")
    return None
  library = _library_path(compiler)
  try:
    if not library.exists():
      _build(compiler, library)
    handle = ctypes.cdll.LoadLibrary(str(library))
    for target in _TARGETS:
      jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(handle, target)), platform="cpu")
  except (OSError, subprocess.CalledProcessError) as error:
    detail = getattr(error, "stderr", "") or error
    logging.warning("gans.cpu_kernels: building %s failed; XLA's own forms are used, slower on the CPU:\n%s",
                    _SOURCE, detail)
    return None
  return handle


def available() -> bool:
  """Whether the kernels are built, loaded and registered (the first call builds them)."""
  return _library() is not None


def vector_lanes() -> int:
  """Floats per vector register the kernels were built for: 16 with AVX-512, 8 with AVX, else 4; 0 unbuilt."""
  return _library().gans_vector_lanes() if available() else 0


def conv_kernel_grad_lax(x_padded: jax.Array, y_grad: jax.Array) -> jax.Array:
  """kernel[a, b, c, i, o] = sum over n, d, h, w of x[n, d + a, h + b, w + c, i] y_grad[n, d, h, w, o]: the
  kernel gradient of the stride-1 VALID 3D conv of x_padded (NDHWC), as XLA's convolution with the batch as
  contracted channels."""
  kernel = lax.conv_general_dilated(x_padded.transpose(4, 1, 2, 3, 0), y_grad.transpose(1, 2, 3, 0, 4),
                                    (1, 1, 1), "VALID", dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
                                    precision=lax.Precision.HIGHEST)
  return kernel.transpose(1, 2, 3, 0, 4)


def with_lax_derivatives(kernel: Callable, lax_form: Callable) -> Callable:
  """`kernel` (an FFI call) whose VJP is `lax_form`'s: the value from C++, the derivatives from XLA."""
  function = jax.custom_vjp(kernel)
  function.defvjp(lambda *args: (kernel(*args), args),
                  lambda args, cotangent: jax.vjp(lax_form, *args)[1](cotangent))
  return function


def _runs_here(*arrays) -> bool:
  return (jax.default_backend() == "cpu" and all(a.dtype == jax.numpy.float32 for a in arrays) and available())


def conv_kernel_grad_applies(x_padded: jax.Array, y_grad: jax.Array) -> bool:
  """Whether `conv_kernel_grad` runs here: float32 on the CPU backend, the kernels built, and one operand's
  channels a multiple of VECTOR_CHANNELS."""
  return (any(c % VECTOR_CHANNELS == 0 for c in (x_padded.shape[-1], y_grad.shape[-1]))
          and _runs_here(x_padded, y_grad))


def _ffi_call(target: str, result: jax.ShapeDtypeStruct) -> Callable:
  if not available():  # also registers the targets before their first use
    raise RuntimeError(f"gans.cpu_kernels could not be built (logged above), so {target} cannot run; check "
                       "`*_applies` before calling.")
  return jax.ffi.ffi_call(target, result, vmap_method="broadcast_all")


def _conv_kernel_grad(x_padded: jax.Array, y_grad: jax.Array) -> jax.Array:
  c_in, c_out = x_padded.shape[-1], y_grad.shape[-1]
  taps = tuple(x - y + 1 for x, y in zip(x_padded.shape[1:4], y_grad.shape[1:4]))
  # The wider side in the vector registers (measured faster: 160x5x5x256 against 160x6x6x128, 13.8 against
  # 18.9 ms on one core); the other when the wider is not a multiple of 16.
  vectors_from_x = c_in % VECTOR_CHANNELS == 0 and (c_in > c_out or c_out % VECTOR_CHANNELS != 0)
  call = _ffi_call("gans_conv_kernel_grad", jax.ShapeDtypeStruct(taps + (c_in, c_out), jax.numpy.float32))
  return call(x_padded, y_grad, vectors_from_x=bool(vectors_from_x))


# `conv_kernel_grad_lax` by the C++ kernel (where `conv_kernel_grad_applies`), both operands read in place.
conv_kernel_grad = with_lax_derivatives(_conv_kernel_grad, conv_kernel_grad_lax)


def space_to_depth_padded_applies(x: jax.Array) -> bool:
  """Whether `space_to_depth_padded` runs here: float32 NDHWC with even D, H, W and at least VECTOR_CHANNELS
  channels on the CPU, the kernels built. (One-core timings, the copy alone: (32, 16, 16, 16, 16) 2.5 ms against
  XLA's 9.2, (32, 8, 8, 8, 32) 0.42 against 2.9, but (32, 32, 32, 32, 1) 5.8 against 1.3.)"""
  return (x.ndim == 5 and not any(side % 2 for side in x.shape[1:4]) and x.shape[-1] >= VECTOR_CHANNELS
          and _runs_here(x))


def space_to_depth_padded(x: jax.Array, lax_form: Callable) -> jax.Array:
  """(N, 2D, 2H, 2W, C) padded by one zero voxel on every side, then a 2x2x2 space-to-depth (channels ordered
  (depth offset, row offset, column offset, c)): (N, D + 1, H + 1, W + 1, 8C) by the C++ kernel (where
  `space_to_depth_padded_applies`), with the derivatives of `lax_form`, the same map in lax."""
  return with_lax_derivatives(_space_to_depth_padded, lax_form)(x)


def _space_to_depth_padded(x: jax.Array) -> jax.Array:
  n, d, h, w, c = x.shape
  return _ffi_call("gans_space_to_depth_padded",
                   jax.ShapeDtypeStruct((n, d // 2 + 1, h // 2 + 1, w // 2 + 1, 8 * c), x.dtype))(x)


def conv3d_stride2_applies(x: jax.Array, kernel_s2d: jax.Array) -> bool:
  """Whether `conv3d_stride2` runs here: float32 on the CPU, the kernels built, a multiple of VECTOR_CHANNELS
  output channels."""
  return kernel_s2d.shape[-1] % VECTOR_CHANNELS == 0 and _runs_here(x, kernel_s2d)


def conv3d_stride2(x_padded: jax.Array, kernel_s2d: jax.Array, lax_form: Callable) -> jax.Array:
  """PyTorch's Conv3d(k=4, s=2, p=1) of x padded beforehand by one voxel, (N, 2D + 2, 2H + 2, 2W + 2, C) ->
  (N, D, H, W, O), the kernel in layers3d's space-to-depth layout (2, 2, 2, 8C, O), by the C++ kernel (where
  `conv3d_stride2_applies`), with the derivatives of `lax_form`, the same map in lax."""
  return with_lax_derivatives(_conv3d_stride2, lax_form)(x_padded, kernel_s2d)


def _conv3d_stride2(x_padded: jax.Array, kernel_s2d: jax.Array) -> jax.Array:
  n, d, h, w, _ = x_padded.shape
  return _ffi_call("gans_conv3d_stride2", jax.ShapeDtypeStruct(
      (n, d // 2 - 1, h // 2 - 1, w // 2 - 1, kernel_s2d.shape[-1]), x_padded.dtype))(x_padded, kernel_s2d)


def conv_transpose3d_stride2_applies(x: jax.Array, adjoint_kernel: jax.Array) -> bool:
  """Whether `conv_transpose3d_stride2` runs here: float32 on the CPU, the kernels built, a multiple of
  VECTOR_CHANNELS output channels."""
  return (adjoint_kernel.shape[-1] // 8) % VECTOR_CHANNELS == 0 and _runs_here(x, adjoint_kernel)


def conv_transpose3d_stride2(x_padded: jax.Array, adjoint_kernel: jax.Array, lax_form: Callable) -> jax.Array:
  """PyTorch's ConvTranspose3d(k=4, s=2, p=1) of x padded beforehand by one voxel, (N, D + 2, H + 2, W + 2, C) ->
  (N, 2D, 2H, 2W, O), the kernel in layers3d's adjoint layout (2, 2, 2, C, 8 O), by the C++ kernel (where
  `conv_transpose3d_stride2_applies`), with the derivatives of `lax_form`, the same map in lax."""
  return with_lax_derivatives(_conv_transpose3d_stride2, lax_form)(x_padded, adjoint_kernel)


# `conv_transpose3d_stride2` repacks kernels of more than this many floats so that it reads them in order (in the
# adjoint layout consecutive input channels are 8 O floats apart, which the prefetchers do not follow: the wide
# layers ran at a third of the speed) and blocks its loops so that slices of them stay in L1; smaller kernels
# (a quarter of a 2 MB L2) it reads in place, row by row: x and y are then the larger operands and stream through
# once (10-20% faster at gan3d_shapes' layers, noisy).
TRANSPOSED_PACK_MIN_FLOATS = 128 * 1024


def _conv_transpose3d_stride2(x_padded: jax.Array, adjoint_kernel: jax.Array) -> jax.Array:
  n, d, h, w, _ = x_padded.shape
  call = _ffi_call("gans_conv_transpose3d_stride2", jax.ShapeDtypeStruct(
      (n, 2 * d - 4, 2 * h - 4, 2 * w - 4, adjoint_kernel.shape[-1] // 8), x_padded.dtype))
  return call(x_padded, adjoint_kernel, pack=adjoint_kernel.size > TRANSPOSED_PACK_MIN_FLOATS)


def winograd_tiles_applies(x: jax.Array, matrix) -> bool:
  """Whether `winograd_tiles` runs here: float32 (N, H, W, C) on the CPU, the kernels built, a rows x size matrix
  with 2 <= size <= rows <= 6 (every plan of gans/winograd.py)."""
  return x.ndim == 4 and 2 <= matrix.shape[1] <= matrix.shape[0] <= 6 and _runs_here(x)


def winograd_tiles(x: jax.Array, matrix, stride: int, tiles_h: int, tiles_w: int, lax_form: Callable) -> jax.Array:
  """Winograd's tiles of x (N, H, W, C), zero beyond its edges: (R * R, N * tiles_h * tiles_w, C) with
  tiles[i * R + j, (n * tiles_h + th) * tiles_w + tw] = sum over u, v of matrix[i, u] matrix[j, v]
  x[n, th * stride + u, tw * stride + v] (matrix R x S, a numpy constant), in one pass by the C++ kernel (where
  `winograd_tiles_applies`), with the derivatives of `lax_form`, the same map of x in lax."""
  rows = matrix.shape[0]
  result = jax.ShapeDtypeStruct((rows * rows, x.shape[0] * tiles_h * tiles_w, x.shape[3]), x.dtype)
  call = lambda x: _ffi_call("gans_winograd_tiles", result)(
      x, matrix=np.asarray(matrix, np.float32).ravel(), rows=rows, stride=stride, tiles_h=tiles_h, tiles_w=tiles_w)
  return with_lax_derivatives(call, lax_form)(x)
