"""StyleGAN v1: the growing schedule, the fade-in at alpha 0 and 1, stage switching in training, devices agree.

Also the contract pieces progressive growing added: Phase start/stop in due_phases, log_as.
Network variables are drawn with numpy (jax.random compiles slowly on CPU).
"""
import json

import jax
import numpy as np
import pytest

import experiments
from gans import layers, run, sharding, steps, trainer
from gans.state import GanVariant, Phase
from gans.variants import stylegan


def tiny_config(resolution=16, stable_steps=1, fade_steps=2, **train):
  config = experiments.get_config("stylegan_digits")
  with config.unlocked():
    config.data.resolution = resolution
    config.model.update(z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8,
                        stable_steps=stable_steps, fade_steps=fade_steps)
    config.train.batch_size = 8
    config.train.update(train)
  return config


def numpy_variables(module, *args, seed=0, **kwargs):
  """The module's variables with every leaf drawn from N(0, 0.5^2) by numpy."""
  shapes = jax.eval_shape(lambda: module.init({"params": jax.random.key(0)}, *args, **kwargs))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: (0.5 * rng.standard_normal(s.shape)).astype(np.float32), shapes)


def test_due_phases_honours_start_stop_and_every():
  loss = lambda *args: None
  variant = GanVariant(init=None, sample=None, phases=(
    Phase("first", loss, ("d",), stop=3), Phase("second", loss, ("d",), start=3, stop=6),
    Phase("last", loss, ("d",), start=6, every=2), Phase("always", loss, ("g",))))
  due = [steps.due_phases(variant, step) for step in range(9)]
  assert due == [("first", "always")] * 3 + [("second", "always")] * 3 + [
    ("last", "always"), ("always",), ("last", "always")]


def test_growing_schedule_and_alpha():
  stages = stylegan.growing_schedule(8, 64, stable_steps=10, fade_steps=4)
  assert [(s.resolution, s.start, s.stop, s.fade) for s in stages] == [
    (8, 0, 10, 0), (16, 10, 24, 4), (32, 24, 38, 4), (64, 38, None, 4)]
  assert stages[0].alpha(5) is None
  np.testing.assert_allclose([float(stages[2].alpha(step)) for step in (24, 25, 27, 28, 37)], [0, 0.25, 0.75, 1, 1])
  with pytest.raises(ValueError, match="start_resolution"):
    stylegan.growing_schedule(4, 64, 10, 4)


def test_per_resolution_batches_shorten_stages_to_the_same_images():
  stages = stylegan.growing_schedule(8, 32, stable_steps=10, fade_steps=4, batch_multiples=((8, 4), (16, 2)),
                                     lr_multiples=((32, 1.5),))
  assert [(s.resolution, s.start, s.stop, s.fade, s.batch_multiple, s.lr_multiple) for s in stages] == [
    (8, 0, 3, 0, 4, 1.0), (16, 3, 10, 2, 2, 1.0), (32, 10, None, 4, 1, 1.5)]
  config = tiny_config(resolution=32, stable_steps=10, fade_steps=4)
  with config.unlocked():
    config.model.batch_multiples = ((8, 4), (16, 2))
  batch = config.train.batch_size
  # 8x8: 3 steps of 4 batches; 16x16: 7 steps of 2 batches; then one batch per step.
  assert stylegan.steps_for_images(config, 3 * 4 * batch) == 3
  assert stylegan.steps_for_images(config, (3 * 4 + 7 * 2 + 5) * batch) == 15
  phases = {phase.name: phase for phase in run.get_variant("stylegan")(config).phases}
  assert (phases["d_main@8"].batch_multiple, phases["g_main@16"].batch_multiple) == (4, 2)


