"""Winograd's minimal filtering: stride-1 convolutions with fewer multiplications (Lavin & Gray 2016).

F(m, r) computes m outputs of an r-tap correlation from a tile of a = m + r - 1
inputs with a multiplications instead of m * r. In 2D, with B, G, A the
matrices of `Plan`,

    Y = A^T [ (G w G^T) (.) (B^T X B) ] A        ((.) elementwise, per tile and channel pair)

and summed over input channels the elementwise products become a^2 matrix
products, one per point of the tile: (N*tiles, C_in) @ (C_in, C_out). F(4, 2)
does a 2x2-tap conv with 25 products per 16 outputs instead of 64 (2.56x fewer),
which is what makes DCGAN's 4x4 stride-2 convs (2x2-tap convs after a
space-to-depth, gans/layers.py) faster than PyTorch on a CPU. The transforms are
sums of a handful of shifted slices, memory-bound and cheap next to the matrix
products once the channel counts are in the tens (on the CPU the tiles are cut
in one pass by a C++ kernel, `CPU_TILES`).

The matrices are those of polynomial multiplication by evaluation at the plan's
points and infinity (the Toom-Cook construction): with V the a x a Vandermonde
matrix of the points (the row for infinity picks the leading coefficient),
G = V[:, :r], A = V[:, :m] and B^T = V^{-T}. The results equal the direct
convolution up to float rounding; the error grows with m and with the spread of
the points (tests/test_winograd.py bounds it).

`correlate` and `correlate_transpose` are each other's adjoints and each has a
custom gradient written with the other's transforms, so the backward pass is
Winograd too (the input gradient of a correlation is a transposed correlation
and vice versa; the kernel gradient is one more batch of a^2 matrix products).
"""
import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gans import cpu_kernels

Array = jax.Array
# The tiles (the input transform and the output transform's adjoint) are cut and transformed by a C++ kernel on
# the CPU (gans/cpu_kernels.winograd_tiles: one pass, 16 channels at a time); XLA:CPU runs the slices' sums as
# two concatenation loops (the 3D-GAN's D 32^3 64 -> 128 layer, batch 16, one core: 159 ms against 243 for the
# input transform; README, 3D-GAN). False keeps XLA's.
CPU_TILES = True


@dataclasses.dataclass(frozen=True)
class Plan:
  """F(m, r): m outputs per tile side, r kernel taps, at the finite points `points` (m + r - 2 of them)."""
  m: int
  r: int
  points: tuple[float, ...]

  def __post_init__(self):
    if len(self.points) != self.m + self.r - 2 or len(set(self.points)) != len(self.points):
      raise ValueError(f"F({self.m}, {self.r}) needs {self.m + self.r - 2} distinct points, got {self.points}")

  @property
  def tile(self) -> int:
    return self.m + self.r - 1


# F(4, 2): the best trade of multiplications (2.56x fewer) against rounding for 2x2 taps; 1/2 rather than 2
# keeps the output transform's entries at most 1 in magnitude.
F4_2 = Plan(m=4, r=2, points=(0.0, 1.0, -1.0, 0.5))
# F(2, 2): 1.78x fewer products, integer transforms; for maps whose side is 2 mod 4, which F(4, 2) would pad.
F2_2 = Plan(m=2, r=2, points=(0.0, 1.0))
# F(3, 2): 2.25x fewer products, small integer transforms; for maps whose side is a multiple of 3 (or just
# under), which F(4, 2) would pad: the 3D sub-voxel convs' odd sides 9 and 33 (gans/layers3d.py).
F3_2 = Plan(m=3, r=2, points=(0.0, 1.0, -1.0))
# F(4, 3): 3x3 taps with 36 products per 16 outputs instead of 144 (4x fewer); the points +-1/2 rather than +-2
# keep the transforms' entries small (gans/layers.py uses it for CycleGAN's 256-channel residual convs).
F4_3 = Plan(m=4, r=3, points=(0.0, 1.0, -1.0, 0.5, -0.5))


def plan_for(tiled_size: int) -> Plan:
  """The 2x2-tap plan for a map with `tiled_size` outputs per side (correlate's output, correlate_transpose's input)."""
  return F2_2 if tiled_size % 4 != 0 and tiled_size < 8 else F4_2


