"""StyleGAN2 against NVlabs' official networks (fixture A), the converter, and the training pieces.

The fixture (tests/fixtures/stylegan2_*) holds an official G and D with perturbed weights,
their inputs and outputs; see shared/fixtures/README.md for how it was made. Its README
measures 4e-6 between the official fused and non-fused paths in float32, so 1e-4 is a
tolerance with room for rounding and none for a wrong architecture (outputs respond to
noise, mixing and mbstd grouping by 1e-3 to 4).
"""
import json
import pathlib

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans.variants.stylegan2 import (
  Discriminator, Generator, channels_from_base, generator_sample, infer_discriminator_config,
  infer_generator_config, initial_model_state, lazy_regularization, load_official, mix_styles,
  official_state_dict, path_length_penalty, truncate, update_w_avg)
from gans.variants.stylegan2.layers import minibatch_std

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
TOLERANCE = 1e-4


def max_abs_diff(got, want):
  return float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))


def assert_close(name, got, want, atol=TOLERANCE):
  assert np.shape(got) == np.shape(want), f"{name}: shape {np.shape(got)} != {np.shape(want)}"
  diff = max_abs_diff(got, want)
  assert diff <= atol, f"{name}: max abs diff {diff:.3g} > {atol}"


@pytest.fixture(scope="module")
def fixture_config():
  return json.loads((FIXTURES / "stylegan2_config.json").read_text())


@pytest.fixture(scope="module")
def weights():
  return dict(np.load(FIXTURES / "stylegan2_weights.npz"))


@pytest.fixture(scope="module")
def io():
  return dict(np.load(FIXTURES / "stylegan2_io.npz"))


@pytest.fixture(scope="module")
def official(weights, fixture_config):
  # Neither is stored in the weights; the fixture's constructor kwargs say what they were.
  return load_official(
    weights, conv_clamp=fixture_config["generator_kwargs"]["conv_clamp"],
    mbstd_group_size=fixture_config["discriminator_kwargs"]["epilogue_kwargs"]["mbstd_group_size"])


# ----------------------------------------------------------------------------------------
# Parity with the official outputs.


def test_mapping_matches_official(official, io):
  assert_close("ws", official.mapping(io["z"]), io["ws"])
  assert_close("ws_trunc", official.mapping(io["z"], truncation_psi=0.7), io["ws_trunc"])


def test_w_avg_and_weights_round_trip_exactly(official, weights, io):
  np.testing.assert_array_equal(np.asarray(official.w_avg), io["w_avg"])
  back = official.state_dict()
  assert sorted(back) == sorted(weights)
  for key, value in weights.items():
    np.testing.assert_array_equal(back[key], value, err_msg=key)


@pytest.mark.parametrize("output, ws_key, noise_mode, fused", [
  ("img_const", "ws", "const", True),
  ("img_none", "ws", "none", True),
  ("img_mix_const", "ws_mix", "const", True),
  ("img_trunc_const", "ws_trunc", "const", True),
  ("img_const_unfused", "ws", "const", False),
  ("img_const", "ws", "const", None),  # the backend's default form
])
def test_synthesis_matches_official(official, io, output, ws_key, noise_mode, fused):
  img = official.synthesis(io[ws_key], noise_mode=noise_mode, fused_modconv=fused)
  assert_close(output, img, io[output])


def test_discriminator_matches_official(official, io):
  assert_close("d_logits", official.discriminator(io["img_const"]), io["d_logits"])


def test_mbstd_group_size_is_wired(weights, io):
  # The README measures 9.7e-3 between group sizes 4 and 2: a kwarg that did nothing would pass d_logits anyway.
  logits = load_official(weights, conv_clamp=None, mbstd_group_size=2).discriminator(io["img_const"])
  assert max_abs_diff(logits, io["d_logits"]) > 1e-3


def test_minibatch_std_groups_samples_with_stride():
  # The official reshape(G, -1, ...) puts sample i in group i % (N / G); the fixture's single
  # group of 4 cannot tell, so check against a loop over the groups.
  x = np.random.default_rng(0).standard_normal((6, 2, 2, 4)).astype(np.float32)
  got = np.asarray(minibatch_std(jnp.asarray(x), group_size=3, num_channels=2))
  assert got.shape == (6, 2, 2, 6)
  np.testing.assert_array_equal(got[..., :4], x)
  for group in range(2):
    members = x[group::2]  # samples group, group + 2, group + 4
    std = np.sqrt(members.var(axis=0) + 1e-8)  # [H, W, C]
    for feature, channels in enumerate((slice(0, 2), slice(2, 4))):
      np.testing.assert_allclose(got[group::2, :, :, 4 + feature], std[..., channels].mean(), rtol=1e-5)


