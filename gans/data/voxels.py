"""Voxel occupancy grids: procedural solids (no download), folders of .binvox / .npy / .npz / .off files.

Every voxel source yields {"voxels": f32[R, R, R, 1] in {0, 1}} (+ {"label": int32} where classes are known),
axes (D, H, W) = (x, y, z) with y, the H axis, pointing up (ShapeNet's binvox convention).

Procedural solids (`ShapesSource`): boxes, spheres, cylinders, cones, tori, and tables and chairs built from
boxes, with random proportions, sizes, poses (primitives: any rotation; tables and chairs: upright, any yaw)
and positions; element i is a pure function of (seed, i), its class is i mod the number of classes. Labels
are for evaluation (classification of D's features, class coverage), not conditioning.
"""
import os

import numpy as np
import scipy.ndimage

from gans.data import folder
from gans.data.errors import DatasetNotFoundError

CLASSES = ("box", "sphere", "cylinder", "cone", "torus", "table", "chair")
VOXEL_SUFFIXES = (".binvox", ".npy", ".npz", ".off")
VOXEL_FOLDER_HINT = (
    "Voxel folders hold .binvox (ShapeNet's voxelised release), .npy/.npz occupancy arrays (D x H x W, "
    "optionally x 1) or .off meshes (ModelNet's format, voxelised on reading). ModelNet10: download "
    "ModelNet10.zip from the Princeton ModelNet page, unzip, and set data.path to the ModelNet10 folder "
    "(<class>/<train|test>/*.off; data.split picks the subfolder).")


# --- Procedural solids. Points q are in the solid's own frame, the grid spans [-1, 1]^3.

def voxel_centers(resolution: int) -> np.ndarray:
  """(R, R, R, 3) coordinates of the voxel centres in [-1, 1], symmetric about 0."""
  axis = (np.arange(resolution, dtype=np.float32) + 0.5) * (2.0 / resolution) - 1.0
  return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)


def _box(q, center, half):
  return np.all(np.abs(q - np.asarray(center, np.float32)) <= np.asarray(half, np.float32), axis=-1)


def _inside(kind: str, q: np.ndarray, p: dict) -> np.ndarray:
  x, y, z = q[..., 0], q[..., 1], q[..., 2]
  horizontal = np.sqrt(x * x + z * z)
  if kind == "box":
    return _box(q, (0, 0, 0), p["half"])
  if kind == "sphere":
    return np.sqrt(x * x + y * y + z * z) <= p["radius"]
  if kind == "cylinder":
    return (horizontal <= p["radius"]) & (np.abs(y) <= p["half_height"])
  if kind == "cone":  # base of radius `radius` at y = -h, apex at y = +h
    h = p["half_height"]
    return (np.abs(y) <= h) & (horizontal <= p["radius"] * (h - y) / (2 * h))
  if kind == "torus":  # ring in the horizontal plane
    return (horizontal - p["major"]) ** 2 + y * y <= p["minor"] ** 2
  if kind == "table":
    (tx, tz), top_y, thick, leg, floor = p["top"], p["top_y"], p["thickness"], p["leg"], p["floor"]
    solid = _box(q, (0, top_y, 0), (tx, thick, tz))
    leg_half_height = (top_y - floor) / 2
    for sx in (-1, 1):
      for sz in (-1, 1):
        solid |= _box(q, (sx * (tx - leg), floor + leg_half_height, sz * (tz - leg)), (leg, leg_half_height, leg))
    return solid
  if kind == "chair":  # a table-like seat with a back rising from its -z edge
    (sx_, sz_), seat_y, thick, leg, floor, back_top = (p["seat"], p["seat_y"], p["thickness"], p["leg"],
                                                        p["floor"], p["back_top"])
    solid = _inside("table", q, dict(top=(sx_, sz_), top_y=seat_y, thickness=thick, leg=leg, floor=floor))
    back_half = (back_top - seat_y) / 2
    return solid | _box(q, (0, seat_y + back_half, -sz_ + thick), (sx_, back_half, thick))
  raise ValueError(f"Unknown solid {kind!r}; valid: {', '.join(CLASSES)}.")


def solid(kind: str, params: dict, resolution: int, rotation: np.ndarray | None = None,
          offset=(0.0, 0.0, 0.0)) -> np.ndarray:
  """Bool (R, R, R) occupancy of `kind` with `params`, rotated by `rotation` (3x3) then shifted by `offset`."""
  points = voxel_centers(resolution) - np.asarray(offset, np.float32)
  if rotation is not None:  # q = R^T p: the solid's own frame
    points = points @ np.asarray(rotation, np.float32)
  return _inside(kind, points, params)


