"""Voxel samples: rendered pictures, marching-cubes meshes, and a gan3d run that resumes, samples and exports."""
import os

import numpy as np
import pytest

from gans import report, sampling, voxel_views
from gans.data import voxels
from tests.test_training import assert_resumed_equals_straight, tiny_config, train_straight_and_resumed


def test_a_sphere_renders_as_a_disc_lit_from_the_upper_left():
  radius, size = 0.7, 64
  picture = voxel_views.render(voxels.solid("sphere", {"radius": radius}, 32), size)
  covered = picture < 1.0
  # Orthographic: a disc of the sphere's radius, widened by the voxels' corners by less than one voxel (2/32).
  def disc_area(r):
    return np.pi * (r / 1.75 * size / 2) ** 2
  assert disc_area(radius) < covered.sum() < disc_area(radius + 2 / 32)
  rows, columns = np.nonzero(covered)
  np.testing.assert_allclose([rows.mean(), columns.mean()], [(size - 1) / 2] * 2, atol=0.5)  # centred
  upper_left = picture[:size // 2, :size // 2][covered[:size // 2, :size // 2]].mean()
  lower_right = picture[size // 2:, size // 2:][covered[size // 2:, size // 2:]].mean()
  assert upper_left > lower_right + 0.3
  assert np.all(voxel_views.render(np.zeros((8, 8, 8, 1))) == 1.0)  # nothing: white


def test_picture_of_voxel_samples_is_a_grid_of_renders():
  samples = np.stack([voxels.solid("box", {"half": (0.5, 0.5, 0.5)}, 8)[..., None]] * 4).astype(np.float32)
  picture = report.to_picture(samples)
  assert picture.shape == (2 * 17 + 1, 2 * 17 + 1) and picture.dtype == np.uint8
  assert picture.min() < 200  # the solids are drawn


def _edges(triangles):
  edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
  return np.unique(edges, axis=0, return_counts=True)[1]


@pytest.mark.parametrize("mesh_format", ["obj", "ply"])
def test_meshes_are_closed_surfaces_of_the_grid(tmp_path, mesh_format):
  pytest.importorskip("skimage")
  grid = voxels.solid("torus", {"major": 0.5, "minor": 0.25}, 16)
  vertices, triangles = voxel_views.surface_mesh(grid[..., None].astype(np.float32))
  assert len(triangles) and np.all(_edges(triangles) == 2)  # closed: each edge shared by two triangles
  assert vertices.min() >= -0.5 and vertices.max() <= 15.5  # within half a voxel of the grid
  path = voxel_views.export_meshes(grid[None, ..., None], str(tmp_path), mesh_format)[0]
  text = open(path).read()
  if mesh_format == "obj":
    assert text.count("\nv ") + text.startswith("v ") == len(vertices) and text.count("\nf ") == len(triangles)
  else:
    assert f"element vertex {len(vertices)}\n" in text and f"element face {len(triangles)}\n" in text
  with pytest.raises(ValueError, match="Unknown mesh format 'stl'"):
    voxel_views.export_meshes(grid[None, ..., None], str(tmp_path), "stl")


def test_gan3d_resumes_exactly_then_samples_and_exports_meshes(tmp_path):
  pytest.importorskip("skimage")
  config = tiny_config("gan3d_shapes", steps=2, checkpoint_every=1, log_every=1, sample_every=2)
  with config.unlocked():
    config.data.size = 16
    config.eval.metrics = ()  # the voxel probe has its own test (test_gan3d.py)
  straight, interrupted = train_straight_and_resumed(config, str(tmp_path), stop_at=1)
  assert os.listdir(os.path.join(straight, "samples")) == ["step_0000002.png"]
  assert_resumed_equals_straight(config, straight, interrupted)

  samples = np.load(sampling.write_samples(config, straight, 3, export="obj"))["samples"]
  assert samples.shape == (3, 8, 8, 8, 1) and 0 <= samples.min() and samples.max() <= 1
  assert sorted(os.listdir(os.path.join(straight, "meshes"))) == [f"sample_{i:04d}.obj" for i in range(3)]
  assert os.path.exists(os.path.join(straight, "samples.png"))
  with pytest.raises(ValueError, match="Unknown --export format 'stl'"):
    sampling.write_samples(config, straight, 3, export="stl")
