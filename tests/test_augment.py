"""DiffAugment and ADA against their definitions, the wrapper that applies them to D's inputs, ADA's controller."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gans import augment, sharding
from gans.augment import ada, diffaugment
from gans.state import GanVariant, Phase


def images(n=4, size=8, channels=3, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n, size, size, channels), minval=-1, maxval=1)


# ---------------------------------------------------------------------------- DiffAugment

def test_translation_moves_pixels_and_shifts_in_zeros():
  x = images()
  shifted = np.asarray(diffaugment.shift_with_zeros(x, jnp.array([0, 2, -3, 1]), jnp.array([0, -1, 2, 7])))
  xs = np.asarray(x)
  for n, (dy, dx) in enumerate([(0, 0), (2, -1), (-3, 2), (1, 7)]):
    expected = np.zeros_like(xs[n])
    for i in range(8):
      for j in range(8):
        if 0 <= i + dy < 8 and 0 <= j + dx < 8:
          expected[i, j] = xs[n, i + dy, j + dx]
    np.testing.assert_array_equal(shifted[n], expected)
  # The random policy draws shifts in [-1, 1] for 8 pixels (int(8 / 8 + 0.5)): each output is one of those.
  out = np.asarray(diffaugment.translation(jax.random.key(3), x))
  for n in range(4):
    assert any(np.array_equal(out[n], np.asarray(diffaugment.shift_with_zeros(x[n:n + 1], jnp.array([dy]),
                                                                             jnp.array([dx])))[0])
               for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def test_cutout_zeroes_one_square_of_half_the_side():
  x = images(n=16) + 2.0  # no zeros of its own
  out = np.asarray(diffaugment.cutout(jax.random.key(1), x))
  for n in range(16):
    zero = out[n, :, :, 0] == 0
    rows, cols = np.nonzero(zero)
    # a 4x4 square, clipped where it hangs over the border, the rest untouched
    assert zero.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert rows.max() - rows.min() + 1 <= 4 and cols.max() - cols.min() + 1 <= 4
    assert (rows.max() - rows.min() + 1 == 4 or rows.min() == 0 or rows.max() == 7)
    assert np.all(out[n][zero] == 0) and np.array_equal(out[n][~zero], np.asarray(x)[n][~zero])
  mask = np.asarray(diffaugment.cutout_mask(8, 8, 4, 4, jnp.array([0]), jnp.array([5])))[0, :, :, 0]
  expected = np.ones((8, 8), bool)
  expected[0:2, 3:7] = False  # rows [0 - 2, 0 + 2) clipped, columns [5 - 2, 5 + 2)
  np.testing.assert_array_equal(mask, expected)


def test_colour_operations_follow_their_formulas():
  x = images(n=6)
  key = jax.random.key(5)
  u = np.asarray(jax.random.uniform(key, (6, 1, 1, 1)))
  np.testing.assert_allclose(diffaugment.brightness(key, x), x + u - 0.5, atol=1e-6)
  mean_c = np.mean(x, axis=3, keepdims=True)
  np.testing.assert_allclose(diffaugment.saturation(key, x), (x - mean_c) * 2 * u + mean_c, atol=1e-6)
  mean_all = np.mean(x, axis=(1, 2, 3), keepdims=True)
  np.testing.assert_allclose(diffaugment.contrast(key, x), (x - mean_all) * (u + 0.5) + mean_all, atol=1e-6)


def test_diffaugment_is_differentiable_and_an_empty_policy_is_the_identity():
  x = images()
  policy = diffaugment.parse_policy("color,translation,cutout")
  grad = jax.grad(lambda x: jnp.sum(diffaugment.diff_augment(jax.random.key(0), x, policy) ** 2))(x)
  assert np.all(np.isfinite(grad)) and np.any(grad != 0)
  assert diffaugment.diff_augment(jax.random.key(0), x, diffaugment.parse_policy("")) is x
  with pytest.raises(ValueError, match="color, translation, cutout"):
    diffaugment.parse_policy("color,zoom")


# ---------------------------------------------------------------------------- ADA: definitions

def test_wavelets_and_filter_bank():
  for taps in (ada.SYM2, ada.SYM6):  # orthonormal: unit norm, orthogonal to their even shifts, sum sqrt(2)
    h = np.asarray(taps)
    auto = np.correlate(h, h, "full")[len(h) - 1::2]
    np.testing.assert_allclose(auto, np.eye(len(auto))[0], atol=1e-9)
    np.testing.assert_allclose(h.sum(), np.sqrt(2), atol=1e-9)
  bank = ada.filter_bank()
  delta = np.zeros(bank.shape[1])
  delta[bank.shape[1] // 2] = 1
  np.testing.assert_allclose(bank.sum(axis=0), delta, atol=1e-9)  # unit gains leave the image as it is


def test_p_zero_is_the_identity():
  x = images()
  everything = ada.preset("bgcfnc")
  np.testing.assert_array_equal(ada.ada_augment(jax.random.key(0), x, jnp.float32(0), everything), x)
  # Computed in full at p = 0, the resampling and the filter bank are the identity up to rounding.
  full = jax.jit(ada.ada_pipeline, static_argnums=3)(jax.random.key(0), x, 0.0, everything)
  np.testing.assert_allclose(full, x, atol=2e-5)


def test_flips_and_quarter_turns_are_exact():
  x = images(n=16)
  flipped = np.asarray(ada.ada_pipeline(jax.random.key(1), x, 1.0, ("xflip",)))
  outcomes = [any(np.array_equal(flipped[n], c) for c in (x[n], x[n, :, ::-1])) for n in range(16)]
  assert all(outcomes)
  assert 0 < sum(np.array_equal(flipped[n], x[n, :, ::-1]) for n in range(16)) < 16
  turned = np.asarray(ada.ada_pipeline(jax.random.key(2), x, 1.0, ("rotate90",)))
  for n in range(16):
    assert any(np.array_equal(turned[n], np.rot90(np.asarray(x[n]), k, axes=(0, 1))) for k in range(4))


def test_integer_translation_moves_pixels_with_reflection():
  x = np.asarray(images())
  out = np.asarray(ada.reflect_translate(jnp.asarray(x), jnp.array([0, 1, -2, 3]), jnp.array([0, -1, 2, 1])))
  for n, (tx, ty) in enumerate([(0, 0), (1, -1), (-2, 2), (3, 1)]):
    padded = np.pad(x[n], ((8, 8), (8, 8), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(out[n], padded[8 + ty:16 + ty, 8 - tx:16 - tx])
  # Drawn by the pipeline: a shift of at most round(8 / 8) = 1 pixel per axis.
  random = np.asarray(ada.ada_pipeline(jax.random.key(3), jnp.asarray(x), 1.0, ("xint",)))
  for n in range(4):
    assert any(np.array_equal(random[n], np.asarray(ada.reflect_translate(jnp.asarray(x[n:n + 1]),
                                                                         jnp.array([tx]), jnp.array([ty])))[0])
               for tx in (-1, 0, 1) for ty in (-1, 0, 1))


def test_geometric_resampling_moves_pixels_where_the_matrix_says():
  geometric = jax.jit(ada.geometric_transform)
  x = images(n=2, size=16)
  # An integer translation through the wide filter is the reflected shift of the pixel blitter, exactly.
  moved = geometric(x, ada.translate2d(jnp.array([-2.0, 3.0]), jnp.array([-1.0, 2.0])))
  np.testing.assert_allclose(moved, ada.reflect_translate(x, jnp.array([2, -3]), jnp.array([-1, 2])), atol=2e-5)
  # Other transforms interpolate: on a smooth image, output pixel p holds the input at g_inv p (origin at the
  # centre) wherever that lies inside the image. (sym6 is not symmetric, so even a quarter turn through this
  # path is only close to np.rot90; the exact one is the blitter's.)
  centred = np.arange(16) - 7.5
  ys, xs = np.meshgrid(centred, centred, indexing="ij")
  blob = lambda x, y: np.exp(-((x - 1) ** 2 + 0.7 * (y + 1) ** 2) / 10)
  smooth = jnp.asarray(np.stack([blob(xs, ys)] * 2)[..., None], jnp.float32)
  theta, sx, sy = np.pi / 6, 0.8, 1.25
  g_inv = jnp.stack([ada.rotate2d(jnp.array([theta]))[0], ada.scale2d(jnp.array([sx]), jnp.array([sy]))[0]])
  out = np.asarray(geometric(smooth, g_inv))[..., 0]
  c, s = np.cos(theta), np.sin(theta)
  for n, (x_in, y_in) in enumerate([(c * xs - s * ys, s * xs + c * ys), (sx * xs, sy * ys)]):
    inside = (np.abs(x_in) < 7) & (np.abs(y_in) < 7)
    np.testing.assert_allclose(out[n][inside], blob(x_in, y_in)[inside], atol=0.02)
  grad = jax.grad(lambda x: jnp.sum(ada.ada_pipeline(jax.random.key(0), x, 0.7, ada.preset("bgc")) ** 2))(x)
  assert np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_colour_matrices_are_the_papers():
  rgb = images(n=3)
  v = ada.LUMA_AXIS[:3]
  luma = np.asarray(rgb) @ v
  b = jnp.array([0.1, -0.3, 0.0])
  np.testing.assert_allclose(ada.apply_color_matrix(rgb, ada.translate3d(b, b, b)),
                             rgb + b[:, None, None, None], atol=1e-6)
  flip = jnp.eye(4) - 2 * jnp.outer(ada.LUMA_AXIS, ada.LUMA_AXIS)
  np.testing.assert_allclose(ada.apply_color_matrix(rgb, jnp.broadcast_to(flip, (3, 4, 4))),
                             rgb - 2 * luma[..., None] * v, atol=1e-6)
  # A third of a turn about the luma axis (1, 1, 1) permutes R, G and B cyclically.
  turned = ada.apply_color_matrix(rgb, ada.rotate3d(ada.LUMA_AXIS, jnp.full((3,), 2 * np.pi / 3)))
  np.testing.assert_allclose(turned, np.roll(np.asarray(rgb), 1, axis=-1), atol=1e-6)
  vv = np.outer(ada.LUMA_AXIS, ada.LUMA_AXIS)
  saturation = jnp.asarray(vv + (np.eye(4) - vv) * 0.5)[None].repeat(3, 0)
  np.testing.assert_allclose(ada.apply_color_matrix(rgb, saturation),
                             luma[..., None] * v + 0.5 * (rgb - luma[..., None] * v), atol=1e-6)
  # One channel: the mean of the matrix's RGB rows (contrast 2 and brightness 0.1 -> 2 x + 0.1).
  gray = images(n=3, channels=1)
  m = ada._matmul(ada.translate3d(0.1, 0.1, 0.1), ada.scale3d(2.0, 2.0, 2.0))
  np.testing.assert_allclose(ada.apply_color_matrix(gray, jnp.broadcast_to(m, (3, 4, 4))), 2 * gray + 0.1,
                             atol=1e-6)


# ---------------------------------------------------------------------------- ADA: the controller

def test_the_controller_follows_a_scripted_sequence_of_d_outputs():
  settings = dict(target=0.6, interval=4, kimg=0.1)  # each move: 8 images * 4 / 100 = 0.32
  state = ada.initial_ada_state(0.0)
  signs = [1.0] + [0.9, 0.7, 0.8, 0.6] + [0.0, 0.2, 0.4, 0.2] + [0.0, 0.0, 0.0, 0.0] + [1.0, 1.0]
  ps = []
  for s in signs:
    state = ada.update_p(state, jnp.float32(s), 8, **settings)
    ps.append(float(state["p"]))
  # Moves after D steps 0, 4, 8 and 12, on the mean of the signs since the last move:
  # 1.0 > 0.6 up; 0.75 > 0.6 up; 0.2 < 0.6 down; 0 < 0.6 down, clamped at 0; then unchanged.
  expected = [0.32] + [0.32] * 3 + [0.64] + [0.64] * 3 + [0.32] + [0.32] * 3 + [0.0] * 3
  np.testing.assert_allclose(ps, expected, atol=1e-6)
  assert float(state["signs"]) == 2.0 and int(state["count"]) == 2
  fixed = ada.update_p(ada.initial_ada_state(0.3), jnp.float32(1.0), 8, target=0.0, interval=4, kimg=0.1)
  assert float(fixed["p"]) == pytest.approx(0.3)


# ---------------------------------------------------------------------------- the wrapper

class TinyD(nn.Module):
  @nn.compact
  def __call__(self, x_NHWC, train: bool = True):
    del train
    return nn.Dense(1)(x_NHWC.reshape(x_NHWC.shape[0], -1))[:, 0]


def tiny_variant():
  """A variant whose phases call D through module.apply, as StyleGAN2's do, on the batch's images."""
  d = TinyD()

  def init(key):
    return {"d": d.init(key, jnp.zeros((1, 8, 8, 3)))["params"]}, {}

  def d_main(params, model_state, batch, key):
    logits = d.apply({"params": params["d"]}, batch["image"])
    return jnp.mean(logits), ({"real_signs": jnp.mean(jnp.sign(logits)), "logits": logits}, model_state)

  return GanVariant(init=init, phases=(Phase("d_main", d_main, updates=("d",)),), sample=None,
                    modules={"d": d})


def augment_config(**fields):
  config = ml_collections.ConfigDict({"augment": augment.default_config(), "model": {},
                                      "data": {"source": "digits", "resolution": 8, "channels": 3}})
  config.augment.update(fields)
  return config


def test_the_wrapper_augments_what_d_sees_with_the_phase_key():
  variant = tiny_variant()
  assert augment.augment_variant(variant, augment_config(policy="")) is variant
  wrapped = augment.augment_variant(variant, augment_config(policy="translation,cutout"))
  params, model_state = wrapped.init(jax.random.key(0))
  batch, key = {"image": images()}, jax.random.key(4)
  logits = wrapped.phases[0].loss(params, model_state, batch, key)[1][0]["logits"]
  policy = diffaugment.parse_policy("translation,cutout")
  seen = diffaugment.diff_augment(jax.random.fold_in(jax.random.fold_in(key, augment.AUGMENT_STREAM), 0),
                                  batch["image"], policy)
  np.testing.assert_allclose(logits, variant.modules["d"].apply({"params": params["d"]}, seen), atol=1e-6)
  assert not np.allclose(logits, variant.modules["d"].apply({"params": params["d"]}, batch["image"]))


def test_ada_state_lives_in_model_state_and_moves_with_d_main():
  wrapped = augment.augment_variant(tiny_variant(), augment_config(policy="ada", ada_p=0.5, ada_kimg=0.1))
  params, model_state = wrapped.init(jax.random.key(0))
  assert float(model_state["augment"]["p"]) == 0.5
  _, (metrics, new_state) = wrapped.phases[0].loss(params, model_state, {"image": images()}, jax.random.key(1))
  moved = abs(float(new_state["augment"]["p"]) - 0.5)
  assert moved == pytest.approx(4 * 4 / 100) and float(metrics["augment_p"]) == float(new_state["augment"]["p"])
  vectors = augment_config(policy="ada")
  vectors.data.source = "ring8"
  with pytest.raises(ValueError, match="gives vectors"):
    augment.augment_variant(tiny_variant(), vectors)


def test_one_and_four_devices_augment_alike():
  x = images(n=8)
  fns = {"ada": lambda key, x: ada.ada_pipeline(key, x, 0.8, ada.preset("bgcfnc")),
         "diffaugment": lambda key, x: diffaugment.diff_augment(key, x, ("color", "translation", "cutout"))}
  for name, fn in fns.items():
    outputs = []
    for devices in (1, 4):
      mesh = sharding.make_mesh(devices)
      sharded = jax.device_put(x, sharding.batch_sharding(mesh, batch_axis=0))
      outputs.append(np.asarray(jax.jit(fn)(jax.random.key(9), sharded)))
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5, err_msg=name)


# ---------------------------------------------------------------------------- in training

def test_an_experiment_with_diffaugment_steps_and_d_sees_the_augmented_images():
  from test_training import one_step, tiny_config
  config = tiny_config("dcgan_digits")
  _, plain = one_step(config, num_devices=1)
  with config.unlocked():
    config.augment.policy = "color,translation,cutout"
  state, augmented = one_step(config, num_devices=1)
  assert int(state.step) == 1 and all(np.isfinite(float(v)) for v in augmented.values())
  assert float(augmented["d_main/real_logits"]) != float(plain["d_main/real_logits"])


def test_resume_with_ada_equals_uninterrupted(tmp_path):
  from test_training import params_of, tiny_config
  from gans import trainer
  config = tiny_config("dcgan_digits", steps=6, checkpoint_every=3, log_every=3, sample_every=0)
  with config.unlocked():
    config.eval.metrics = ()
    config.augment.update(policy="ada", ada_pipe="bgc", ada_p=0.2, ada_interval=2, ada_kimg=0.1)
  trainer.train_and_evaluate(config, str(tmp_path / "straight"))
  interrupted = str(tmp_path / "interrupted")
  with config.unlocked():
    config.train.steps = 3
  trainer.train_and_evaluate(config, interrupted)
  with config.unlocked():
    config.train.steps = 6
  trainer.train_and_evaluate(config, interrupted)
  (step_a, a), (step_b, b) = params_of(str(tmp_path / "straight"), config), params_of(interrupted, config)
  assert step_a == step_b == 6
  # p moved by 8 * 2 / 100 = 0.16 after D steps 0, 2 and 4, each time up or down, clamped at 0
  reachable = {0.2}
  for _ in range(3):
    reachable = {max(q + move, 0.0) for q in reachable for move in (0.16, -0.16)}
  p = float(a.model_state["augment"]["p"])
  assert int(a.model_state["augment"]["steps"]) == 6
  assert min(abs(p - q) for q in reachable) < 1e-5, (p, reachable)
  for x, y in zip(jax.tree.leaves((a.params, a.model_state)), jax.tree.leaves((b.params, b.model_state))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  with open(tmp_path / "straight" / "metrics.jsonl") as f:
    assert all("d_main/augment_p" in line for line in f if line.strip())