def _random_rotation(rng) -> np.ndarray:
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q *= np.sign(np.diag(r))
  if np.linalg.det(q) < 0:
    q[:, 0] *= -1
  return q


def _yaw(rng) -> np.ndarray:
  angle = rng.uniform(0, 2 * np.pi)
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def random_params(kind: str, rng) -> tuple[dict, float]:
  """(params, bounding radius) of a random solid of `kind`, sized to fit in the unit ball."""
  u = rng.uniform
  if kind == "box":
    half = u(0.2, 0.55, 3)
    return {"half": tuple(half)}, float(np.linalg.norm(half))
  if kind == "sphere":
    radius = u(0.3, 0.8)
    return {"radius": radius}, radius
  if kind in ("cylinder", "cone"):
    radius, half_height = u(0.25, 0.55), u(0.3, 0.7)
    return {"radius": radius, "half_height": half_height}, float(np.hypot(radius, half_height))
  if kind == "torus":
    major, minor = u(0.35, 0.6), u(0.1, 0.25)
    return {"major": major, "minor": minor}, major + minor
  if kind in ("table", "chair"):
    width, depth, floor = u(0.4, 0.65), u(0.4, 0.65), -u(0.6, 0.8)
    params = {"thickness": u(0.05, 0.1), "leg": u(0.04, 0.09), "floor": floor}
    if kind == "table":
      params.update(top=(width, depth), top_y=u(0.1, 0.5))
    else:
      params.update(seat=(width, depth), seat_y=u(-0.2, 0.1), back_top=u(0.5, 0.85))
    return params, float(np.hypot(width, depth))
  raise ValueError(f"Unknown solid {kind!r}; valid: {', '.join(CLASSES)}.")


def random_solid(kind: str, rng, resolution: int) -> np.ndarray:
  """A random instance of `kind`: random proportions and size, pose (tables and chairs stay upright), position."""
  params, radius = random_params(kind, rng)
  upright = kind in ("table", "chair")
  rotation = _yaw(rng) if upright else _random_rotation(rng)
  slack = max(0.0, 0.95 - radius) / np.sqrt(3)
  offset = rng.uniform(-slack, slack, 3)
  if upright:
    offset[1] = 0.0  # tables and chairs stand on their floor
  return solid(kind, params, resolution, rotation, offset)


class ShapesSource:
  """source[i] -> {"voxels": f32[R, R, R, 1], "label": int32}: the procedural solid i of (seed, classes)."""

  def __init__(self, *, resolution: int, size: int, seed: int = 0, classes: tuple[str, ...] = CLASSES):
    unknown = sorted(set(classes) - set(CLASSES))
    if unknown or not classes:
      raise ValueError(f"Unknown or no shape classes {unknown or list(classes)}; valid: {', '.join(CLASSES)}.")
    self._resolution, self._size, self._seed, self.classes = resolution, size, seed, tuple(classes)

  def __len__(self) -> int:
    return self._size

  def __getitem__(self, index: int) -> dict:
    label = index % len(self.classes)
    grid = random_solid(self.classes[label], np.random.default_rng([self._seed, index]), self._resolution)
    return {"voxels": grid[..., None].astype(np.float32), "label": np.int32(label)}

  def __repr__(self) -> str:
    return f"ShapesSource({self._size} solids, {self._resolution}^3, seed {self._seed}, {self.classes})"


# --- binvox (Patrick Min's format: a text header, then run-length pairs (value, count) of bytes, in
# x-major, then z, then y order, i.e. index = x * D*H + z * H + y).

def write_binvox(path: str, grid_XYZ: np.ndarray, translate=(0.0, 0.0, 0.0), scale: float = 1.0) -> None:
  """Writes a bool (X, Y, Z) occupancy grid as .binvox."""
  grid = np.asarray(grid_XYZ, bool)
  values = grid.transpose(0, 2, 1).reshape(-1).astype(np.uint8)
  runs = bytearray()
  start = 0
  while start < len(values):
    end = start + 1
    while end < len(values) and values[end] == values[start] and end - start < 255:
      end += 1
    runs += bytes((values[start], end - start))
    start = end
  header = (f"#binvox 1\ndim {grid.shape[0]} {grid.shape[1]} {grid.shape[2]}\n"
            f"translate {translate[0]} {translate[1]} {translate[2]}\nscale {scale}\ndata\n")
  with open(path, "wb") as file:
    file.write(header.encode("ascii") + bytes(runs))