def test_random_noise_needs_a_key(official, io):
  with pytest.raises(ValueError, match="key"):
    official.synthesis(io["ws"], noise_mode="random")


# ----------------------------------------------------------------------------------------
# The converter reads the architecture from names and shapes.


def test_inferred_config_matches_fixture_constructor(official, fixture_config):
  g_kwargs, d_kwargs, derived = (fixture_config[k] for k in ("generator_kwargs", "discriminator_kwargs", "derived"))
  g, d = official.config["generator"], official.config["discriminator"]
  for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
    assert g[name] == g_kwargs[name], name
  assert g["num_ws"] == derived["num_ws"]
  assert g["mapping_layers"] == g_kwargs["mapping_kwargs"]["num_layers"]
  assert g["architecture"] == "skip" and d["architecture"] == d_kwargs["architecture"]
  assert g["channels"] == tuple(derived["G_channels"][f"b{res}"] for res in derived["G_block_resolutions"])
  assert g["channels"] == channels_from_base(32, g_kwargs["channel_base"], g_kwargs["channel_max"])
  d_channels = {int(k[1:]): v["tmp"] for k, v in derived["D_channels"].items() if k[1:].isdigit()}
  assert d["channels"] == (derived["D_channels"]["b4 (epilogue)"],) + tuple(d_channels[r] for r in (8, 16, 32))
  assert d["mbstd_num_channels"] == derived["D_mbstd_num_channels"]
  assert d["c_dim"] == d_kwargs["c_dim"] and d["img_resolution"] == d_kwargs["img_resolution"]
  g_params = sum(np.size(x) for x in jax.tree.leaves(official.g_variables["params"]))
  d_params = sum(np.size(x) for x in jax.tree.leaves(official.d_variables["params"]))
  assert (g_params, d_params) == (derived["param_count"]["G"], derived["param_count"]["D"])


def random_variables(module, seed, *example_inputs, **kwargs):
  """Variables of `module` drawn N(0, 1) everywhere (zero-initialised biases and noise strengths too).

  Mapping MLP weights are N(0, 1) / lr_multiplier as the official init stores them, so
  that labels and latents reach the output at their usual scale. Drawn with numpy from
  the abstract shapes: compiling jax.random for ~100 parameters costs far more on CPU
  than these tests' forward passes.
  """
  abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), *example_inputs, **kwargs))
  rng = np.random.default_rng(seed)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(abstract))
  def draw(path, leaf):
    scale = 1 / 0.01 if ("mapping" in path and path[-1] == "weight" and "embed" not in path) else 1.0
    return jnp.asarray(rng.standard_normal(leaf.shape, np.float32) * np.float32(scale))
  return flax.traverse_util.unflatten_dict({path: draw(path, leaf) for path, leaf in flat.items()})


def assert_same_variables(got, want):
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for path, value in flax.traverse_util.flatten_dict(want).items():
    np.testing.assert_array_equal(flax.traverse_util.flatten_dict(got)[path], value, err_msg=str(path))


