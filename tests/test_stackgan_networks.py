"""StackGAN networks against the official StackGAN-Pytorch outputs (tests/fixtures/image2image/stackgan_*, made
as /work/shared/fixtures/image2image/README.md says: eval() mode, the fixed eps in every CA_NET draw), through
gans.layers and through XLA's own convolutions; the converter's cfg handling and refusals."""
import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans.variants.text2image import convert, networks

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "image2image")
PREFIXES = {"CA_NET": "CA/", "STAGE1_G": "S1G/", "STAGE1_D": "S1D/", "STAGE2_G": "S2G/", "STAGE2_D": "S2D/"}
INPUTS = ("text_embedding", "z", "eps")
TINY_CFG = {"TEXT.DIMENSION": 8, "GAN.CONDITION_DIM": 4, "Z_DIM": 4, "GAN.GF_DIM": 4, "GAN.DF_DIM": 2,
            "GAN.R_NUM": 1}


def _fixture():
  config = json.load(open(os.path.join(FIXTURES, "stackgan_config.json")))
  weights = dict(np.load(os.path.join(FIXTURES, "stackgan_weights.npz")))
  io = dict(np.load(os.path.join(FIXTURES, "stackgan_io.npz")))
  return config["cfg"], weights, io


def _nchw(x):
  return np.asarray(x).transpose(0, 3, 1, 2)


def _taps(taps, *path):
  return flax.traverse_util.flatten_dict(taps["intermediates"])[path][0]


def _outputs(name, module, variables, io, dtype):
  """{fixture key: array} of the official network `name` in eval() mode, fed the fixture's inputs (the
  discriminators the stored generator images and conditions)."""
  variables = jax.tree.map(lambda v: jnp.asarray(v, dtype), variables)
  arrays = {k: jnp.asarray(v, dtype) for k, v in io.items()}
  text, z, eps = arrays["text_embedding"], arrays["z"], arrays["eps"]
  if name == "CA_NET":
    c_code, mu, logvar = jax.jit(module.apply)(variables, text, eps)
    return {"CA_c_code": c_code, "CA_mu": mu, "CA_logvar": logvar}
  if name == "STAGE1_G":
    (none, img, mu, logvar), taps = jax.jit(lambda v: module.apply(
      v, text, z, train=False, eps=eps, mutable=["intermediates"]))(variables)
    assert none is None
    return {"S1G_fake_img": _nchw(img), "S1G_mu": mu, "S1G_logvar": logvar,
            "S1G_pre_tanh": _nchw(_taps(taps, "pre_tanh")), "S1G_fc_out": _taps(taps, "fc_out"),
            "S1G_c_code": _taps(taps, "ca_net", "c_code")}
  if name == "STAGE2_G":
    # The fixture's STAGE2_G drew the same eps in its inner STAGE1_G and in its own CA_NET.
    (stage1_img, img, mu, logvar), taps = jax.jit(lambda v: module.apply(
      v, text, z, train=False, eps=eps, stage1_eps=eps, mutable=["intermediates"]))(variables)
    return {"S2G_stage1_img": _nchw(stage1_img), "S2G_fake_img": _nchw(img), "S2G_mu": mu, "S2G_logvar": logvar,
            "S2G_pre_tanh_sample0": _nchw(_taps(taps, "pre_tanh"))[:1], "S2G_c_code": _taps(taps, "ca_net", "c_code")}
  stage = name[5]  # "1" or "2"
  image = arrays[f"S{stage}G_fake_img"].transpose(0, 2, 3, 1)

  @jax.jit
  def run(v):
    embedding, cond_mu, uncond = module.apply(v, image, arrays[f"S{stage}G_mu"], train=False)
    cond_c_code = module.apply(v, embedding, arrays[f"S{stage}G_c_code"], train=False, method="cond_logits")
    return embedding, cond_mu, cond_c_code, uncond

  embedding, cond_mu, cond_c_code, uncond = run(variables)
  out = {f"S{stage}D_img_embedding": _nchw(embedding)}
  for condition, logits in (("mu", cond_mu), ("c_code", cond_c_code)):
    out[f"S{stage}D_cond_pre_sigmoid_{condition}"] = logits
    out[f"S{stage}D_cond_logits_{condition}"] = jax.nn.sigmoid(logits)
  if stage == "1":
    assert uncond is None  # STAGE1_D has no unconditional head
  else:
    out.update(S2D_uncond_pre_sigmoid=uncond, S2D_uncond_logits=jax.nn.sigmoid(uncond))
  return out