def test_reals_are_downsampled_and_faded_like_the_generator():
  images = np.random.default_rng(0).standard_normal((2, 32, 32, 1)).astype(np.float32)
  stage = stylegan.Stage(16, start=0, stop=None, fade=4)
  box16 = images.reshape(2, 16, 2, 16, 2, 1).mean(axis=(2, 4))
  box8_up = np.repeat(np.repeat(box16.reshape(2, 8, 2, 8, 2, 1).mean(axis=(2, 4)), 2, 1), 2, 2)
  np.testing.assert_allclose(stylegan.real_images_at(stage, images, None), box16, rtol=1e-6)
  np.testing.assert_allclose(stylegan.real_images_at(stage, images, 0.0), box8_up, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(stylegan.real_images_at(stage, images, 1.0), box16, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def networks():
  config = tiny_config()
  variant = run.get_variant("stylegan")(config)
  return variant.modules["g"], variant.modules["d"]


def test_generator_fade_in_at_alpha_0_and_1(networks):
  generator, _ = networks
  variables = numpy_variables(generator, np.zeros((1, 8), np.float32), None, 16, None, "const", True)
  ws = np.random.default_rng(1).standard_normal((2, generator.num_ws, 8)).astype(np.float32)
  synthesize = jax.jit(lambda ws, alpha, resolution: generator.apply(
    variables, ws, resolution, alpha, "const", method=stylegan.Generator.synthesize), static_argnums=2)
  img8 = synthesize(ws, None, 8)
  faded = {alpha: np.asarray(synthesize(ws, alpha, 16)) for alpha in (0.0, 0.5, 1.0)}
  assert img8.shape == (2, 8, 8, 1) and faded[0.0].shape == (2, 16, 16, 1)
  # alpha 0: exactly the previous stage's output, upsampled; alpha 1: the new resolution alone.
  np.testing.assert_allclose(faded[0.0], layers.upsample_nearest(img8), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(faded[1.0], synthesize(ws, None, 16), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(faded[0.5], (faded[0.0] + faded[1.0]) / 2, rtol=1e-4, atol=1e-5)
  assert np.abs(faded[1.0] - faded[0.0]).mean() > 1e-2  # the two ends differ: the blend is not vacuous


def test_discriminator_fade_in_at_alpha_0_and_1(networks):
  _, discriminator = networks
  variables = numpy_variables(discriminator, np.zeros((1, 16, 16, 1), np.float32), None, True, seed=2)
  images = np.random.default_rng(3).standard_normal((4, 16, 16, 1)).astype(np.float32)
  logits = jax.jit(lambda img, alpha: discriminator.apply(variables, img, alpha))
  at_0, at_1 = logits(images, 0.0), logits(images, 1.0)
  # alpha 0: the 8x8 discriminator on the box-downsampled image; alpha 1: the 16x16 one alone.
  np.testing.assert_allclose(at_0, logits(layers.downsample_box(images), None), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(at_1, logits(images, None), rtol=1e-4, atol=1e-5)
  assert np.abs(np.asarray(at_1) - np.asarray(at_0)).max() > 1e-3


def metrics_by_step(workdir):
  return [json.loads(line) for line in open(workdir / "metrics.jsonl")]


def test_training_switches_stage_and_fades(tmp_path):
  # Stage 8x8 for step 0 (two base batches at once: 2 stable steps' images), then 16x16 fading in
  # over steps 1-2 (alpha 0, 0.5), stable from step 3.
  config = tiny_config(stable_steps=2, steps=4, log_every=1, sample_every=0, checkpoint_every=100)
  with config.unlocked():
    config.model.batch_multiples = ((8, 2),)
  state = trainer.train_and_evaluate(config, str(tmp_path), num_devices=1)
  records = metrics_by_step(tmp_path)
  assert [(r["step"], r["d_main/resolution"], r["g_main/alpha"]) for r in records] == [
    (1, 8, 1.0), (2, 16, 0.0), (3, 16, 0.5), (4, 16, 1.0)]
  assert int(state.step) == int(state.model_state["step"]) == 4
  assert not np.allclose(state.model_state["w_avg"], 0)


def test_a_fading_step_on_four_devices_gives_the_numbers_of_one():
  config = tiny_config()
  with config.unlocked():
    # SGD, not Adam: the bias before the first instance norm has an exactly-zero gradient at init
    # (the constant input is flat), and Adam would turn its rounding noise into +-lr updates.
    config.optim.g.name = config.optim.d.name = "sgd"
  images = np.random.default_rng(0).uniform(-1, 1, (1, 8, 16, 16, 1)).astype(np.float32)
  results = []
  for num_devices in (1, 4):
    setup = run.Setup(config, num_devices=num_devices)
    state = setup.initial_state
    state = state.replace(step=state.step + 2, model_state=dict(state.model_state, step=state.model_state["step"] + 2))
    phases = steps.due_phases(setup.variant, 2)
    train_step = jax.jit(steps.make_train_step(setup.variant, setup.optimizers, phases, config.ema.decay))
    batches = jax.device_put({"image": images}, sharding.batch_sharding(setup.mesh, batch_axis=1))
    results.append(jax.device_get(train_step(state, batches, jax.random.key(3))))
  (state_1, metrics_1), (state_4, metrics_4) = results
  assert phases == ("d_main@16", "g_main@16") and float(metrics_1["g_main/alpha"]) == 0.5
  for name in metrics_1:
    np.testing.assert_allclose(metrics_4[name], metrics_1[name], rtol=1e-4, atol=1e-6, err_msg=name)
  zero_gradient = "['g']['synthesis']['b4_epilogue0']['bias']"  # the bias before the first instance norm (above)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(state_1.params), jax.tree.leaves(state_4.params)):
    if jax.tree_util.keystr(path) == zero_gradient:  # from 0, rounding noise only (1e-7, sign by summation order)
      assert np.abs(a).max() < 1e-5 and np.abs(b).max() < 1e-5, (a, b)
    else:
      np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))