def test_conditional_model_of_another_size_round_trips():
  # Nothing like the fixture: 16x16x1, uneven widths, labels, 3 mapping layers, cmap_dim 10, 2 mbstd channels.
  g_config = dict(z_dim=12, c_dim=5, w_dim=16, img_resolution=16, img_channels=1, channels=(24, 20, 8),
                  architecture="skip", mapping_layers=3, mapping_embed_features=6, mapping_layer_features=20,
                  resample_taps=(1, 3, 3, 1))
  d_config = dict(c_dim=5, img_resolution=16, img_channels=1, channels=(24, 16, 8), architecture="resnet",
                  cmap_dim=10, mbstd_num_channels=2, mapping_layers=2, mapping_embed_features=7,
                  mapping_layer_features=9, resample_taps=(1, 3, 3, 1))
  generator = Generator(conv_clamp=None, **g_config)
  discriminator = Discriminator(conv_clamp=None, mbstd_group_size=2, **d_config)
  rng = np.random.default_rng(0)
  z = rng.standard_normal((4, 12), np.float32)
  c = np.eye(5, dtype=np.float32)[[0, 3, 4, 1]]
  g_variables = random_variables(generator, 1, z, c, noise_mode="const")
  d_variables = random_variables(discriminator, 2, jnp.zeros((4, 16, 16, 1)), c)
  w_avg = rng.standard_normal(16, np.float32)

  state_dict = official_state_dict(generator, g_variables, w_avg, discriminator, d_variables)
  # Official names and layouts ([out, in] dense, [out, in, kh, kw] conv).
  assert state_dict["G/mapping.embed.weight"].shape == (6, 5)
  assert state_dict["G/mapping.fc0.weight"].shape == (20, 12 + 6)
  assert state_dict["G/synthesis.b8.conv0.weight"].shape == (20, 24, 3, 3)
  assert state_dict["G/synthesis.b16.torgb.weight"].shape == (1, 8, 1, 1)
  assert state_dict["D/mapping.fc1.weight"].shape == (10, 9)
  assert state_dict["D/b4.conv.weight"].shape == (24, 24 + 2, 3, 3)
  assert state_dict["D/b4.fc.weight"].shape == (24, 24 * 16)
  assert state_dict["D/b4.out.weight"].shape == (10, 24)

  assert infer_generator_config(state_dict) == g_config
  assert infer_discriminator_config(state_dict) == d_config
  loaded = load_official(state_dict, conv_clamp=None, mbstd_group_size=2)
  # Same module configuration and bit-identical variables, hence identical outputs.
  assert loaded.generator_module == generator and loaded.discriminator_module == discriminator
  assert_same_variables(loaded.g_variables, g_variables)
  assert_same_variables(loaded.d_variables, d_variables)
  np.testing.assert_array_equal(loaded.w_avg, w_avg)

  # The converted pair runs NCHW with labels, and the labels matter (projection discriminator).
  ws = loaded.mapping(z, c)
  assert ws.shape == (4, 6, 16)
  img = loaded.synthesis(ws, noise_mode="const")
  assert img.shape == (4, 1, 16, 16)
  logits = loaded.discriminator(img, c)
  assert logits.shape == (4, 1)
  assert max_abs_diff(loaded.discriminator(img, c[::-1]), logits) > 1e-3


@pytest.mark.parametrize("g_architecture, d_architecture, taps", [("orig", "orig", (1, 3, 3, 1)),
                                                                  ("resnet", "skip", (1, 2, 1))])
def test_other_architectures_are_inferred_and_run(g_architecture, d_architecture, taps):
  generator = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, channels=(8, 4),
                        architecture=g_architecture, mapping_layers=1, resample_taps=taps, conv_clamp=None)
  discriminator = Discriminator(c_dim=0, img_resolution=8, img_channels=3, channels=(8, 4),
                                architecture=d_architecture, resample_taps=taps, conv_clamp=None)
  z = np.random.default_rng(0).standard_normal((2, 8), np.float32)
  g_variables = random_variables(generator, 1, z, noise_mode="const")
  d_variables = random_variables(discriminator, 2, jnp.zeros((2, 8, 8, 3)))
  state_dict = official_state_dict(generator, g_variables, None, discriminator, d_variables)
  assert ("G/synthesis.b8.skip.weight" in state_dict) == (g_architecture == "resnet")
  assert ("G/synthesis.b4.torgb.weight" in state_dict) == (g_architecture == "skip")
  assert ("D/b4.fromrgb.weight" in state_dict) == (d_architecture == "skip")
  # Like the official constructors: only resampling layers get the network's filter.
  assert state_dict["G/synthesis.b8.conv0.resample_filter"].shape == (len(taps),) * 2
  assert state_dict["D/b8.conv1.resample_filter"].shape == (len(taps),) * 2
  assert state_dict["G/synthesis.b8.conv1.resample_filter"].shape == (4, 4)
  assert state_dict["D/b8.conv0.resample_filter"].shape == (4, 4)
  loaded = load_official(state_dict, conv_clamp=None)
  assert loaded.generator_module == generator and loaded.discriminator_module == discriminator
  assert_same_variables(loaded.g_variables, g_variables)
  assert_same_variables(loaded.d_variables, d_variables)
  img = loaded.synthesis(loaded.mapping(z), noise_mode="const")
  assert img.shape == (2, 3, 8, 8) and bool(jnp.all(jnp.isfinite(img)))
  assert loaded.discriminator(img).shape == (2, 1)


