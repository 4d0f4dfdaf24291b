"""FID Inception parity with pytorch-fid 0.3.0 on the reference fixtures (README "Fixture B").

The weights are regenerated from the fixture table by its documented procedure
(gans.metrics.testing), checked against its checksums, converted with the same
name mapping the .pth loader uses, and run through the Flax network.
"""
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from gans.metrics import inception, testing, weights

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELATIVE_TOLERANCE = 1e-4  # of the reference's largest magnitude


@pytest.fixture(scope="module")
def rows():
  return testing.read_params_table(os.path.join(FIXTURES, "fid_inception_params.json"))


@pytest.fixture(scope="module")
def reference():
  with np.load(os.path.join(FIXTURES, "fid_inception_io.npz")) as data:
    return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def state_dicts(rows):
  return {"plain": testing.deterministic_state_dict(rows), "he": testing.deterministic_state_dict(rows, he=True)}


def test_regenerated_weights_reproduce_every_checksum(rows, state_dicts):
  assert len(rows) == 564
  for row in rows:
    name = row["inception_name"]
    plain = state_dicts["plain"][name]
    assert list(plain.shape) == row["shape"] and plain.dtype.name == row["dtype"], name
    assert math.fsum(plain.ravel().tolist()) == row["sum"], name  # exactly rounded sums: bit-exact tensors
    first = row["first"]  # empty for the 0-d num_batches_tracked
    np.testing.assert_array_equal(plain.ravel()[:len(first)], np.asarray(first, plain.dtype), err_msg=name)
    if row["kind"] == "conv_weight":
      assert math.fsum(state_dicts["he"][name].ravel().tolist()) == row["sum_he"], name


FC_KERNEL = np.random.default_rng(0).standard_normal((2048, 1008)).astype(np.float32) / np.sqrt(2048.0)


@pytest.fixture(scope="module")
def outputs(state_dicts, reference):
  """Network outputs for both weight variants and both inputs, through one jitted function."""
  network = inception.FIDInceptionV3()

  @jax.jit
  def run(variables, images_unit_NHWC):
    result, state = network.apply(variables, images_unit_NHWC, with_logits=True, mutable=["intermediates"])
    return result, {name: value[0] for name, value in state["intermediates"].items()}

  results = {}
  for variant, state_dict in state_dicts.items():
    variables = weights.state_dict_to_variables(state_dict)
    variables["params"]["fc"] = {"kernel": FC_KERNEL}  # the fixture network has no fc; IS logits need one
    for size in ("64", "299"):
      images_NHWC = np.transpose(reference[f"x{size}"], (0, 2, 3, 1))
      results[variant, size] = jax.tree.map(np.asarray, run(variables, images_NHWC))
  return results


def _max_abs_diff_within_tolerance(actual, expected):
  difference = float(np.max(np.abs(actual - expected)))
  scale = float(np.max(np.abs(expected)))
  assert difference <= RELATIVE_TOLERANCE * scale, (difference, scale)
  return difference


@pytest.mark.parametrize("variant, prefix", [("plain", ""), ("he", "he_")])
@pytest.mark.parametrize("size", ["64", "299"])
def test_pool3_features_match_pytorch_fid(outputs, reference, variant, prefix, size):
  features = outputs[variant, size][0]["pool3"]
  expected = reference[f"{prefix}feat{size}"]
  assert features.shape == expected.shape
  _max_abs_diff_within_tolerance(features, expected)


def test_he_features_tell_images_apart(outputs, reference):
  # Guards the check above: on the He variant the input matters, so a wrong resize would fail it.
  between_images = np.abs(reference["he_feat64"][0] - reference["he_feat64"][1]).max()
  ours = np.abs(outputs["he", "64"][0]["pool3"][0] - reference["he_feat64"][0]).max()
  assert ours < 1e-3 * between_images


def test_resized_input_is_bit_exact(tmp_path, reference):
  """pytorch-fid's resize, bit for bit, as production compiles it. The match relies on LLVM contracting the
  interpolation's a * w + b * v into a fused multiply-add, as PyTorch's kernel computes it; the tests'
  optimisation level 0 (conftest.py) does not, and is 1 ulp off in a quarter of the pixels, so the resize runs in
  a process with the default compiler settings."""
  np.save(tmp_path / "x.npy", np.transpose(reference["x64"][:1], (0, 2, 3, 1)))
  production_flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if f != "--xla_backend_optimization_level=0"]
  env = {name: value for name, value in os.environ.items() if name != "XLA_FLAGS"}
  if production_flags:
    env["XLA_FLAGS"] = " ".join(production_flags)
  code = ("import sys, jax, numpy as np; from gans.metrics import inception; "
          "np.save(sys.argv[2], np.asarray(jax.jit(inception.resize_bilinear)(np.load(sys.argv[1]))))")
  subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.npy"), str(tmp_path / "resized.npy")], env=env,
                 cwd=ROOT, check=True)
  resized = np.load(tmp_path / "resized.npy")
  np.testing.assert_array_equal(np.transpose(resized, (0, 3, 1, 2)), reference["x64_0_resized299"])


@pytest.mark.parametrize("block", ["block0", "block1", "block2"])
def test_block_outputs_match_pytorch_fid(outputs, reference, block):
  ours_NCHW = np.transpose(outputs["plain", "64"][1][block][:1], (0, 3, 1, 2))
  expected = reference[f"x64_0_{block}"]
  assert ours_NCHW.shape == expected.shape
  _max_abs_diff_within_tolerance(ours_NCHW, expected)


def test_logits_are_pool3_times_fc_kernel_without_bias(outputs):
  result = outputs["he", "299"][0]
  expected = result["pool3"].astype(np.float64) @ FC_KERNEL.astype(np.float64)
  assert result["logits_unbiased"].shape == (2, 1008)
  np.testing.assert_allclose(result["logits_unbiased"], expected, rtol=0, atol=1e-5 * np.abs(expected).max())