def _scale(key, reference):
  # Magnitude-scaled 1e-4 (the fixture README's advice). An image is tanh of its pre-tanh map and tanh is
  # 1-Lipschitz, so an image's error is bounded by its pre-tanh map's, whose magnitude sets the scale: the
  # float32 fixture itself is 5.5e-4 from the float64 value of STAGE2_G's pre-tanh map (|164|), and that
  # rounding reaches the unsaturated pixels of the 256x256 image (2.8e-4 there).
  # (S2G_stage1_img is held to 1e-4 absolute: its pre-tanh map is STAGE1_G's, compared there.)
  if key.endswith("fake_img"):
    reference = reference[key[:3] + ("_pre_tanh" if key.startswith("S1G") else "_pre_tanh_sample0")]
  else:
    reference = reference[key]
  return max(1.0, float(np.abs(reference).max()))


def _assert_close(got, want, scale, name):
  diff = float(np.abs(np.asarray(got, np.float64) - want).max())
  assert diff <= 1e-4 * scale, f"{name}: max abs diff {diff} (scale {scale})"


def test_the_parity_tests_compare_every_stored_output():
  _, _, io = _fixture()
  # Each parity test compares every array under its network's prefix; nothing else is stored but the inputs.
  prefixes = tuple(prefix.replace("/", "_") for prefix in PREFIXES.values())
  assert sorted(io) == sorted(INPUTS + tuple(k for k in io if k.startswith(prefixes)))


@pytest.mark.parametrize("fast_layers", [True, False], ids=["gans.layers", "xla"])
@pytest.mark.parametrize("name", sorted(PREFIXES))
def test_outputs_match_the_official_network(name, fast_layers):
  # As tests/test_image2image_networks.py: the architecture in float64 against the (float32) fixture, and our
  # float32 computation against our float64 one, each within 1e-4 of the magnitude.
  cfg, weights, io = _fixture()
  module, variables = convert.load_official(name, weights, cfg, prefix=PREFIXES[name], fast_layers=fast_layers)
  with jax.enable_x64(True):
    exact = {k: np.asarray(v) for k, v in _outputs(name, module, variables, io, jnp.float64).items()}
  prefix = PREFIXES[name].replace("/", "_")
  assert sorted(exact) == sorted(k for k in io if k.startswith(prefix))  # every stored array of this network
  for key, value in exact.items():
    assert value.dtype == np.float64 and value.shape == io[key].shape, key
    _assert_close(value, io[key], _scale(key, io), key)
  for key, value in _outputs(name, module, variables, io, jnp.float32).items():
    assert np.asarray(value).dtype == np.float32
    _assert_close(value, exact[key], _scale(key, exact), f"float32 {key}")


def test_stage2_generator_holds_the_stage1_generator_and_stops_its_gradient():
  cfg, weights, _ = _fixture()
  _, stage1 = convert.load_official("STAGE1_G", weights, cfg, prefix="S1G/")
  _, stage2 = convert.load_official("STAGE2_G", weights, cfg, prefix="S2G/")
  assert jax.tree.all(jax.tree.map(np.array_equal, stage2["params"]["STAGE1_G"], stage1["params"]))
  shifted = jax.tree.map(lambda v: v + 1, stage1)
  grafted = convert.with_stage1(stage2, shifted)
  for collection in ("params", "batch_stats"):
    assert grafted[collection]["STAGE1_G"] is shifted[collection]
  assert grafted["params"]["hr_joint_0"] is stage2["params"]["hr_joint_0"]
  with pytest.raises(ValueError, match="STAGE2_G and STAGE1_G variables"):
    convert.with_stage1(stage1, stage1)

  # Tiny networks: the stage-II image has no gradient into the stage-I parameters (detach()), but does into
  # its own, and is 4x the stage-I size (XLA's convolutions: they compile faster).
  module, init_fn = convert.build_official("STAGE2_G", TINY_CFG, fast_layers=False)
  variables = _random_variables(jax.eval_shape(lambda: init_fn(module)))
  text, z = jnp.ones((2, 8)), jnp.ones((2, 4))

  def image_sum(params):
    (stage1_img, img, _, _), _ = module.apply({**variables, "params": params}, text, z, train=True,
                                             rngs={"noise": jax.random.key(3)}, mutable=["batch_stats"])
    assert stage1_img.shape == (2, 64, 64, 3) and img.shape == (2, 256, 256, 3)
    return jnp.sum(img * jnp.arange(3.0))

  grads = jax.jit(jax.grad(image_sum))(variables["params"])
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads["STAGE1_G"]))
  assert float(jnp.abs(grads["hr_joint_0"]["kernel"]).max()) > 0