def test_truncation_cutoff_truncates_only_the_first_layers():
  ws = jnp.arange(2 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 3)
  w_avg = jnp.array([1.0, -1.0, 0.5])
  truncated = np.asarray(truncate(ws, w_avg, 0.25, truncation_cutoff=2))
  np.testing.assert_allclose(truncated[:, :2], w_avg + 0.25 * (ws[:, :2] - w_avg), rtol=1e-6)
  np.testing.assert_array_equal(truncated[:, 2:], ws[:, 2:])
  np.testing.assert_allclose(truncate(ws, w_avg, 0.25), w_avg + 0.25 * (ws - w_avg), rtol=1e-6)
  assert truncate(ws, None, 1.0) is ws  # psi = 1 is skipped, as officially: bit-exact, no w_avg needed
  with pytest.raises(ValueError, match="w_avg"):
    truncate(ws, None, 0.5)


@pytest.fixture(scope="module")
def tiny_generator():
  """A 4x4 generator with one noise layer: every jax.random draw is slow to compile on CPU."""
  generator = Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=4, img_channels=3, channels=(4,), mapping_layers=1)
  z = np.zeros((1, 4), np.float32)
  return generator, random_variables(generator, 3, z, noise_mode="const")


def test_random_noise_follows_the_key(tiny_generator):
  generator, variables = tiny_generator
  z = np.random.default_rng(0).standard_normal((2, 4), np.float32)
  run = jax.jit(lambda key: generator.apply(variables, z, noise_mode="random", rngs={"noise": key}))
  first = run(jax.random.key(1))
  assert max_abs_diff(first, run(jax.random.key(2))) > 1e-2
  np.testing.assert_array_equal(first, run(jax.random.key(1)))


@pytest.mark.parametrize("key", ["G/synthesis.b16.conv0.affine.bias", "G/synthesis.b4.const", "G/mapping.w_avg",
                                 "D/b8.skip.weight", "D/b32.conv1.resample_filter"])
def test_missing_key_is_named(weights, key):
  broken = {k: v for k, v in weights.items() if k != key}
  with pytest.raises(KeyError, match=key.replace(".", r"\.")):
    load_official(broken)


@pytest.mark.parametrize("key, shape", [("G/synthesis.b16.conv0.affine.bias", (63,)),
                                        ("G/synthesis.b8.conv1.noise_const", (8, 9)),
                                        ("D/b4.fc.weight", (64, 1023)),
                                        ("D/b16.conv0.weight", (64, 64, 1, 1))])
def test_misshaped_key_is_named(weights, key, shape):
  broken = dict(weights, **{key: np.zeros(shape, np.float32)})
  with pytest.raises(ValueError, match=key.replace(".", r"\.")):
    load_official(broken)


def test_unexpected_key_and_foreign_filter_are_named(weights):
  with pytest.raises(KeyError, match=r"G/synthesis\.b8\.conv2\.weight"):
    load_official(dict(weights, **{"G/synthesis.b8.conv2.weight": np.zeros((64, 64, 3, 3), np.float32)}))
  box = np.full((2, 2), 0.25, np.float32)
  with pytest.raises(ValueError, match=r"D/b8\.skip\.resample_filter"):
    load_official(dict(weights, **{"D/b8.skip.resample_filter": box}))


def test_generator_only_state_dict_loads(weights, official, io):
  g_only = load_official({k: v for k, v in weights.items() if k.startswith("G/")}, conv_clamp=None)
  assert g_only.discriminator_module is None and "discriminator" not in g_only.config
  np.testing.assert_array_equal(g_only.mapping(io["z"]), official.mapping(io["z"]))


# ----------------------------------------------------------------------------------------
# Training pieces.


def test_lazy_regularization_rescales_lr_and_betas():
  lr, betas = lazy_regularization(0.0025, (0.0, 0.99), interval=16)
  assert lr == pytest.approx(0.0025 * 16 / 17)
  assert betas == pytest.approx((0.0, 0.99 ** (16 / 17)))
  lr, betas = lazy_regularization(0.002, (0.5, 0.9), interval=4)
  assert lr == pytest.approx(0.0016) and betas == pytest.approx((0.5 ** 0.8, 0.9 ** 0.8))


