"""pix2pix and CycleGAN: losses, the image pool, the schedule, the image-pair sources, metrics, devices."""
import gzip
import os
import struct

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from PIL import Image

import test_training
from gans import data, run, steps
from gans.data import image2image as pairs
from gans.metrics import translation
from gans.variants import common, get_variant
from gans.variants.image2image import training


# ----------------------------------------------------------------------------- losses

def test_gan_losses_have_their_closed_forms():
  zeros = jnp.zeros((2, 3, 3, 1))
  np.testing.assert_allclose(training.gan_loss(zeros, True, "vanilla"), np.log(2), rtol=1e-6)
  np.testing.assert_allclose(training.gan_loss(zeros, False, "vanilla"), np.log(2), rtol=1e-6)
  scores = jnp.array([1.0, 3.0])
  np.testing.assert_allclose(training.gan_loss(scores, True, "lsgan"), (0 + 4) / 2)
  np.testing.assert_allclose(training.gan_loss(scores, False, "lsgan"), (1 + 9) / 2)
  # BCE with logits at a score of 3 against "real": log(1 + e^-3).
  np.testing.assert_allclose(training.gan_loss(jnp.array([3.0]), True, "vanilla"), np.log1p(np.exp(-3)), rtol=1e-6)
  with pytest.raises(ValueError, match="valid: lsgan, vanilla"):
    training.gan_loss(scores, True, "wgan")


def _tiny(name, **model):
  config = test_training.tiny_config(name, batch_size=2)
  with config.unlocked():
    config.data.flip = False  # jitter off: the losses below see the batch as it is
    config.model.update(model)
  return config


def _batch(config, key=jax.random.key(0)):
  return jax.tree.map(lambda x: x[0], test_training.synthetic_batches(config, 1, key))


def _apply(variant, group, params, model_state, x, module="g"):
  return common.apply_module(variant.modules[module], params[group], model_state[group], x, train=True)[0]


@pytest.mark.parametrize("objective", ["l1", "gan", "cgan", "l1+gan", "l1+cgan"])
def test_pix2pix_losses_are_the_papers_objectives(objective):
  config = _tiny("pix2pix_edges2fashion", objective=objective, use_dropout=False)  # deterministic G
  variant = get_variant("pix2pix")(config)
  params, model_state = jax.jit(variant.init)(jax.random.key(1))
  batch = _batch(config)
  phases = {phase.name: phase for phase in variant.phases}
  assert set(phases) == ({"g_main"} if objective == "l1" else {"d_main", "g_main"})
  pair = (lambda x, y: jnp.concatenate([x, y], -1)) if "cgan" in objective else (lambda x, y: y)

  @jax.jit
  def losses_and_expected(params, model_state, batch):
    a, b = batch["a"], batch["b"]
    fake = _apply(variant, "g", params, model_state, a)
    d = lambda x: _apply(variant, "d", params, model_state, x, module="d")
    results = {}
    prepared = variant.prepare(params, model_state, batch, jax.random.key(4), tuple(phases))  # G(A), once
    results["fake"], results["fake_expected"] = prepared["fake"].outputs, fake
    if objective != "l1":
      results["d"] = phases["d_main"].loss(params, model_state, prepared, jax.random.key(2))[0]
      results["d_expected"] = 0.5 * (training.gan_loss(d(pair(a, fake)), False, "vanilla")
                                     + training.gan_loss(d(pair(a, b)), True, "vanilla"))
    g_loss = lambda g_params: phases["g_main"].loss({**params, "g": g_params}, model_state, prepared,
                                                    jax.random.key(3))[0]
    results["g"], results["g_grad"] = jax.value_and_grad(g_loss)(params["g"])
    def g_expected(g_params):
      fake = _apply(variant, "g", {"g": g_params}, model_state, a)
      return ((training.gan_loss(d(pair(a, fake)), True, "vanilla") if objective != "l1" else 0.0)
              + (100.0 * jnp.mean(jnp.abs(fake - b)) if "l1" in objective else 0.0))
    # G learns through the prepared G(A) (Prepared.replay) as through its own forward pass.
    results["g_expected"], results["g_grad_expected"] = jax.value_and_grad(g_expected)(params["g"])
    return results

  results = losses_and_expected(params, model_state, batch)
  for name in ("fake", "d", "g") if objective != "l1" else ("fake", "g"):
    np.testing.assert_allclose(results[name], results[name + "_expected"], rtol=1e-5, atol=1e-6)
  for got, want in zip(jax.tree.leaves(results["g_grad"]), jax.tree.leaves(results["g_grad_expected"])):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
  assert objective == "l1" or "d" in params
  if objective == "l1":
    assert "d" not in params


