"""Voxel data: procedural solids are what they say, binvox round trips, folders of voxel files, bad inputs."""
import os

import numpy as np
import pytest

from gans import data
from gans.data import voxels

R = 32
VOXEL = (2.0 / R) ** 3  # volume of one voxel in the [-1, 1]^3 grid


def _volume(grid):
  return grid.sum() * VOXEL


@pytest.mark.parametrize("kind, params, volume", [
    ("box", {"half": (0.5, 0.25, 0.375)}, 8 * 0.5 * 0.25 * 0.375),
    ("sphere", {"radius": 0.7}, 4 / 3 * np.pi * 0.7 ** 3),
    ("cylinder", {"radius": 0.5, "half_height": 0.5}, np.pi * 0.5 ** 2 * 1.0),
    ("cone", {"radius": 0.6, "half_height": 0.5}, np.pi * 0.6 ** 2 * 1.0 / 3),
    ("torus", {"major": 0.5, "minor": 0.2}, 2 * np.pi ** 2 * 0.5 * 0.2 ** 2),
])
def test_primitive_volumes_match_their_formulas(kind, params, volume):
  # Heights are whole numbers of voxels (1/16 here), so only the curved sides are approximate.
  np.testing.assert_allclose(_volume(voxels.solid(kind, params, R)), volume, rtol=0.06)


def _mirrored(grid, axis):
  return np.array_equal(grid, np.flip(grid, axis))


def test_each_class_has_its_symmetries():
  # Axes (x, y, z), y up. Sphere, box, cylinder, torus: mirror-symmetric in every axis. Cone: not upside down.
  # Table: symmetric left-right and front-back; chair: left-right only (its back is at -z).
  rng = np.random.default_rng(0)
  expected = {"sphere": (1, 1, 1), "box": (1, 1, 1), "cylinder": (1, 1, 1), "torus": (1, 1, 1),
              "cone": (1, 0, 1), "table": (1, 0, 1), "chair": (1, 0, 0)}
  for kind, symmetric in expected.items():
    params, _ = voxels.random_params(kind, rng)
    grid = voxels.solid(kind, params, R)
    assert grid.any() and not grid.all(), kind
    assert tuple(int(_mirrored(grid, axis)) for axis in range(3)) == symmetric, kind