def test_update_w_avg_is_an_ema_of_the_batch_mean():
  w_avg = jnp.array([1.0, -2.0])
  w = jnp.array([[3.0, 0.0], [5.0, 2.0]])  # batch mean (4, 1)
  np.testing.assert_allclose(update_w_avg(w_avg, w, beta=0.75), [0.75 * 1 + 0.25 * 4, 0.75 * -2 + 0.25 * 1])


def test_mix_styles_cutoffs_and_probability():
  num_ws = 6
  ws = jnp.zeros((2, num_ws, 3))
  ws_other = jnp.ones((2, num_ws, 3))
  many_trials = jax.jit(jax.vmap(mix_styles, in_axes=(0, None, None, None)))  # one compilation for both probabilities
  mixed = many_trials(jax.random.split(jax.random.key(0), 2000), ws, ws_other, 0.9)
  from_other = np.asarray(mixed[:, 0, :, 0])  # [trials, num_ws]; identical across the batch and features
  assert np.all(mixed == mixed[:, :1, :, :1])  # one cutoff per batch, whole vectors
  cutoffs = num_ws - from_other.sum(axis=1)
  # Each trial keeps a prefix [0, cutoff) and takes the rest from the other latent.
  np.testing.assert_array_equal(from_other, np.arange(num_ws)[None, :] >= cutoffs[:, None])
  mixed_trials = cutoffs < num_ws
  assert abs(mixed_trials.mean() - 0.9) < 0.03  # binomial sd 0.007
  assert set(cutoffs[mixed_trials]) == set(range(1, num_ws))  # layer 0 always from the first latent
  unmixed = many_trials(jax.random.split(jax.random.key(1), 2000), ws, ws_other, 0.0)
  assert not np.any(unmixed)


def test_path_length_penalty_closed_form():
  # For a linear synthesis img = ws . A the image-space gradient is A y, known in closed form.
  rng = np.random.default_rng(0)
  ws = rng.standard_normal((3, 4, 5), np.float32)
  matrix = rng.standard_normal((4, 5, 6, 7, 2), np.float32)
  key = jax.random.key(2)

  @jax.jit
  def penalty_and_grad(matrix):
    def mean_penalty(matrix):
      synthesize = lambda ws: jnp.einsum("nlw,lwhxc->nhxc", ws, matrix)
      penalty, pl_mean, lengths = path_length_penalty(synthesize, ws, key, pl_mean=jnp.float32(1.5))
      return jnp.mean(penalty), (penalty, pl_mean, lengths)
    # The noise the penalty draws, recomputed in the same compilation (cheaper on CPU).
    return jax.value_and_grad(mean_penalty, has_aux=True)(matrix), jax.random.normal(key, (3, 6, 7, 2))

  ((_, (penalty, pl_mean, lengths)), grad), unit_noise = penalty_and_grad(matrix)
  noise = np.asarray(unit_noise, np.float64) / np.sqrt(6 * 7)
  grads = np.einsum("lwhxc,nhxc->nlw", matrix.astype(np.float64), noise)
  want_lengths = np.sqrt(np.mean(np.sum(grads ** 2, axis=2), axis=1))
  np.testing.assert_allclose(lengths, want_lengths, rtol=1e-5)
  want_mean = 1.5 + 0.01 * (want_lengths.mean() - 1.5)
  np.testing.assert_allclose(pl_mean, want_mean, rtol=1e-6)
  np.testing.assert_allclose(penalty, (want_lengths - want_mean) ** 2, rtol=1e-4)
  # The penalty trains the synthesis; pl_mean is a constant to it (stop_gradient), so the
  # gradient is 2 (length - a) d length / dA, with d length / dA from the closed form.
  d_lengths = np.einsum("nlw,nhxc->nlwhxc", grads, noise) / (4 * want_lengths[:, None, None, None, None, None])
  want_grad = np.mean(2 * (want_lengths - want_mean)[:, None, None, None, None, None] * d_lengths, axis=0)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-3, atol=1e-6)