def test_a_prepared_batch_is_refused_for_phases_that_read_several_batches():
  config = _tiny("pix2pix_edges2fashion")
  variant = get_variant("pix2pix")(config)
  d_phase, g_phase = variant.phases
  twice = variant._replace(phases=(d_phase._replace(repeats=2), g_phase))
  optimizers = {group: optax.adam(1e-3) for group in ("g", "d")}
  with pytest.raises(ValueError, match="prepare needs phases that read one batch once per step"):
    steps.make_train_step(twice, optimizers, ("d_main", "g_main"), 0.0)
  steps.make_train_step(variant, optimizers, ("d_main", "g_main"), 0.0)  # once each: accepted


@pytest.mark.parametrize("objective", ["cycle", "gan", "gan+forward", "gan+backward", "cyclegan"])
def test_cyclegan_losses_are_the_papers_ablations(objective):
  config = _tiny("cyclegan_edges2fashion", objective=objective)
  variant = get_variant("cyclegan")(config)
  params, model_state = jax.jit(variant.init)(jax.random.key(1))
  batch = _batch(config)
  phases = list(variant.phases)
  assert [p.name for p in phases] == (["g_main"] if objective == "cycle" else ["g_main", "d_main"])

  @jax.jit
  def losses_and_expected(params, model_state, batch):
    a, b = batch["a"], batch["b"]
    g = lambda group, x: _apply(variant, group, params, model_state, x)
    d = lambda group, x: _apply(variant, group, params, model_state, x, module="d")
    fake_b, fake_a = g("g_ab", a), g("g_ba", b)
    mean_abs = lambda x, y: jnp.mean(jnp.abs(x - y))
    terms = {"identity_a": 0.5 * 10 * mean_abs(g("g_ab", b), b), "identity_b": 0.5 * 10 * mean_abs(g("g_ba", a), a)}
    if objective in ("cycle", "gan+forward", "cyclegan"):
      terms["cycle_a"] = 10 * mean_abs(g("g_ba", fake_b), a)
    if objective in ("cycle", "gan+backward", "cyclegan"):
      terms["cycle_b"] = 10 * mean_abs(g("g_ab", fake_a), b)
    if objective != "cycle":
      terms["gan_ab"] = training.gan_loss(d("d_b", fake_b), True, "lsgan")
      terms["gan_ba"] = training.gan_loss(d("d_a", fake_a), True, "lsgan")
    g_loss, (metrics, new_state) = phases[0].loss(params, model_state, batch, jax.random.key(2))
    results = {"g": g_loss, "g_expected": sum(terms.values()), "metrics": metrics, "terms": terms}
    if objective != "cycle":
      # D judges the G phase's fakes; the empty pool hands them through (and stores them).
      results["d"], (_, results["after"]) = phases[1].loss(params, new_state, batch, jax.random.key(3))
      results["d_expected"] = sum(
          0.5 * (training.gan_loss(d(group, real), True, "lsgan") + training.gan_loss(d(group, fake), False, "lsgan"))
          for group, real, fake in (("d_b", b, fake_b), ("d_a", a, fake_a)))
      results["fake_b"] = fake_b
    return results

  results = losses_and_expected(params, model_state, batch)
  assert set(results["metrics"]) == set(results["terms"])
  for name, value in results["terms"].items():
    np.testing.assert_allclose(results["metrics"][name], value, rtol=1e-5, err_msg=name)
  np.testing.assert_allclose(results["g"], results["g_expected"], rtol=1e-5)
  if objective != "cycle":
    np.testing.assert_allclose(results["d"], results["d_expected"], rtol=1e-5)
    assert int(results["after"]["pool_b"]["count"]) == 2
    np.testing.assert_allclose(results["after"]["pool_b"]["images"][:2], results["fake_b"], rtol=1e-6)


