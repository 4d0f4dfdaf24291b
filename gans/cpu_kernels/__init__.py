"""C++ kernels for XLA:CPU, as FFI custom calls, where XLA's own lowering is slow; `lax` everywhere else.

One kernel so far, `conv_kernel_grad` (conv_kernel_grad.cc): the kernel gradient of a stride-1 3D convolution,
which XLA:CPU runs as a convolution behind untiled transposes of both operands (README, 3D-GAN).

The source is compiled on first use with the machine's C++ compiler ($CXX, else g++; -O3 -march=native) against
the FFI headers jaxlib ships, and cached in $XDG_CACHE_HOME/gans/cpu_kernels (~/.cache/gans/cpu_kernels) under a
name that hashes the source, the flags, jaxlib's version and the CPU, so a new machine or version rebuilds it. Without a compiler, or
if the build fails, `available()` logs why once and callers keep their `lax` form.
"""
import functools
import hashlib
import logging
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile

import jax
import jaxlib
from jax import lax

_SOURCE = pathlib.Path(__file__).with_name("conv_kernel_grad.cc")
_TARGET = "gans_conv_kernel_grad"
_FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w")
# The kernel holds blocks of 16 floats of one operand's channels in vector registers.
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
def available() -> bool:
  """Builds (once per machine and version), loads and registers the kernels; False, logged, if that fails."""
  import ctypes  # pylint: disable=import-outside-toplevel
  compiler = shutil.which(os.environ.get("CXX", "g++"))
  if compiler is None:
    logging.warning("gans.cpu_kernels: no C++ compiler (set $CXX or install g++); XLA's own kernel gradients "
                    "are used, slower on the CPU.")
    return False
  library = _library_path(compiler)
  try:
    if not library.exists():
      _build(compiler, library)
    handler = ctypes.cdll.LoadLibrary(str(library))
    jax.ffi.register_ffi_target(_TARGET, jax.ffi.pycapsule(getattr(handler, _TARGET)), platform="cpu")
  except (OSError, subprocess.CalledProcessError) as error:
    detail = getattr(error, "stderr", "") or error
    logging.warning("gans.cpu_kernels: building %s failed; XLA's own kernel gradients are used, slower on the "
                    "CPU:\n%s", _SOURCE, detail)
    return False
  return True


def conv_kernel_grad_lax(x_padded: jax.Array, y_grad: jax.Array) -> jax.Array:
  """kernel[a, b, c, i, o] = sum over n, d, h, w of x[n, d + a, h + b, w + c, i] y_grad[n, d, h, w, o]: the
  kernel gradient of the stride-1 VALID 3D conv of x_padded (NDHWC), as XLA's convolution with the batch as
  contracted channels."""
  kernel = lax.conv_general_dilated(x_padded.transpose(4, 1, 2, 3, 0), y_grad.transpose(1, 2, 3, 0, 4),
                                    (1, 1, 1), "VALID", dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
                                    precision=lax.Precision.HIGHEST)
  return kernel.transpose(1, 2, 3, 0, 4)


def conv_kernel_grad_applies(x_padded: jax.Array, y_grad: jax.Array) -> bool:
  """Whether `conv_kernel_grad` runs the C++ kernel here: float32 on the CPU backend, one operand's channels a
  multiple of VECTOR_CHANNELS, and the kernel built."""
  return (jax.default_backend() == "cpu" and x_padded.dtype == y_grad.dtype == jax.numpy.float32
          and any(c % VECTOR_CHANNELS == 0 for c in (x_padded.shape[-1], y_grad.shape[-1]))
          and available())


@jax.custom_vjp
def conv_kernel_grad(x_padded: jax.Array, y_grad: jax.Array) -> jax.Array:
  """`conv_kernel_grad_lax` by the C++ kernel (where `conv_kernel_grad_applies`), both operands read in place.

  Its own derivatives (a second-order gradient, e.g. a gradient penalty through a layer) are those of
  `conv_kernel_grad_lax`.
  """
  c_in, c_out = x_padded.shape[-1], y_grad.shape[-1]
  taps = tuple(x - y + 1 for x, y in zip(x_padded.shape[1:4], y_grad.shape[1:4]))
  # The wider side in the vector registers (measured faster: 160x5x5x256 against 160x6x6x128, 13.8 against
  # 18.9 ms on one core); the other when the wider is not a multiple of 16.
  vectors_from_x = c_in % VECTOR_CHANNELS == 0 and (c_in > c_out or c_out % VECTOR_CHANNELS != 0)
  call = jax.ffi.ffi_call(_TARGET, jax.ShapeDtypeStruct(taps + (c_in, c_out), jax.numpy.float32),
                          vmap_method="broadcast_all")
  return call(x_padded, y_grad, vectors_from_x=bool(vectors_from_x))


def _conv_kernel_grad_fwd(x_padded_NHWC, y_grad_NHWC):
  return conv_kernel_grad(x_padded_NHWC, y_grad_NHWC), (x_padded_NHWC, y_grad_NHWC)


def _conv_kernel_grad_bwd(residuals, kernel_cotangent):
  return jax.vjp(conv_kernel_grad_lax, *residuals)[1](kernel_cotangent)


conv_kernel_grad.defvjp(_conv_kernel_grad_fwd, _conv_kernel_grad_bwd)