def _random_variables(shapes):
  """Variables of these shapes without init's per-shape random kernels (seconds of compiling): N(0, 0.2^2)
  weights from numpy, unit batch-norm scales and variances, zero biases and means."""
  rng = np.random.default_rng(0)

  def value(path, shape):
    leaf = path[-1].key
    if leaf in ("scale", "var"):
      return jnp.ones(shape.shape)
    if leaf in ("bias", "mean"):
      return jnp.zeros(shape.shape)
    return jnp.asarray(0.2 * rng.standard_normal(shape.shape), jnp.float32)
  return jax.tree_util.tree_map_with_path(value, shapes)


def test_conditioning_augmentation_draws_eps_from_the_noise_rng_and_its_kl():
  module, init_fn = convert.build_official("CA_NET", TINY_CFG)
  variables = jax.jit(lambda: init_fn(module))()
  text = jax.random.normal(jax.random.key(1), (3, 8))
  apply = jax.jit(lambda key: module.apply(variables, text, rngs={"noise": key}))
  (a, mu, logvar), (b, _, _), (a_again, _, _) = apply(jax.random.key(0)), apply(jax.random.key(1)), apply(
    jax.random.key(0))
  assert float(jnp.abs(a - b).max()) > 0.01 and np.array_equal(a, a_again)
  assert float(jnp.minimum(mu.min(), logvar.min())) >= 0  # ReLU before the split
  eps = jax.random.normal(jax.random.key(2), (3, 4))
  np.testing.assert_allclose(module.apply(variables, text, eps)[0], eps * jnp.exp(logvar / 2) + mu, rtol=1e-6)
  with pytest.raises(ValueError, match=r"eps must have the shape of mu, \(batch, GAN.CONDITION_DIM\)"):
    module.apply(variables, text, jnp.zeros((3, 5)))
  # KL(N(mu, e^logvar) || N(0, 1)) per entry: (mu^2 + e^logvar - 1 - logvar) / 2, averaged.
  assert float(networks.kl_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)))) == 0
  np.testing.assert_allclose(networks.kl_loss(jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]])),
                             (0.5 + 0.5 * (np.e - 2)) / 2, rtol=1e-6)


def test_train_mode_uses_batch_statistics_and_updates_the_running_ones():
  cfg, weights, io = _fixture()
  module, variables = convert.load_official("STAGE1_G", weights, cfg, prefix="S1G/")
  text, z, eps = (jnp.asarray(io[k]) for k in INPUTS)
  (_, train_img, _, _), updated = jax.jit(lambda: module.apply(variables, text, z, train=True, eps=eps,
                                                               mutable=["batch_stats"]))()
  eval_img = jax.jit(lambda: module.apply(variables, text, z, train=False, eps=eps)[1])()
  assert float(jnp.abs(train_img - eval_img).max()) > 0.1
  old, new = variables["batch_stats"]["upsample1"]["2"]["mean"], updated["batch_stats"]["upsample1"]["2"]["mean"]
  assert float(jnp.abs(new - old).max()) > 0
  # PyTorch's momentum 0.1: new = 0.9 old + 0.1 batch mean; fc_1's batch mean is of the fc output before BN.
  h = jnp.concatenate([z, _ca_code(module, variables, text, eps)], 1)
  batch_mean = (h @ variables["params"]["fc_0"]["kernel"]).mean(0)
  np.testing.assert_allclose(updated["batch_stats"]["fc_1"]["mean"],
                             0.9 * variables["batch_stats"]["fc_1"]["mean"] + 0.1 * batch_mean, rtol=1e-4, atol=1e-5)