# ----------------------------------------------------------------------------- image pool

def _official_query(stored, count, images, uniforms, indices):
  """util/image_pool.py's query, transcribed, with its random draws given."""
  stored, returned = list(stored), []
  for image, u, index in zip(images, uniforms, indices):
    if count < len(stored):
      stored[count] = image
      count += 1
      returned.append(image)
    elif u > 0.5:
      returned.append(stored[index])
      stored[index] = image
    else:
      returned.append(image)
  return np.array(stored), count, np.array(returned)


def test_the_pool_follows_the_official_policy_draw_by_draw():
  pool = training.empty_pool(3, (1,))
  stored, count = np.zeros((3, 1)), 0
  for step in range(6):
    key = jax.random.key(step)
    images = jnp.arange(2, dtype=jnp.float32).reshape(2, 1) + 10 * step + 1
    draws = [jax.random.split(k) for k in jax.random.split(key, 2)]
    uniforms = [float(jax.random.uniform(u)) for u, _ in draws]
    indices = [int(jax.random.randint(i, (), 0, 3)) for _, i in draws]
    stored, count, expected = _official_query(stored, count, np.asarray(images), uniforms, indices)
    returned, pool = training.query_pool(pool, images, key)
    np.testing.assert_array_equal(returned, expected)
    np.testing.assert_array_equal(pool["images"], stored)
    assert int(pool["count"]) == count


def test_a_full_pool_returns_a_stored_image_half_the_time():
  pool = {"images": jnp.arange(50, dtype=jnp.float32).reshape(50, 1), "count": jnp.array(50, jnp.int32)}
  new = 1000.0 + jnp.arange(4000, dtype=jnp.float32).reshape(4000, 1)
  returned, pool = jax.jit(training.query_pool)(pool, new, jax.random.key(0))
  from_pool = np.asarray(returned[:, 0] != new[:, 0])
  assert abs(from_pool.mean() - 0.5) < 0.03  # 4000 draws: 4 standard deviations
  # Early answers come from the 50 originals; each stored image is as likely to be picked.
  originals = np.asarray(returned[:200, 0])
  assert len(set(originals[originals < 1000].tolist())) > 35
  unchanged, _ = training.query_pool(training.empty_pool(0, (1,)), new[:3], jax.random.key(0))
  np.testing.assert_array_equal(unchanged, new[:3])


def test_the_pool_and_the_fakes_are_training_state():
  config = _tiny("cyclegan_edges2fashion")
  params, model_state = jax.eval_shape(get_variant("cyclegan")(config).init, jax.random.key(0))
  assert model_state["pool_a"]["images"].shape == (50, 8, 8, 1) and model_state["pool_b"]["count"].shape == ()
  assert model_state["fake_b"].shape == (2, 8, 8, 1)
  assert set(params) == {"g_ab", "g_ba", "d_a", "d_b"}


# ----------------------------------------------------------------------------- schedule

def test_the_linear_policy_keeps_then_decays_to_zero():
  schedule = steps.linear_decay_schedule(2e-4, n_epochs=3, n_epochs_decay=2, steps_per_epoch=10)
  # Epoch e (from 1) runs at 1 - max(0, e + 1 - n_epochs) / (n_epochs_decay + 1).
  expected = {0: 1.0, 19: 1.0, 20: 2 / 3, 29: 2 / 3, 30: 1 / 3, 40: 0.0}
  for count, factor in expected.items():
    np.testing.assert_allclose(schedule(count), 2e-4 * factor, rtol=1e-6, err_msg=str(count))
  config = ml_collections.ConfigDict({"learning_rate": 1.0, "schedule": {"name": "cosine"}})
  with pytest.raises(ValueError, match="valid: constant, linear_decay"):
    steps.learning_rate_of(config)


# ----------------------------------------------------------------------------- data

def _write_idx(path, array):
  header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  with open(path, "wb") as file:
    file.write(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _fashion_like(directory, count=6, side=8):
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (count, side, side)).astype(np.uint8)
  labels = np.arange(count, dtype=np.uint8) % 10
  for prefix in ("train", "t10k"):
    _write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), pixels)
    _write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), labels)
  return pixels, labels