@functools.cache
def matrices(plan: Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(A^T (m x a), G (a x r), B^T (a x a)) of the module docstring, in float64."""
  a = plan.tile
  vandermonde = np.zeros((a, a))
  for row, point in enumerate(plan.points):
    vandermonde[row] = point ** np.arange(a)
  vandermonde[a - 1, a - 1] = 1.0  # the point at infinity: the leading coefficient
  g = vandermonde[:, :plan.r].copy()
  g[a - 1] = np.eye(plan.r)[plan.r - 1]
  a_matrix = vandermonde[:, :plan.m].copy()
  a_matrix[a - 1] = np.eye(plan.m)[plan.m - 1]
  return a_matrix.T, g, np.linalg.inv(vandermonde).T


def _combine(coefficients: Sequence[float], terms: Sequence[Array]) -> Array:
  """sum_i coefficients[i] * terms[i], skipping zeros (the transforms are sparse)."""
  total = None
  for coefficient, term in zip(coefficients, terms):
    coefficient = float(coefficient)
    if abs(coefficient) < 1e-12:
      continue
    if coefficient != 1.0:
      term = -term if coefficient == -1.0 else term * np.float32(coefficient)
    total = term if total is None else total + term
  return jnp.zeros_like(terms[0]) if total is None else total


def _gather_tiles(x: Array, axis: int, num_tiles: int, matrix: np.ndarray, stride: int) -> list[Array]:
  """out[i][..., t, ...] = sum_j matrix[i, j] * x[..., t * stride + j, ...] along `axis`, for t < num_tiles."""
  taps = [lax.slice_in_dim(x, j, j + (num_tiles - 1) * stride + 1, stride=stride, axis=axis)
          for j in range(matrix.shape[1])]
  return [_combine(row, taps) for row in matrix]


def _scatter_tiles(parts: Sequence[Array], axis: int, matrix: np.ndarray, stride: int, length: int) -> Array:
  """The adjoint of `_gather_tiles`: x[..., t * stride + j, ...] += sum_i matrix[i, j] * parts[i][..., t, ...].

  Tiles (matrix.shape[1] long, at least `stride`) longer than the stride overlap and their sums add up; the
  result is cropped or zero-padded to `length`.
  """
  size = matrix.shape[1]
  per_offset = [_combine(matrix[:, j], parts) for j in range(size)]
  extra = -(-size // stride) - 1  # blocks a tile reaches past its own
  columns = []
  for j in range(stride):
    column = None
    for k in range((size - 1 - j) // stride + 1):
      widths = [(0, 0)] * per_offset[0].ndim
      widths[axis] = (k, extra - k)
      shifted = jnp.pad(per_offset[j + k * stride], widths)
      column = shifted if column is None else column + shifted
    columns.append(column)
  y = jnp.stack(columns, axis=axis + 1)
  shape = list(columns[0].shape)
  shape[axis] *= stride
  y = y.reshape(shape)
  if shape[axis] >= length:
    return lax.slice_in_dim(y, 0, length, axis=axis)
  widths = [(0, 0)] * y.ndim
  widths[axis] = (0, length - shape[axis])
  return jnp.pad(y, widths)


def _num_tiles(outputs: int, plan: Plan) -> int:
  return -(-outputs // plan.m)


def _gather_2d(x: Array, t_h: int, t_w: int, matrix: np.ndarray, plan: Plan) -> Array:
  """(N, H, W, C) -> (a * a, N * t_h * t_w, C): matrix X matrix^T of every tile (tiles start every m pixels),
  rows then columns; x is zero-padded to the tiles' reach. On the CPU in one pass by a C++ kernel (CPU_TILES)."""
  lax_form = functools.partial(_gather_2d_lax, t_h=t_h, t_w=t_w, matrix=matrix, plan=plan)
  if CPU_TILES and cpu_kernels.winograd_tiles_applies(x, matrix):
    return cpu_kernels.winograd_tiles(x, matrix, plan.m, t_h, t_w, lax_form)
  return lax_form(x)


def _gather_2d_lax(x: Array, t_h: int, t_w: int, matrix: np.ndarray, plan: Plan) -> Array:
  n, h, w, c = x.shape
  size = matrix.shape[1]
  x = jnp.pad(x, ((0, 0), (0, (t_h - 1) * plan.m + size - h), (0, (t_w - 1) * plan.m + size - w), (0, 0)))
  rows = jnp.stack(_gather_tiles(x, 1, t_h, matrix, plan.m))  # (a, N, t_h, W, C)
  tiles = jnp.stack(_gather_tiles(rows, 3, t_w, matrix, plan.m), axis=1)  # (a, a, N, t_h, t_w, C)
  return tiles.reshape(plan.tile ** 2, n * t_h * t_w, c)


def _scatter_2d(v: Array, shape: tuple[int, int, int, int], t_h: int, t_w: int, matrix: np.ndarray,
                plan: Plan) -> Array:
  """The adjoint of `_gather_2d`: (a * a, N * t_h * t_w, C) -> (N, H, W, C) = `shape`."""
  n, h, w, c = shape
  v = v.reshape(plan.tile, plan.tile, n, t_h, t_w, c)
  rows = _scatter_tiles([v[:, j] for j in range(plan.tile)], 3, matrix, plan.m, w)  # (a, N, t_h, W, C)
  return _scatter_tiles([rows[i] for i in range(plan.tile)], 1, matrix, plan.m, h)


def _input_transform(x: Array, plan: Plan) -> Array:
  """(N, H, W, C) -> (a * a, N * T_h * T_w, C): B^T X B of every tile."""
  _, h, w, _ = x.shape
  t_h, t_w = _num_tiles(h - plan.r + 1, plan), _num_tiles(w - plan.r + 1, plan)
  return _gather_2d(x, t_h, t_w, matrices(plan)[2], plan)


def _input_transform_adjoint(v: Array, shape: tuple[int, int, int, int], plan: Plan) -> Array:
  """The adjoint of `_input_transform`: (a * a, N * T_h * T_w, C) -> (N, H, W, C) = `shape`."""
  _, h, w, _ = shape
  t_h, t_w = _num_tiles(h - plan.r + 1, plan), _num_tiles(w - plan.r + 1, plan)
  return _scatter_2d(v, shape, t_h, t_w, matrices(plan)[2], plan)


def _output_transform(products: Array, shape: tuple[int, int, int, int], plan: Plan) -> Array:
  """(a * a, N * T_h * T_w, D) -> (N, H_out, W_out, D) = `shape`: A^T M A of every tile, tiles side by side."""
  _, h, w, _ = shape
  return _scatter_2d(products, shape, _num_tiles(h, plan), _num_tiles(w, plan), matrices(plan)[0].T, plan)


def _output_transform_adjoint(y: Array, plan: Plan) -> Array:
  """The adjoint of `_output_transform`: (N, H_out, W_out, D) -> (a * a, N * T_h * T_w, D)."""
  _, h, w, _ = y.shape
  return _gather_2d(y, _num_tiles(h, plan), _num_tiles(w, plan), matrices(plan)[0].T, plan)


def _kernel_transform(kernel: Array, plan: Plan) -> Array:
  """(r, r, C, D) -> (a * a, C, D): G w G^T, as one matrix product (G kron G) @ w over the r * r taps.

  A product rather than sums of slices: where the kernel arrives transposed (an input gradient's flipped
  adjoint), XLA fuses the transpose into the slices' a * a-fold larger output and reads it with a stride there:
  G's 4^3 512 -> 256 layer spent 1.2 s per call on that (batch 16, one core) against 0.27 s as a copy and a
  product (README, 3D-GAN).
  """
  g = matrices(plan)[1]
  taps = jnp.asarray(np.kron(g, g), kernel.dtype)  # (a * a, r * r), rows then columns as in `_gather_2d`
  tiles = lax.dot(taps, kernel.reshape(plan.r * plan.r, -1), precision=lax.Precision.HIGHEST)
  return tiles.reshape(plan.tile ** 2, *kernel.shape[2:])


def _kernel_transform_adjoint(u: Array, plan: Plan) -> Array:
  """The adjoint of `_kernel_transform`: (a * a, C, D) -> (r, r, C, D)."""
  g = matrices(plan)[1]
  u = u.reshape(plan.tile, plan.tile, *u.shape[1:])
  rows = [_combine(g[:, k], [u[i] for i in range(plan.tile)]) for k in range(plan.r)]  # each (a, C, D)
  return jnp.stack([jnp.stack([_combine(g[:, k], [row[j] for j in range(plan.tile)]) for k in range(plan.r)])
                    for row in rows])


_PER_POINT = ((0,), (0,))  # dot_general batch dimensions: the a * a points of a tile


def _kernel_gradient(tiles: Array, output_tiles: Array, plan: Plan) -> Array:
  """sum over batch and tiles of (B^T X B)^T (A dY A^T), back to (r, r, C, D)."""
  products = lax.dot_general(tiles, output_tiles, (((1,), (1,)), _PER_POINT))  # (a * a, C, D)
  return _kernel_transform_adjoint(products, plan)


def _correlate(x, kernel, plan):
  """(y, the input's transformed tiles, which the kernel gradient reuses)."""
  n, h, w, _ = x.shape
  tiles = _input_transform(x, plan)
  products = lax.dot_general(tiles, _kernel_transform(kernel, plan), (((2,), (1,)), _PER_POINT))
  shape = (n, h - plan.r + 1, w - plan.r + 1, kernel.shape[3])
  return _output_transform(products, shape, plan), tiles


def _correlate_transpose(y, kernel, plan):
  """(x, the input's transformed tiles, which the kernel gradient reuses)."""
  n, h, w, _ = y.shape
  output_tiles = _output_transform_adjoint(y, plan)
  products = lax.dot_general(output_tiles, _kernel_transform(kernel, plan), (((2,), (2,)), _PER_POINT))
  shape = (n, h + plan.r - 1, w + plan.r - 1, kernel.shape[2])
  return _input_transform_adjoint(products, shape, plan), output_tiles


def _check(x: Array, kernel: Array, plan: Plan, channel_axis: int) -> None:
  if x.ndim != 4 or kernel.shape[:2] != (plan.r, plan.r) or kernel.ndim != 4:
    raise ValueError(f"expected NHWC input and a ({plan.r}, {plan.r}, C_in, C_out) kernel for F({plan.m}, "
                     f"{plan.r}), got {x.shape} and {kernel.shape}")
  if kernel.shape[channel_axis] != x.shape[3]:
    raise ValueError(f"kernel {kernel.shape} does not match the {x.shape[3]} channels of the input")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _correlate_vjp(x, kernel, plan):
  return _correlate(x, kernel, plan)[0]


def _correlate_fwd(x, kernel, plan):
  y, tiles = _correlate(x, kernel, plan)
  return y, (tiles, kernel)


def _correlate_bwd(plan, residuals, y_grad):
  tiles, kernel = residuals
  x_grad, output_tiles = _correlate_transpose(y_grad, kernel, plan)
  return x_grad, _kernel_gradient(tiles, output_tiles, plan).astype(kernel.dtype)


_correlate_vjp.defvjp(_correlate_fwd, _correlate_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _correlate_transpose_vjp(y, kernel, plan):
  return _correlate_transpose(y, kernel, plan)[0]


def _correlate_transpose_fwd(y, kernel, plan):
  x, output_tiles = _correlate_transpose(y, kernel, plan)
  return x, (output_tiles, kernel)


def _correlate_transpose_bwd(plan, residuals, x_grad):
  output_tiles, kernel = residuals
  y_grad, tiles = _correlate(x_grad, kernel, plan)
  return y_grad, _kernel_gradient(tiles, output_tiles, plan).astype(kernel.dtype)


_correlate_transpose_vjp.defvjp(_correlate_transpose_fwd, _correlate_transpose_bwd)


def correlate(x_NHWC: Array, kernel_HWIO: Array, plan: Plan = F4_2) -> Array:
  """Stride-1 VALID cross-correlation (a deep-learning "conv"): (N, H, W, C) -> (N, H-r+1, W-r+1, D)."""
  _check(x_NHWC, kernel_HWIO, plan, channel_axis=2)
  return _correlate_vjp(x_NHWC, kernel_HWIO, plan)


def correlate_transpose(y_NHWC: Array, kernel_HWIO: Array, plan: Plan = F4_2) -> Array:
  """The adjoint of `correlate` in its input: (N, H', W', D) -> (N, H'+r-1, W'+r-1, C), kernel (r, r, C, D)."""
  _check(y_NHWC, kernel_HWIO, plan, channel_axis=3)
  return _correlate_transpose_vjp(y_NHWC, kernel_HWIO, plan)