def read_binvox(path: str) -> np.ndarray:
  """The bool (X, Y, Z) occupancy grid of a .binvox file."""
  with open(path, "rb") as file:
    if not file.readline().startswith(b"#binvox"):
      raise ValueError("not a binvox file (no '#binvox' header)")
    dims = None
    while True:
      line = file.readline()
      if not line:
        raise ValueError("binvox header has no 'data' line")
      if line.startswith(b"dim"):
        dims = tuple(int(v) for v in line.split()[1:])
      if line.strip() == b"data":
        break
    if dims is None or len(dims) != 3:
      raise ValueError(f"binvox header has no 3-D 'dim' line (got {dims})")
    raw = np.frombuffer(file.read(), np.uint8)
  if len(raw) % 2:
    raise ValueError("binvox data is truncated (odd number of run-length bytes)")
  values = np.repeat(raw[0::2], raw[1::2])
  if len(values) != np.prod(dims):
    raise ValueError(f"binvox data holds {len(values)} voxels, dim {dims} needs {int(np.prod(dims))}")
  return values.reshape(dims[0], dims[2], dims[1]).transpose(0, 2, 1).astype(bool)


# --- OFF meshes (ModelNet), voxelised by dense surface sampling and filling the enclosed interior.

def read_off(path: str) -> tuple[np.ndarray, np.ndarray]:
  """(vertices f32[V, 3], triangles int[T, 3]) of an .off mesh; polygons are split into fans."""
  with open(path) as file:
    tokens = [line.split("#")[0].strip() for line in file]
  lines = [line for line in tokens if line]
  if not lines or not lines[0].startswith("OFF"):
    raise ValueError("not an OFF file (no 'OFF' header)")
  # Some ModelNet files run the counts into the header line: "OFF490 518 0".
  counts = lines[0][3:].split() or lines[1].split()
  body = lines[1:] if lines[0][3:].split() else lines[2:]
  num_vertices, num_faces = int(counts[0]), int(counts[1])
  vertices = np.array([[float(v) for v in line.split()[:3]] for line in body[:num_vertices]], np.float32)
  triangles = []
  for line in body[num_vertices:num_vertices + num_faces]:
    face = [int(v) for v in line.split()]
    corners = face[1:1 + face[0]]
    triangles += [(corners[0], corners[k], corners[k + 1]) for k in range(1, len(corners) - 1)]
  if len(vertices) != num_vertices or not triangles:
    raise ValueError(f"OFF file declares {num_vertices} vertices and {num_faces} faces but holds "
                     f"{len(vertices)} vertices and {len(triangles)} triangles")
  return vertices, np.asarray(triangles, np.int64)


def voxelise_mesh(vertices: np.ndarray, triangles: np.ndarray, resolution: int) -> np.ndarray:
  """Bool (R, R, R): the mesh scaled to fit the grid (longest side R - 2 voxels, centred), its surface
  marked by sampling each triangle at sub-voxel spacing, and the enclosed interior filled."""
  low, high = vertices.min(0), vertices.max(0)
  # The mesh spans (1, R - 1) strictly, so a face on the bounding box marks the voxel inside it, not the next.
  scale = (resolution - 2) * (1 - 1e-5) / max(float(np.max(high - low)), 1e-12)
  v = (vertices - (low + high) / 2) * scale + resolution / 2  # in voxel units
  a, b, c = v[triangles[:, 0]], v[triangles[:, 1]], v[triangles[:, 2]]
  longest = np.max(np.stack([np.linalg.norm(b - a, axis=1), np.linalg.norm(c - a, axis=1),
                             np.linalg.norm(c - b, axis=1)]), axis=0)
  grid = np.zeros((resolution,) * 3, bool)
  for steps in np.unique(np.ceil(longest * 2).astype(int) + 1):  # half-voxel spacing along each edge
    which = np.ceil(longest * 2).astype(int) + 1 == steps
    s, t = np.meshgrid(np.linspace(0, 1, steps), np.linspace(0, 1, steps), indexing="ij")
    keep = s + t <= 1
    s, t = s[keep], t[keep]
    points = (a[which, None] + s[None, :, None] * (b[which, None] - a[which, None])
              + t[None, :, None] * (c[which, None] - a[which, None])).reshape(-1, 3)
    index = np.clip(np.floor(points).astype(int), 0, resolution - 1)
    grid[index[:, 0], index[:, 1], index[:, 2]] = True
  return scipy.ndimage.binary_fill_holes(grid)