def test_the_edge_operator():
  flat = np.full((6, 6), 90, np.uint8)
  assert (pairs.edge_map(flat) == 255).all()  # no gradient, no edge
  step = np.zeros((6, 6), np.uint8)
  step[:, 3:] = 255
  edges = pairs.edge_map(step) == 0
  # Sobel of a unit step: 4 on the two columns beside it, 0 elsewhere.
  assert edges[:, 2:4].all() and not edges[:, :2].any() and not edges[:, 4:].any()


def test_edges2fashion_pairs_and_unpaired_halves(tmp_path):
  pixels, labels = _fashion_like(str(tmp_path))
  config = ml_collections.ConfigDict({"source": "edges2fashion", "path": str(tmp_path), "split": "train",
                                      "resolution": 8, "channels": 1, "paired": True})
  source = data.make_source(config)
  element = source[4]
  np.testing.assert_allclose(element["b"][..., 0], pixels[4] / 127.5 - 1, atol=1e-6)
  np.testing.assert_allclose(element["a"][..., 0], pairs.edge_map(pixels[4]) / 127.5 - 1, atol=1e-6)
  assert element["label"] == labels[4] and len(source) == 6
  with config.unlocked():
    config.paired = False
  unpaired = data.make_source(config)
  assert len(unpaired) == 3
  for index in range(3):  # A from the first half, B from the second half, never the same garment
    b_index = 3 + pairs.independent_index(0, index, 3)
    np.testing.assert_allclose(unpaired[index]["b"][..., 0], pixels[b_index] / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(unpaired[index]["a"][..., 0], pairs.edge_map(pixels[index]) / 127.5 - 1, atol=1e-6)
  held = pairs.held_out(config, 4)
  assert held["source"].shape == held["target"].shape == (4, 8, 8, 1)
  np.testing.assert_array_equal(held["label"], labels[:4])


def _ab_image(path, a_level, b_level, height=8, width=16):
  image = Image.new("RGB", (width, height), (a_level,) * 3)
  image.paste(Image.new("RGB", (width - width // 2, height), (b_level,) * 3), (width // 2, 0))
  image.save(path)


def test_a_paired_folder_batch_and_its_direction(tmp_path):
  os.makedirs(tmp_path / "train")
  for i in range(3):
    _ab_image(tmp_path / "train" / f"{i}.png", 51, 204)
  config = ml_collections.ConfigDict({"source": "paired_folder", "path": str(tmp_path), "split": "train",
                                      "resolution": 4, "channels": 3, "direction": "AtoB", "read_threads": 0})
  iterator = data.make_iterator(config, batch_size=2, seed=0)
  batch = next(iterator)
  iterator.close()
  assert batch["a"].shape == batch["b"].shape == (2, 4, 4, 3)
  np.testing.assert_allclose(batch["a"], 51 / 127.5 - 1, atol=1e-6)
  np.testing.assert_allclose(batch["b"], 204 / 127.5 - 1, atol=1e-6)
  with config.unlocked():
    config.direction = "BtoA"
  np.testing.assert_allclose(data.make_source(config)[0]["a"], 204 / 127.5 - 1, atol=1e-6)
  _ab_image(tmp_path / "train" / "3.png", 0, 0, height=8, width=12)
  with pytest.raises(ValueError, match=r"3\.png: a paired \(AB\) image must be twice as wide"):
    data.make_source(config)[3]


def _domain(directory, levels):
  os.makedirs(directory, exist_ok=True)
  for i, level in enumerate(levels):
    Image.new("L", (6, 6), level).save(os.path.join(directory, f"{i}.png"))


def test_an_unpaired_folder_batch_and_its_errors(tmp_path):
  _domain(tmp_path / "trainA", [10, 20])
  config = ml_collections.ConfigDict({"source": "unpaired_folder", "path": str(tmp_path), "split": "train",
                                      "resolution": 6, "channels": 1, "read_threads": 0})
  with pytest.raises(data.DatasetNotFoundError, match="No folder '.*trainB'"):
    data.make_source(config)
  os.makedirs(tmp_path / "trainB")
  with pytest.raises(data.DatasetNotFoundError, match="folder '.*trainB' holds no images"):
    data.make_source(config)
  _domain(tmp_path / "trainB", [100, 110, 120])
  source = data.make_source(config)
  assert len(source) == 3
  levels_a = {round(float((source[i]["a"][0, 0, 0] + 1) * 127.5)) for i in range(3)}
  levels_b = {round(float((source[i]["b"][0, 0, 0] + 1) * 127.5)) for i in range(3)}
  assert levels_a == {10, 20} and levels_b <= {100, 110, 120}
  iterator = data.make_iterator(config, batch_size=2, seed=0)
  batch = next(iterator)
  iterator.close()
  assert batch["a"].shape == batch["b"].shape == (2, 6, 6, 1)


# ----------------------------------------------------------------------------- metrics

def test_psnr_and_ssim():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (2, 11, 11, 1))
  y = np.clip(x + rng.normal(0, 0.2, x.shape), -1, 1)
  assert translation.ssim(x, x) == pytest.approx([1, 1]) and np.isinf(translation.psnr(x, x)).all()
  mse = np.mean(((x + 1) / 2 - (y + 1) / 2) ** 2, axis=(1, 2, 3))
  np.testing.assert_allclose(translation.psnr(x, y), 10 * np.log10(1 / mse))
  # An 11x11 image has one window position: SSIM with Gaussian-weighted moments over the whole image.
  g = np.exp(-0.5 * (np.arange(11) - 5) ** 2 / 1.5 ** 2)
  w = np.outer(g, g) / np.outer(g, g).sum()
  u, v = (x[0, ..., 0] + 1) / 2, (y[0, ..., 0] + 1) / 2
  mu_u, mu_v = (w * u).sum(), (w * v).sum()
  var_u, var_v = (w * u * u).sum() - mu_u ** 2, (w * v * v).sum() - mu_v ** 2
  cov = (w * u * v).sum() - mu_u * mu_v
  c1, c2 = 0.01 ** 2, 0.03 ** 2
  expected = (2 * mu_u * mu_v + c1) * (2 * cov + c2) / ((mu_u ** 2 + mu_v ** 2 + c1) * (var_u + var_v + c2))
  np.testing.assert_allclose(translation.ssim(x, y)[0], expected, rtol=1e-10)
  assert translation.paired_metrics(x, y)["l1"] == pytest.approx(np.mean(np.abs(x - y)))


# ----------------------------------------------------------------------------- devices and sampling

def test_four_devices_give_the_numbers_of_one():
  # CycleGAN's step has everything pix2pix's has (the shared step key, jitter, state threaded between phases)
  # and the pools. SGD with learning rate 1, so each parameter's change is its gradient: Adam would scale
  # the float noise (~1e-9) of the biases of convs followed by instance norm, whose gradient is zero in
  # exact arithmetic, up to steps of ~lr that differ between 1 and 4 devices.
  config = test_training.tiny_config("cyclegan_edges2fashion")
  with config.unlocked():
    for group in config.optim:
      config.optim[group].update(name="sgd", learning_rate=1.0)
  initial = run.Setup(config, num_devices=1).initial_state
  state_1, metrics_1 = test_training.one_step(config, num_devices=1)
  state_4, metrics_4 = test_training.one_step(config, num_devices=4)
  # The convs whose bias no instance norm follows: G's last (model_18 with one block), D's first and last.
  unnormalised = {"g_ab": ("model_18",), "g_ba": ("model_18",), "d_a": ("model_0", "model_5"),
                  "d_b": ("model_0", "model_5")}
  flat = [flax.traverse_util.flatten_dict(jax.device_get(s.params)) for s in (initial, state_1, state_4)]
  for path, start in flat[0].items():
    grad_1, grad_4 = flat[1][path] - start, flat[2][path] - start
    if path[-1] == "bias" and path[1] not in unnormalised[path[0]]:
      assert np.abs(grad_1).max() < 1e-4 and np.abs(grad_4).max() < 1e-4, path  # zero up to float noise
    else:
      # Rounding in a float sum scales with its terms, not its result: the first conv's kernel gradient passes
      # through instance norm's backward (means subtracted), where 1- and 4-device summation orders differed
      # by 2e-4 on entries of ~0.3-1 beside a largest entry of 12 (an AMD EPYC host). So: relative to the
      # leaf's largest entry.
      np.testing.assert_allclose(grad_4, grad_1, rtol=1e-4, atol=1e-4 * np.abs(grad_1).max() + 1e-6,
                                 err_msg=str(path))
  for a, b in zip(jax.tree.leaves(state_1.model_state), jax.tree.leaves(state_4.model_state)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)  # pools, fakes, step key
  assert int(state_4.model_state["pool_b"]["count"]) == 8
  for key in metrics_1:
    np.testing.assert_allclose(metrics_1[key], metrics_4[key], rtol=1e-4, atol=1e-6)


def test_sampling_translates_the_source_and_refuses_without_it(tmp_path):
  _fashion_like(str(tmp_path), side=8)
  config = _tiny("cyclegan_edges2fashion")
  with config.unlocked():
    config.data.path = str(tmp_path)
  variant = get_variant("cyclegan")(config)
  params, model_state = jax.jit(variant.init)(jax.random.key(0))
  with pytest.raises(ValueError, match="translates inputs: sample"):
    variant.sample(params, model_state, jax.random.key(0), 2)
  grid = jax.jit(variant.grid)(params, model_state, jax.random.key(0))
  held = variant.held_out(8)
  assert grid.shape == (6, 3, 8, 8, 1)  # the 6 test pairs: input | output | target
  np.testing.assert_array_equal(grid[:, 0], held["source"])
  np.testing.assert_array_equal(grid[:, 2], held["target"])
  expected = jax.jit(lambda p, s, x: common.apply_module(variant.modules["g"], p, s, x, train=True)[0])(
      params["g_ab"], model_state["g_ab"], held["source"])
  np.testing.assert_allclose(grid[:, 1], expected, rtol=1e-5, atol=1e-6)


def test_feature_fid_is_the_frechet_distance_of_the_two_sets():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(200, 3))
  assert translation.feature_fid(x, x) == pytest.approx(0, abs=1e-6)
  # Shifting every feature by d moves only the means: the distance is |d|^2.
  assert translation.feature_fid(x + np.array([1.0, 2.0, 0.0]), x) == pytest.approx(5.0, rel=1e-6)
  # Scaling by 2 around the mean: trace(S + 4 S - 2 * 2 S) = trace(S).
  scaled = 2 * (x - x.mean(0)) + x.mean(0)
  assert translation.feature_fid(scaled, x) == pytest.approx(np.trace(np.cov(x, rowvar=False)), rel=1e-6)


def _translation_eval_config(tmp_path, monkeypatch, **eval_fields):
  """pix2pix's translation metrics at 16x16 on a generated Fashion-MNIST folder, with an untrained classifier
  (drawn with numpy: the metric's arithmetic does not depend on what the classifier learnt)."""
  from gans import evaluation
  from gans.metrics import classifier
  _fashion_like(str(tmp_path), count=40, side=16)
  config = _tiny("pix2pix_edges2fashion")
  with config.unlocked():
    config.data.update(path=str(tmp_path), resolution=16)
    config.eval.update(metrics=("translation",), num_samples=40, **eval_fields)
  variables = {"params": classifier.numpy_init(classifier.Classifier(10), (32, 32, 1), 0)}
  monkeypatch.setattr(classifier, "cached_classifier", lambda *args, **kwargs: (variables, 0.5, "untrained"))
  held = get_variant("pix2pix")(config).held_out(40)
  return evaluation, config, held, variables


def test_translations_equal_to_the_targets_score_perfectly(tmp_path, monkeypatch):
  evaluation, config, held, variables = _translation_eval_config(tmp_path, monkeypatch)

  def as_targets(n, source):
    np.testing.assert_array_equal(source, held["source"][:n])
    return held["target"][:n]

  results = evaluation.evaluate(config, as_targets)
  assert results["translation_count"] == 40 and results["translation_l1"] == 0 and results["translation_ssim"] == 1
  assert results["translation_classifier_fid"] == pytest.approx(0, abs=1e-3)
  assert results["translation_classifier_accuracy"] == results["translation_classifier_accuracy_real"]
  assert "translation_fid" not in results  # no Inception weights given

  # A constant output has no spread: the distance is |mu_real - f(constant)|^2 + trace(Sigma_real).
  constant = evaluation.evaluate(config, lambda n, source: np.zeros_like(held["target"][:n]))
  from gans.metrics import classifier
  real = classifier.predict(variables, held["target"])["features"].astype(np.float64)
  grey = classifier.predict(variables, np.zeros_like(held["target"][:1]))["features"][0]
  expected = np.sum((real.mean(0) - grey) ** 2) + np.trace(np.cov(real, rowvar=False))
  assert constant["translation_classifier_fid"] == pytest.approx(expected, rel=1e-3)
  assert expected > 100 * 1e-3 and constant["translation_l1"] > 0.1  # far from the perfect score's 0


def test_translation_fid_and_kid_go_through_the_inception_features(tmp_path, monkeypatch):
  # The real Inception weights cannot be downloaded here: the extractor is replaced by one whose "pool3"
  # features are the images' pixels, which makes the expected FID and KID computable from the images.
  from gans.metrics import kid
  evaluation, config, held, _ = _translation_eval_config(tmp_path, monkeypatch, inception_weights="given.pth",
                                                      kid_subsets=3, kid_subset_size=20)

  class Pixels:
    batch_size = 16

    def __call__(self, batches):
      return {"pool3": np.concatenate([b.reshape(len(b), -1) for b in batches])}

  monkeypatch.setattr(evaluation, "_shared_inception_extractor", lambda config, samples: (Pixels(), "pixels"))
  monkeypatch.setattr(evaluation, "check_config", lambda config: None)  # "given.pth" is not a file
  shifted = held["target"] + 0.5
  results = evaluation.evaluate(config, lambda n, source: shifted[:n])
  pixels = lambda images: np.repeat(images, 3, axis=-1).reshape(len(images), -1)  # grey reaches it as RGB
  assert results["translation_fid"] == pytest.approx(translation.feature_fid(pixels(shifted), pixels(held["target"])))
  assert results["translation_fid"] == pytest.approx(0.25 * 16 * 16 * 3, rel=1e-4)  # every feature moved by 0.5
  expected_kid = kid.kernel_inception_distance(pixels(held["target"]), pixels(shifted), 3, 20)
  assert (results["translation_kid"], results["translation_kid_std"]) == pytest.approx(expected_kid)


def test_unpaired_translations_are_judged_against_the_real_output_domain(tmp_path, monkeypatch):
  from gans import evaluation
  _domain(tmp_path / "testA", [10, 20, 30])
  _domain(tmp_path / "testB", [200, 210])
  config = _tiny("cyclegan_horse2zebra")
  with config.unlocked():
    config.data.update(source="unpaired_folder", path=str(tmp_path), resolution=6, channels=1)
    config.eval.update(metrics=("translation",), num_samples=5, inception_weights="given.pth", kid_subsets=2)
  monkeypatch.setattr(evaluation, "_shared_inception_extractor", lambda config, samples: (
      type("Means", (), {"batch_size": 4, "__call__": lambda self, batches: {
          "pool3": np.concatenate([np.stack([b.mean((1, 2, 3)), b.std((1, 2, 3))], 1) for b in batches])}})(),
      "means"))
  monkeypatch.setattr(evaluation, "check_config", lambda config: None)
  inputs = []
  results = evaluation.evaluate(config, lambda n, source: inputs.append(source) or source * 0 - 0.5)
  assert results["translation_count"] == 3 and "translation_l1" not in results  # testA's 3; no pairs
  np.testing.assert_allclose(inputs[0][:, 0, 0, 0], np.array([10, 20, 30]) / 127.5 - 1, atol=1e-6)
  # Outputs: three images of -0.5; real B: 200 and 210 in [-1, 1]. Features (mean, std): the means differ.
  real = np.array([[200 / 127.5 - 1, 0], [210 / 127.5 - 1, 0]])
  expected = translation.feature_fid(np.array([[-0.5, 0.0]] * 3), real)
  assert results["translation_fid"] == pytest.approx(expected, rel=1e-4) and expected > 0.1
  assert "translation_kid" in results
