"""Reading PyTorch weight files without torch, and converting them to Flax variables."""
import io
import os
import pickle
import zipfile

import jax
import numpy as np
import pytest

from gans.metrics import inception, testing, torch_pickle, weights

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
EXPECTED = os.path.join(FIXTURES, "tensors_expected.npz")


@pytest.fixture(scope="module")
def expected():
  with np.load(EXPECTED) as data:
    return {name: data[name] for name in data.files}


@pytest.mark.parametrize("file", ["tensors_zip.pth", "tensors_legacy.pth"])
def test_reads_every_tensor_of_both_formats_exactly(file, expected):
  state_dict = torch_pickle.load(os.path.join(FIXTURES, file))
  assert list(state_dict) == list(expected)  # state-dict order survives
  for name, value in expected.items():
    loaded = state_dict[name]
    assert loaded.shape == value.shape, name
    if name == "bfloat16":
      assert loaded.dtype.name == "bfloat16"
      loaded = loaded.astype(np.float32)
    assert loaded.dtype == value.dtype, name
    np.testing.assert_array_equal(loaded, value, err_msg=name)


@pytest.mark.parametrize("file", ["tensors_zip.pth", "tensors_legacy.pth"])
def test_views_of_one_storage_become_independent_arrays(file):
  state_dict = torch_pickle.load(os.path.join(FIXTURES, file))
  base, transposed, sliced = state_dict["base"], state_dict["base_transposed"], state_dict["base_slice"]
  np.testing.assert_array_equal(transposed, base.T)
  np.testing.assert_array_equal(sliced, base[1:, ::2])
  base[1, 0] = 1234.0
  assert transposed[0, 1] != 1234.0 and sliced[0, 0] != 1234.0


class _RunsCode:
  def __reduce__(self):
    return (os.system, ("echo this must never run",))


def _zip_file_with_pickle(tmp_path, payload: bytes) -> str:
  path = str(tmp_path / "evil.pth")
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("evil/data.pkl", payload)
    archive.writestr("evil/byteorder", "little")
  return path


def test_zip_file_with_foreign_global_is_refused(tmp_path):
  path = _zip_file_with_pickle(tmp_path, pickle.dumps({"weight": _RunsCode()}, protocol=2))
  with pytest.raises(torch_pickle.UnsupportedContentError, match="posix.system|os.system"):
    torch_pickle.load(path)


def test_legacy_file_with_foreign_global_is_refused(tmp_path):
  stream = io.BytesIO()
  for header in (torch_pickle.LEGACY_MAGIC_NUMBER, torch_pickle.LEGACY_PROTOCOL_VERSION, {"little_endian": True}):
    pickle.dump(header, stream, protocol=2)
  pickle.dump({"weight": _RunsCode()}, stream, protocol=2)
  path = tmp_path / "evil_legacy.pth"
  path.write_bytes(stream.getvalue())
  with pytest.raises(torch_pickle.UnsupportedContentError, match="system"):
    torch_pickle.load(str(path))


def test_legacy_header_may_not_hold_globals(tmp_path):
  stream = io.BytesIO()
  pickle.dump(_RunsCode(), stream, protocol=2)  # where the magic number belongs
  path = tmp_path / "evil_header.pth"
  path.write_bytes(stream.getvalue())
  with pytest.raises(torch_pickle.UnsupportedContentError):
    torch_pickle.load(str(path))


def test_storage_shorter_than_its_tensor_is_refused(tmp_path):
  source = os.path.join(FIXTURES, "tensors_zip.pth")
  path = str(tmp_path / "truncated.pth")
  with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as truncated:
    for name in original.namelist():
      data = original.read(name)
      truncated.writestr(name, data[:-4] if name.endswith("/data/0") else data)
  with pytest.raises(torch_pickle.UnsupportedContentError, match="bytes"):
    torch_pickle.load(path)


def test_conversion_transposes_layouts_and_splits_collections():
  rng = np.random.default_rng(0)
  conv_OIHW = rng.standard_normal((4, 3, 1, 7)).astype(np.float32)
  fc = rng.standard_normal((10, 2048)).astype(np.float32)
  state_dict = {
      "Mixed_6b.branch7x7_2.conv.weight": conv_OIHW,
      "Mixed_6b.branch7x7_2.bn.weight": np.full(4, 2.0, np.float32),
      "Mixed_6b.branch7x7_2.bn.bias": np.full(4, 3.0, np.float32),
      "Mixed_6b.branch7x7_2.bn.running_mean": np.full(4, 4.0, np.float32),
      "Mixed_6b.branch7x7_2.bn.running_var": np.full(4, 5.0, np.float32),
      "Mixed_6b.branch7x7_2.bn.num_batches_tracked": np.int64(0),
      "fc.weight": fc,
      "fc.bias": np.ones(10, np.float32),
      "AuxLogits.fc.weight": np.ones((10, 768), np.float32),
  }
  variables = weights.state_dict_to_variables(state_dict)
  block = variables["params"]["Mixed_6b"]["branch7x7_2"]
  kernel_HWIO = block["conv"]["kernel"]
  assert kernel_HWIO.shape == (1, 7, 3, 4)
  assert kernel_HWIO[0, 5, 2, 1] == conv_OIHW[1, 2, 0, 5]
  assert block["bn"]["scale"][0] == 2.0 and block["bn"]["bias"][0] == 3.0
  stats = variables["batch_stats"]["Mixed_6b"]["branch7x7_2"]["bn"]
  assert stats["mean"][0] == 4.0 and stats["var"][0] == 5.0
  np.testing.assert_array_equal(variables["params"]["fc"]["kernel"], fc.T)
  assert set(variables["params"]["fc"]) == {"kernel"}  # the IS logits use no bias
  assert "AuxLogits" not in variables["params"]


def test_unknown_state_dict_entry_fails_loudly():
  with pytest.raises(ValueError, match="Mixed_5b.branch1x1.conv.bias"):
    weights.state_dict_to_variables({"Mixed_5b.branch1x1.conv.bias": np.zeros(3, np.float32)})


@pytest.fixture(scope="module")
def fixture_state_dict():
  rows = testing.read_params_table(os.path.join(FIXTURES, "fid_inception_params.json"))
  state_dict = testing.deterministic_state_dict(rows)
  state_dict["fc.weight"] = np.random.default_rng(0).standard_normal((1008, 2048)).astype(np.float32)
  state_dict["fc.bias"] = np.zeros(1008, np.float32)
  return state_dict


def test_converted_variables_are_exactly_what_the_module_declares(fixture_state_dict):
  declared = jax.eval_shape(lambda: inception.FIDInceptionV3().init(
      jax.random.key(0), np.zeros((1, 75, 75, 3), np.float32), with_logits=True))
  converted = weights.state_dict_to_variables(fixture_state_dict)
  declared_shapes = jax.tree.map(lambda leaf: leaf.shape, declared)
  converted_shapes = jax.tree.map(lambda leaf: leaf.shape, converted)
  assert converted_shapes == declared_shapes


def test_npz_variables_round_trip(tmp_path, fixture_state_dict):
  converted = weights.state_dict_to_variables(fixture_state_dict)
  path = str(tmp_path / "inception.npz")
  weights.save_variables_npz(path, converted)
  loaded = weights.load_fid_inception(path)
  assert jax.tree.structure(loaded) == jax.tree.structure(converted)
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(converted)))