def test_generator_sample_truncates_toward_w_avg(tiny_generator):
  generator, variables = tiny_generator
  params = {"g": variables["params"]}
  model_state = initial_model_state(variables["buffers"], generator.w_dim)
  model_state["w_avg"] = jnp.array([0.5, -1.0, 2.0, 0.0])
  # psi as an array: one compilation serves both values.
  sample = jax.jit(lambda key, psi: generator_sample(generator, params, model_state, key, 3, truncation_psi=psi))
  samples = sample(jax.random.key(0), jnp.float32(1.0))
  assert samples.shape == (3, 4, 4, 3)
  assert max_abs_diff(samples[0], samples[1]) > 1e-2
  # psi = 0 maps every z to w_avg: every sample is the w_avg image.
  centre = sample(jax.random.key(0), jnp.float32(0.0))
  ws_avg = jnp.broadcast_to(model_state["w_avg"], (3, generator.num_ws, 4))
  w_avg_image = jax.jit(lambda ws: generator.apply(variables, ws, "const", method=Generator.synthesize))(ws_avg)
  assert_close("w_avg image", centre, w_avg_image, atol=1e-5)
  with pytest.raises(ValueError, match="conditional"):
    generator_sample(generator.clone(c_dim=2), params, model_state, jax.random.key(0), 3)


# ----------------------------------------------------------------------------------------
# The fast convolution forms against plain lax ones, values and gradients (the fixtures
# check values only; R1 and path length also differentiate the gradients).


def _lax_conv(x, w, stride=1, padding=0, lhs_dilation=1):
  return jax.lax.conv_general_dilated(x, w, (stride, stride), [(padding, padding)] * 2,
                                      lhs_dilation=(lhs_dilation, lhs_dilation),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _reference_conv2d_resample(x, w, filter_2d, up, down, padding):
  """The official conv2d_resample in its plain form: zero-stuffed or strided lax convolutions."""
  from gans.variants.stylegan2.layers import upfirdn2d
  k, taps = w.shape[0], filter_2d.shape[0]
  if up > 1:  # kernel flipped (flip_weight=False), full transposed conv, then the blur
    y = _lax_conv(x, w[::-1, ::-1], padding=k - 1, lhs_dilation=up)
    pad0 = padding + (taps + up - 1) // 2 - (k - 1)
    pad1 = padding + (taps - up) // 2 - (k - up)
    return upfirdn2d(y, filter_2d, padding=(pad0, pad1) * 2, gain=up * up)
  if down > 1:  # the blur, then the strided convolution
    pad0 = padding + (taps - down + 1) // 2
    pad1 = padding + (taps - down) // 2
    return _lax_conv(upfirdn2d(x, filter_2d, padding=(pad0, pad1) * 2), w, stride=down)
  return _lax_conv(x, w, padding=padding)


@pytest.mark.parametrize("kernel, up, down", [(3, 2, 1), (3, 1, 2), (1, 1, 1), (1, 1, 2), (3, 1, 1)])
def test_conv2d_resample_values_and_gradients_match_plain_convolutions(kernel, up, down):
  from gans.variants.stylegan2.layers import conv2d_resample, fir_filter_2d
  filter_2d = fir_filter_2d()
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 5))
  w = jax.random.normal(jax.random.key(1), (kernel, kernel, 5, 6))
  probe = jax.random.normal(jax.random.key(2), _reference_conv2d_resample(x, w, filter_2d, up, down, kernel // 2).shape)

  def losses(conv):
    first = lambda x, w: jnp.sum(conv(x, w) * probe)
    # A gradient penalty's shape: the squared input gradient, differentiated again.
    second = lambda x, w: jnp.sum(jnp.square(jax.grad(first)(x, w)))
    return first, second

  fast = lambda x, w: conv2d_resample(x, w, filter_2d, up=up, down=down, padding=kernel // 2, flip_weight=(up == 1))
  plain = lambda x, w: _reference_conv2d_resample(x, w, filter_2d, up, down, kernel // 2)
  scale = float(jnp.max(jnp.abs(plain(x, w))))
  np.testing.assert_allclose(fast(x, w), plain(x, w), rtol=0, atol=1e-5 * scale)
  for got_loss, want_loss in zip(losses(fast), losses(plain)):
    for got, want in zip(jax.grad(got_loss, argnums=(0, 1))(x, w), jax.grad(want_loss, argnums=(0, 1))(x, w)):
      np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(want))))
