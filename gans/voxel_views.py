"""How voxel samples are shown and exported: shaded renders from a fixed viewpoint, meshes by marching cubes.

Grids are occupancies [D, H, W] or [D, H, W, 1] in [0, 1], axes (x, y, z) with y (H) up, as gans/data/voxels.py.
`render` is numpy only: every voxel above one half is projected orthographically from the viewpoint
(azimuth 45 degrees, elevation 30 degrees), the nearest wins each pixel, and it is shaded by the angle between
the light and the surface normal (the gradient of the smoothed occupancy). report.to_picture uses it for
[N, D, H, W, 1] samples; TensorBoard and --mode=sample get the same grid.
"""
import os

import numpy as np
import scipy.ndimage

AZIMUTH, ELEVATION = np.radians(45.0), np.radians(30.0)
_LIGHT = np.array([-0.4, 0.8, 0.45])  # in camera coordinates (x right, y up, z toward the viewer)
_LIGHT = _LIGHT / np.linalg.norm(_LIGHT)
FORMATS = ("obj", "ply")


def _camera_rotation() -> np.ndarray:
  """World (x, y up, z) -> camera (right, up, toward the viewer)."""
  ca, sa, ce, se = np.cos(AZIMUTH), np.sin(AZIMUTH), np.cos(ELEVATION), np.sin(ELEVATION)
  yaw = np.array([[ca, 0, -sa], [0, 1, 0], [sa, 0, ca]])
  pitch = np.array([[1, 0, 0], [0, ce, -se], [0, se, ce]])
  return pitch @ yaw


def _grid3(occupancy: np.ndarray) -> np.ndarray:
  occupancy = np.asarray(occupancy, np.float32)
  if occupancy.ndim == 4 and occupancy.shape[-1] == 1:
    occupancy = occupancy[..., 0]
  if occupancy.ndim != 3:
    raise ValueError(f"expected a voxel grid D x H x W [x 1], got shape {occupancy.shape}")
  return occupancy


def render(occupancy: np.ndarray, size: int | None = None) -> np.ndarray:
  """A float32 (size, size) picture in [-1, 1] of one grid: white background, the solid in shades of grey.

  size: pixels per side; None = twice the grid's side.
  """
  grid = _grid3(occupancy)
  resolution = grid.shape[0]
  size = size or 2 * resolution
  picture = np.ones((size, size), np.float32)
  filled = np.argwhere(grid > 0.5)
  if not len(filled):
    return picture
  rotation = _camera_rotation()
  centers = (filled + 0.5) * (2.0 / np.array(grid.shape)) - 1.0
  camera = centers @ rotation.T
  # Normals: minus the gradient of the smoothed occupancy, in camera coordinates.
  smooth = scipy.ndimage.gaussian_filter(grid, 1.0)
  gradient = np.stack([g[tuple(filled.T)] for g in np.gradient(smooth)], axis=-1)
  normals = -(gradient @ rotation.T)
  normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-6)
  shade = 0.2 + 0.7 * np.clip(normals @ _LIGHT, 0.0, 1.0)
  extent = 1.75  # half the diagonal of the [-1, 1]^3 cube, so no pose leaves the picture
  # Continuous picture coordinates (pixel k spans [k, k + 1)); each voxel covers about its projected size,
  # its side times up to sqrt(2) seen obliquely, sampled at sub-pixel spacing.
  pixels = (camera[:, :2] / extent + 1.0) * 0.5 * size
  half = 0.7 * size / (resolution * extent)
  offsets = np.linspace(-half, half, int(np.ceil(2 * half)) + 1)
  footprint = len(offsets)
  rows = np.clip(np.floor(size - pixels[:, 1, None, None] + offsets[:, None]).astype(int), 0, size - 1)
  columns = np.clip(np.floor(pixels[:, 0, None, None] + offsets[None, :]).astype(int), 0, size - 1)
  pixel = (rows * size + columns).reshape(-1)  # (voxel, footprint row, footprint column), flattened
  depth = np.broadcast_to(camera[:, 2, None, None], (len(camera), footprint, footprint)).reshape(-1)
  values = np.broadcast_to(shade[:, None, None], (len(camera), footprint, footprint)).reshape(-1)
  order = np.lexsort((depth, pixel))  # by pixel, then far to near
  pixel, values = pixel[order], values[order]
  nearest = np.r_[pixel[1:] != pixel[:-1], True]  # the last, nearest voxel of each pixel
  picture.reshape(-1)[pixel[nearest]] = values[nearest]
  return picture * 2.0 - 1.0


def render_batch(samples_NDHWC: np.ndarray, size: int | None = None) -> np.ndarray:
  """[N, D, H, W, 1] occupancies -> [N, size, size, 1] pictures in [-1, 1], for report.image_grid."""
  return np.stack([render(sample, size) for sample in np.asarray(samples_NDHWC)])[..., None]


def surface_mesh(occupancy: np.ndarray, level: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
  """(vertices f32[V, 3] in voxel units, triangles int[T, 3]) of the `level` isosurface (marching cubes,
  scikit-image), the grid padded with empty voxels so the surface is closed. Empty grids give no triangles."""
  from skimage import measure  # pylint: disable=import-outside-toplevel  (only exporting needs it)
  grid = np.pad(_grid3(occupancy), 1)
  if not grid.max() > level:
    return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)
  vertices, triangles, _, _ = measure.marching_cubes(grid, level)
  return (vertices - 1.0).astype(np.float32), triangles.astype(np.int64)


def write_mesh(path: str, vertices: np.ndarray, triangles: np.ndarray) -> None:
  """Writes a triangle mesh as Wavefront .obj or ASCII .ply, chosen by the file's suffix."""
  suffix = os.path.splitext(path)[1].lstrip(".")
  if suffix not in FORMATS:
    raise ValueError(f"Unknown mesh format {suffix!r} of {path}; valid: {', '.join(FORMATS)}.")
  with open(path, "w") as file:
    if suffix == "obj":
      file.writelines(f"v {x:.4f} {y:.4f} {z:.4f}\n" for x, y, z in vertices)
      file.writelines(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in triangles)  # OBJ counts from 1
      return
    file.write(f"ply\nformat ascii 1.0\nelement vertex {len(vertices)}\nproperty float x\nproperty float y\n"
               f"property float z\nelement face {len(triangles)}\nproperty list uchar int vertex_indices\n"
               f"end_header\n")
    file.writelines(f"{x:.4f} {y:.4f} {z:.4f}\n" for x, y, z in vertices)
    file.writelines(f"3 {a} {b} {c}\n" for a, b, c in triangles)


def export_meshes(samples_NDHWC: np.ndarray, directory: str, mesh_format: str) -> list[str]:
  """One mesh file per sample, <directory>/sample_NNNN.<format>; returns the paths."""
  if mesh_format not in FORMATS:
    raise ValueError(f"Unknown mesh format {mesh_format!r}; valid: {', '.join(FORMATS)}.")
  os.makedirs(directory, exist_ok=True)
  paths = []
  for index, sample in enumerate(np.asarray(samples_NDHWC)):
    path = os.path.join(directory, f"sample_{index:04d}.{mesh_format}")
    write_mesh(path, *surface_mesh(sample))
    paths.append(path)
  return paths
