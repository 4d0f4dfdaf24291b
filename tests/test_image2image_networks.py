"""pix2pix/CycleGAN networks against the official PyTorch outputs (tests/fixtures/image2image, made as
/work/shared/fixtures/image2image/README.md says), through gans.layers and through XLA's own convolutions."""
import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans.variants.image2image import convert, networks

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "image2image")
CASES = {"unet_generator": "UnetGenerator", "resnet_generator": "ResnetGenerator",
         "nlayer_discriminator": "NLayerDiscriminator"}


def _fixture(name):
  config = json.load(open(os.path.join(FIXTURES, f"{name}_config.json")))
  weights = dict(np.load(os.path.join(FIXTURES, f"{name}_weights.npz")))
  io = dict(np.load(os.path.join(FIXTURES, f"{name}_io.npz")))
  kwargs = {k: v for k, v in config["constructor_kwargs"].items() if k != "norm_layer"}
  return config, weights, io, dict(kwargs, norm_layer=config["norm"])


def _nchw(x):
  return np.asarray(x).transpose(0, 3, 1, 2)


def _assert_close(got, want, name):
  # Magnitude-scaled 1e-4 (the fixture README's advice): pre-activation taps reach |73|.
  scale = max(1.0, float(np.abs(want).max()))
  diff = float(np.abs(got - want).max())
  assert diff <= 1e-4 * scale, f"{name}: max abs diff {diff} (scale {scale})"


def _outputs_and_taps(module, variables, x_NCHW, dtype):
  """{fixture key: NCHW array} of the module in eval() mode (the fixture's: running statistics, no dropout)."""
  variables = jax.tree.map(lambda v: jnp.asarray(v, dtype), variables)
  x = jnp.asarray(x_NCHW.transpose(0, 2, 3, 1), dtype)
  y, taps = jax.jit(lambda v, x: module.apply(v, x, train=False, mutable=["intermediates"]))(variables, x)
  arrays = {"output": _nchw(y)}
  for path, value in flax.traverse_util.flatten_dict(taps.get("intermediates", {})).items():
    arrays["output_pre_tanh" if path[-1] == "pre_tanh" else path[-1]] = _nchw(value[0])
  return arrays


@pytest.mark.parametrize("fast_layers", [True, False], ids=["gans.layers", "xla"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_and_taps_match_the_official_network(name, fast_layers):
  # Two float32 computations of a deep network each carry rounding error: the official output is 4.7e-5 from
  # the float64 value of the same network (UnetGenerator, pix2pix's innermost 2x2 conv as a matmul), and ours
  # 5.4e-5, so comparing the two in float32 tests the roundings' alignment as much as the architecture. Hence
  # the architecture in float64 (gans.layers' direct forms) against the fixture, and our float32 computation
  # (Winograd on the CPU for the wide layers) against our float64 one, each within 1e-4.
  config, weights, io, kwargs = _fixture(name)
  module, variables = convert.load_official(CASES[name], weights, prefix=config["weight_prefix"],
                                            fast_layers=fast_layers, **kwargs)
  with jax.enable_x64(True):
    exact = _outputs_and_taps(module, variables, io["input"], jnp.float64)
  assert sorted(exact) == sorted(io.keys() - {"input"})  # every stored array compared
  for key, value in exact.items():
    assert value.dtype == np.float64
    _assert_close(value, io[key], key)
  for key, value in _outputs_and_taps(module, variables, io["input"], jnp.float32).items():
    assert value.dtype == np.float32
    _assert_close(value, exact[key], f"float32 {key}")


def test_train_mode_uses_batch_statistics_and_dropout():
  config, weights, io, kwargs = _fixture("unet_generator")
  module, variables = convert.load_official("UnetGenerator", weights, prefix="G/", **kwargs)
  x = jnp.asarray(io["input"].transpose(0, 2, 3, 1))
  apply = jax.jit(lambda key: module.apply(variables, x, train=True, rngs={"dropout": key},
                                           mutable=["batch_stats"])[0])
  a, b = apply(jax.random.key(0)), apply(jax.random.key(1))
  assert float(jnp.abs(a - b).max()) > 0.1  # dropout is the noise
  assert float(jnp.abs(a - jax.jit(lambda: module.apply(variables, x, train=False))()).max()) > 0.1


def test_a_unet_of_any_depth_and_the_generator_names():
  g = networks.define_generator("unet", 2, ngf=4, num_downs=5, use_dropout=True)
  variables = jax.eval_shape(lambda: g.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)), train=False))
  output = jax.eval_shape(lambda v: g.apply(v, jnp.zeros((2, 32, 32, 1)), train=False), variables)
  assert output.shape == (2, 32, 32, 2)
  # Five levels: 4 -> 8 -> 16 -> 32 -> 32 channels, dropout only in none of them (num_downs - 5 = 0 middle blocks).
  assert networks.unet_levels(2, 5, 4, True) == ((2, 4, False), (4, 8, False), (8, 16, False), (16, 32, False),
                                                 (32, 32, False))
  assert networks.unet_levels(2, 7, 4, True)[4:6] == ((32, 32, True), (32, 32, True))
  with pytest.raises(ValueError, match="divisible by 32"):
    jax.eval_shape(lambda: g.init(jax.random.key(0), jnp.zeros((1, 48, 48, 1)), train=False))
  assert networks.define_generator("unet_256", 3).num_downs == 8
  assert networks.define_generator("resnet_6blocks", 3).n_blocks == 6
  with pytest.raises(ValueError, match="valid: basic, n_layers, pixel"):
    networks.define_discriminator("patch")
  with pytest.raises(ValueError, match="valid: unet_128"):
    networks.define_generator("unet_512", 3)


def test_pixel_discriminator_names_and_instance_norm_without_parameters():
  module, shape = convert.build_official("PixelDiscriminator", input_nc=6, ndf=4, norm="instance")
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(shape), train=False))
  names = sorted(convert.official_state_dict(variables).values())
  assert names == ["net.0.bias", "net.0.weight", "net.2.bias", "net.2.weight", "net.5.bias", "net.5.weight"]
  x = jax.random.normal(jax.random.key(1), (2, 5, 5, 3)) * 3 + 1
  normed = jax.jit(networks.instance_norm)(x)
  np.testing.assert_allclose(normed.mean(axis=(1, 2)), 0, atol=1e-5)
  np.testing.assert_allclose(normed.var(axis=(1, 2)), 1, rtol=1e-3)


def test_a_state_dict_for_other_arguments_is_refused_by_name():
  config, weights, _, kwargs = _fixture("resnet_generator")
  with pytest.raises(KeyError, match="G/model.16.conv_block.1.bias"):
    convert.load_official("ResnetGenerator", weights, prefix="G/", **dict(kwargs, n_blocks=9))
  with pytest.raises(ValueError, match="does not use, e.g. 'G/extra.weight'"):
    convert.load_official("ResnetGenerator", {**weights, "G/extra.weight": np.zeros(3)}, prefix="G/", **kwargs)
  with pytest.raises(ValueError, match="Unknown official class"):
    convert.load_official("Unet", weights)