# --- Reading any voxel file, resampling.

def resample(grid: np.ndarray, resolution: int) -> np.ndarray:
  """A bool grid (any cube size) at resolution^3: trilinear interpolation of the occupancy, then > 0.5."""
  if grid.shape[0] != grid.shape[1] or grid.shape[1] != grid.shape[2]:
    raise ValueError(f"voxel grids must be cubes, got {grid.shape}")
  if grid.shape[0] == resolution:
    return grid.astype(bool)
  zoomed = scipy.ndimage.zoom(grid.astype(np.float32), resolution / grid.shape[0], order=1, grid_mode=True,
                              mode="grid-constant")
  return zoomed > 0.5


def _array_grid(path: str) -> np.ndarray:
  if path.endswith(".npz"):
    with np.load(path) as archive:
      if not archive.files:
        raise ValueError(f"{path}: empty .npz")
      array = archive["voxels"] if "voxels" in archive.files else archive[archive.files[0]]
  else:
    array = np.load(path)
  if array.ndim == 4 and array.shape[-1] == 1:
    array = array[..., 0]
  return array


class VoxelGridRankError(ValueError):
  """A voxel file holds an array that is not a D x H x W (x 1) grid."""


def read_voxel_file(path: str, resolution: int) -> np.ndarray:
  """The bool (R, R, R) occupancy of a .binvox, .npy, .npz or .off file at `resolution`."""
  if path.endswith(".binvox"):
    grid = read_binvox(path)
  elif path.endswith(".off"):
    return voxelise_mesh(*read_off(path), resolution)
  else:
    grid = _array_grid(path)
  if grid.ndim != 3:
    raise VoxelGridRankError(f"{path}: a voxel grid must be D x H x W or D x H x W x 1, got shape {grid.shape}; "
                             f"store one grid per file.")
  return resample(grid > 0.5 if grid.dtype != bool else grid, resolution)


def _voxel_names(root: str, split: str) -> tuple[list[str], list[str] | None]:
  """(relative paths, class names or None): the ModelNet layout <class>/<split>/file when present."""
  classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, split)))
  names = []
  if classes:
    for cls in classes:
      directory = os.path.join(root, cls, split)
      names += [os.path.join(cls, split, f) for f in sorted(os.listdir(directory)) if f.endswith(VOXEL_SUFFIXES)]
    return names, classes
  return folder.files_under(root, VOXEL_SUFFIXES), None


class VoxelFolderSource:
  """source[i] -> {"voxels": f32[R, R, R, 1] (+ "label")}, or None for a file that cannot be read (warned once
  with its path, then skipped by the pipeline). A file holding an array of the wrong rank is an error."""

  def __init__(self, path: str, *, resolution: int, split: str = "train"):
    if not path or not os.path.isdir(path):
      raise DatasetNotFoundError(f"No voxel folder at {path!r}. {VOXEL_FOLDER_HINT}")
    self._path, self._resolution = path, resolution
    self._names, self.classes = _voxel_names(path, split)
    if not self._names:
      raise DatasetNotFoundError(f"No voxel files ({', '.join(VOXEL_SUFFIXES)}) in {path!r}. {VOXEL_FOLDER_HINT}")
    self._reported = set()

  def __len__(self) -> int:
    return len(self._names)

  def file_path(self, index: int) -> str:
    return os.path.join(self._path, self._names[index])

  def __getitem__(self, index: int) -> dict | None:
    path = self.file_path(index)
    try:
      grid = read_voxel_file(path, self._resolution)
    except VoxelGridRankError:
      raise
    except (OSError, ValueError, EOFError, IndexError, UnicodeDecodeError) as error:
      folder.warn_once(self._reported, path, f"Skipping unreadable voxel file {path}: {error}")
      return None
    element = {"voxels": grid[..., None].astype(np.float32)}
    if self.classes is not None:
      element["label"] = np.int32(self.classes.index(self._names[index].split(os.sep)[0]))
    return element

  def __repr__(self) -> str:
    return f"VoxelFolderSource({self._path!r}, {len(self)} files)"