def test_furniture_stands_on_legs_under_a_top():
  params, _ = voxels.random_params("table", np.random.default_rng(1))
  table = voxels.solid("table", params, R)
  per_level = table.sum(axis=(0, 2))  # occupied voxels per height (y)
  levels = np.flatnonzero(per_level)
  # The top is the widest level; below it only the four legs (the same small area at every level).
  assert per_level.argmax() > levels[len(levels) // 2]
  legs = per_level[levels[0]:levels[0] + 3]
  assert np.all(legs == legs[0]) and legs[0] < per_level.max() / 4
  chair_params, _ = voxels.random_params("chair", np.random.default_rng(1))
  chair = voxels.solid("chair", chair_params, R)
  top = np.flatnonzero(chair.any(axis=(0, 2)))[-1]
  back = np.flatnonzero(chair[:, top].any(axis=0))
  assert back.max() < R // 2  # the highest voxels are the back, at -z


def test_shapes_source_is_deterministic_labelled_and_posed():
  source = voxels.ShapesSource(resolution=16, size=28, seed=3)
  again = voxels.ShapesSource(resolution=16, size=28, seed=3)
  other = voxels.ShapesSource(resolution=16, size=28, seed=4)
  assert [int(source[i]["label"]) for i in range(7)] == list(range(7))
  assert np.array_equal(source[5]["voxels"], again[5]["voxels"])
  assert not np.array_equal(source[5]["voxels"], other[5]["voxels"])
  assert source[0]["voxels"].shape == (16, 16, 16, 1) and source[0]["voxels"].dtype == np.float32
  spheres = [source[i]["voxels"].sum() for i in range(1, 28, 7)]
  assert len(set(spheres)) == len(spheres)  # random sizes
  with pytest.raises(ValueError, match="Unknown or no shape classes \\['pyramid'\\]"):
    voxels.ShapesSource(resolution=16, size=8, classes=("box", "pyramid"))


def test_binvox_round_trip(tmp_path):
  grid = np.random.default_rng(0).random((6, 7, 5)) > 0.6
  grid[:, :, :] |= np.arange(5) == 0  # long runs as well as short ones
  path = str(tmp_path / "shape.binvox")
  voxels.write_binvox(path, grid)
  assert np.array_equal(voxels.read_binvox(path), grid)
  # binvox's order: index = x * (Z * Y) + z * Y + y, so a single voxel at (x, y, z) = (1, 2, 3) is run 1*35+3*7+2.
  single = np.zeros((6, 7, 5), bool)
  single[1, 2, 3] = True
  voxels.write_binvox(path, single)
  with open(path, "rb") as file:
    runs = np.frombuffer(file.read().split(b"data\n", 1)[1], np.uint8)
  assert np.repeat(runs[0::2], runs[1::2]).nonzero()[0].tolist() == [1 * 35 + 3 * 7 + 2]


def _write_off(path, vertices, faces):
  with open(path, "w") as file:
    file.write(f"OFF\n{len(vertices)} {len(faces)} 0\n")
    file.writelines(" ".join(map(str, v)) + "\n" for v in vertices)
    file.writelines(f"{len(f)} " + " ".join(map(str, f)) + "\n" for f in faces)


def test_voxel_folder_reads_every_format_with_modelnet_labels(tmp_path):
  cube = voxels.solid("box", {"half": (0.5, 0.5, 0.5)}, 8)
  for cls in ("bed", "chair"):
    os.makedirs(tmp_path / cls / "train")
    os.makedirs(tmp_path / cls / "test")
  voxels.write_binvox(str(tmp_path / "bed" / "train" / "a.binvox"), voxels.solid("sphere", {"radius": 0.8}, 16))
  np.save(tmp_path / "bed" / "train" / "b.npy", cube.astype(np.uint8))
  np.savez(tmp_path / "chair" / "train" / "c.npz", voxels=cube[..., None])
  corners = [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
  quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
  _write_off(tmp_path / "chair" / "train" / "d.off", corners, quads)
  np.save(tmp_path / "chair" / "test" / "held_out.npy", cube)
  config = data.default_config()
  config.source, config.path, config.resolution = "voxel_folder", str(tmp_path), 8
  source = data.make_source(config)
  assert len(source) == 4 and source.classes == ["bed", "chair"]
  elements = [source[i] for i in range(4)]
  assert [int(e["label"]) for e in elements] == [0, 0, 1, 1]
  assert all(e["voxels"].shape == (8, 8, 8, 1) for e in elements)
  assert np.array_equal(elements[1]["voxels"][..., 0], cube) and np.array_equal(elements[2]["voxels"][..., 0], cube)
  assert elements[0]["voxels"].sum() == voxels.resample(voxels.solid("sphere", {"radius": 0.8}, 16), 8).sum() > 0
  # The unit cube mesh fills the grid but its one-voxel margin: a solid 6^3 block.
  assert elements[3]["voxels"].sum() == 6 ** 3 and elements[3]["voxels"][1:7, 1:7, 1:7].all()


def test_unreadable_file_is_skipped_by_path_and_wrong_rank_names_the_file(tmp_path):
  np.save(tmp_path / "good.npy", np.ones((4, 4, 4)))
  (tmp_path / "broken.binvox").write_bytes(b"#binvox 1\ndim 4 4 4\ndata\n\x01")
  source = voxels.VoxelFolderSource(str(tmp_path), resolution=4)
  broken = source._names.index("broken.binvox")
  with pytest.warns(UserWarning, match=r"Skipping unreadable voxel file .*broken\.binvox"):
    assert source[broken] is None
  batch = next(iter(data.batched_dataset(source, batch_size=2, seed=0)))
  assert batch["voxels"].shape == (2, 4, 4, 4, 1) and batch["voxels"].all()
  np.save(tmp_path / "flat.npy", np.ones((4, 4)))
  source = voxels.VoxelFolderSource(str(tmp_path), resolution=4)
  with pytest.raises(ValueError, match=r"flat\.npy: a voxel grid must be D x H x W .* got shape \(4, 4\)"):
    source[source._names.index("flat.npy")]
  with pytest.raises(data.DatasetNotFoundError, match="No voxel folder .*ModelNet10"):
    voxels.VoxelFolderSource(str(tmp_path / "missing"), resolution=4)