def _ca_code(module, variables, text, eps):
  ca = networks.CANet(module.condition_dim)
  return ca.apply({"params": variables["params"]["ca_net"]}, text, eps)[0]


def test_official_cfg_values_dotted_nested_and_refused():
  cfg, weights, _ = _fixture()
  nested = {"TEXT": {"DIMENSION": 64}, "GAN": {"CONDITION_DIM": 16, "GF_DIM": 20, "DF_DIM": 6, "R_NUM": 2},
            "Z_DIM": 20, "CUDA": False, "TRAIN": {"COEFF": {"KL": 2.0}}}
  assert convert.network_cfg(nested) == convert.network_cfg(cfg) == {
    "TEXT.DIMENSION": 64, "GAN.CONDITION_DIM": 16, "Z_DIM": 20, "GAN.GF_DIM": 20, "GAN.DF_DIM": 6, "GAN.R_NUM": 2}
  assert convert.network_cfg()["GAN.GF_DIM"] == 128  # config.py's defaults
  with pytest.raises(ValueError, match="Not an official StackGAN cfg key: 'GAN.GF_DIMS'"):
    convert.network_cfg({"GAN.GF_DIMS": 20})
  with pytest.raises(ValueError, match="GAN.R_NUM must be a positive integer"):
    convert.network_cfg({"GAN.R_NUM": 0})
  with pytest.raises(ValueError, match="GAN.GF_DIM must be divisible by 4"):
    convert.network_cfg({"GAN.GF_DIM": 10})
  with pytest.raises(KeyError, match="no 'S2G/residual.2.block.1.running_mean'"):
    convert.load_official("STAGE2_G", weights, {**cfg, "GAN.R_NUM": 3}, prefix="S2G/")
  with pytest.raises(ValueError, match=r"S1D/encode_img\.3\.running_mean: shape \(12,\) does not fit this network \(needs \(16,\)"):
    convert.load_official("STAGE1_D", weights, {**cfg, "GAN.DF_DIM": 8}, prefix="S1D/")
  with pytest.raises(ValueError, match="does not use, e.g. 'S1G/extra.weight'"):
    convert.load_official("STAGE1_G", {**weights, "S1G/extra.weight": np.zeros(3)}, cfg, prefix="S1G/")
  with pytest.raises(ValueError, match="Unknown official class 'STAGE3_G'"):
    convert.load_official("STAGE3_G", weights, cfg)


def test_discriminators_refuse_images_of_other_sizes_and_conditions_of_other_widths():
  # Shapes only (eval_shape): the checks run while tracing.
  module, init_fn = convert.build_official("STAGE1_D", TINY_CFG)
  variables = jax.eval_shape(lambda: init_fn(module))

  def apply(module, variables, image_shape, condition_shape):
    return jax.eval_shape(lambda v: module.apply(v, jnp.zeros(image_shape), jnp.zeros(condition_shape),
                                                 train=False), variables)

  embedding, cond, uncond = apply(module, variables, (2, 64, 64, 3), (2, 4))
  assert embedding.shape == (2, 4, 4, 16) and cond.shape == (2,) and uncond is None
  with pytest.raises(ValueError, match=r"STAGE1_D takes 64x64 RGB images \(N, 64, 64, 3\)"):
    apply(module, variables, (1, 128, 128, 3), (1, 4))
  with pytest.raises(ValueError, match="GAN.CONDITION_DIM = 4 entries per example"):
    apply(module, variables, (1, 64, 64, 3), (1, 5))
  module, init_fn = convert.build_official("STAGE2_D", TINY_CFG)
  variables = jax.eval_shape(lambda: init_fn(module))
  embedding, cond, uncond = apply(module, variables, (2, 256, 256, 3), (2, 4))
  assert embedding.shape == (2, 4, 4, 16) and cond.shape == uncond.shape == (2,)
  with pytest.raises(ValueError, match="STAGE2_D takes 256x256"):
    apply(module, variables, (1, 64, 64, 3), (1, 4))
