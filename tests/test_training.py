"""The training core: every experiment steps, devices agree, resume is exact, sampling and errors behave."""
import contextlib
import json
import os
import signal
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiments
from gans import checkpoint, run, sampling, sharding, steps, trainer
from gans.variants import common

# Shrinks any experiment to tiny shapes; a field is only overridden where the experiment has it.
TINY_MODEL = {"g_hidden": (16, 16), "d_hidden": (16,), "g_channels": 4, "d_channels": 4, "z_dim": 8,
              # pix2pix / CycleGAN: a one-block ResNet generator and a one-layer PatchGAN fit 8x8 images.
              "generator": "resnet", "n_blocks": 1, "ngf": 2, "ndf": 2, "n_layers_d": 1,
              "moments_clips": 0,  # SpecGAN: unit spectrogram moments, no data read
              # SRResNet / SRGAN: one narrow block, a narrow D, and SRGAN's phases from step 0 (no pretraining).
              "blocks": 1, "features": 4, "d_features": 2, "d_dense": 8, "pretrain_steps": 0,
              "content": "mse",  # SRGAN: no VGG19 file here
              "stage1_resolution": 4}  # StackGAN: Stage-I 4x4 under Stage-II's 8x8
# Variants whose batches are image pairs {"a": inputs, "b": outputs} rather than {"image"}.
IMAGE_PAIR_VARIANTS = ("pix2pix", "cyclegan")
# Sources whose batches also carry "caption" (and "embedding" for precomputed text encoders).
CAPTION_SOURCES = ("captioned_shapes", "caption_folder")
# Experiments without a discriminator: their step is the generator phase alone.
GENERATOR_ONLY = ("srresnet_photos", "srresnet_div2k")


def tiny_config(name: str, **train):
  config = experiments.get_config(name)
  with config.unlocked():
    for field, value in TINY_MODEL.items():
      if field in config.model:
        config.model[field] = value
    if config.data.source in common.AUDIO_SOURCES:  # 2 frames of WaveGAN's first layer; SpecGAN's 32 x 64
      config.data.sample_rate, config.data.clip_length = 8000, 2048
    elif config.data.source not in common.MIXTURE_SOURCES:
      config.data.resolution = 8
    if "crop_size" in config.data:
      config.data.crop_size = 0  # no crop: the tiny resolution
    config.train.batch_size = 8 * config.model.get("pack", 1)
    config.train.update(train)
    config.eval.num_samples = 100
  return config


def synthetic_batches(config, batches_per_step: int, key=jax.random.key(0)):
  shape = (batches_per_step, config.train.batch_size) + common.data_shape(config.data)
  name = "audio" if config.data.source in common.AUDIO_SOURCES else {3: "x", 5: "image", 6: "voxels"}[len(shape)]
  if config.variant in IMAGE_PAIR_VARIANTS:
    a_key, b_key = jax.random.split(key)
    batch = {"a": jax.random.uniform(a_key, shape, minval=-1.0, maxval=1.0),
             "b": jax.random.uniform(b_key, shape, minval=-1.0, maxval=1.0)}
    if config.data.source == "edges2fashion":
      batch["label"] = jnp.zeros(shape[:2], jnp.int32)
    return batch
  batch = {name: jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)}
  if name == "voxels":  # occupancies in [0, 1]
    batch[name] = (batch[name] + 1.0) / 2
  if name != "x" and config.data.source not in ("folder", "voxel_folder"):  # these folders carry no labels
    batch["label"] = jnp.zeros(shape[:2], jnp.int32)
  if config.data.source in CAPTION_SOURCES:  # character ids of a caption, and its sentence embedding if precomputed
    caption_key, embedding_key = jax.random.split(jax.random.fold_in(key, 1))
    batch["caption"] = jax.random.randint(caption_key, shape[:2] + (config.data.caption_length,), 1, 40)
    if config.model.get("text_encoder") == "precomputed":
      batch["embedding"] = jax.random.normal(embedding_key, shape[:2] + (config.model.embedding_dim,))
  return batch


def one_step(config, num_devices: int):
  setup = run.Setup(config, num_devices=num_devices)
  phases = steps.due_phases(setup.variant, 0)
  train_step = jax.jit(steps.make_train_step(setup.variant, setup.optimizers, phases, config.ema.decay))
  batches = synthetic_batches(config, steps.batches_per_step(setup.variant, phases))
  batches = jax.device_put(batches, sharding.batch_sharding(setup.mesh, batch_axis=1))
  return train_step(setup.initial_state, batches, jax.random.key(7))


@pytest.mark.parametrize("name", experiments.NAMES)
def test_every_experiment_builds_and_takes_a_finite_step(name):
  config = tiny_config(name)
  state, metrics = one_step(config, num_devices=1)
  assert int(state.step) == 1
  assert metrics and all(np.isfinite(float(v)) for v in metrics.values()), metrics
  assert ({"g_main/loss"} if name in GENERATOR_ONLY else {"d_main/loss", "g_main/loss"}) <= set(metrics)


def assert_four_devices_give_the_numbers_of_one(config, compared=lambda state: state.params):
  """One step on 4 devices equals one on 1: `compared(state)` and every metric within rtol 1e-4, atol 1e-6.
  Returns (metrics on 1 device, state on 4 devices)."""
  state_1, metrics_1 = one_step(config, num_devices=1)
  state_4, metrics_4 = one_step(config, num_devices=4)
  for a, b in zip(jax.tree.leaves(compared(state_1)), jax.tree.leaves(compared(state_4))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  for name in metrics_1:
    np.testing.assert_allclose(metrics_1[name], metrics_4[name], rtol=1e-4, atol=1e-6)
  return metrics_1, state_4


@pytest.mark.parametrize("name", ["pacgan_ring8", "dcgan_digits", "gan3d_shapes"])
def test_four_devices_give_the_numbers_of_one(name):
  _, state_4 = assert_four_devices_give_the_numbers_of_one(tiny_config(name))
  assert state_4.params["g"] is not None and len(jax.tree.leaves(state_4.params)[0].sharding.device_set) == 4


def test_the_step_changes_exactly_the_phase_groups():
  config = tiny_config("gan_ring8")
  setup = run.Setup(config, num_devices=1)
  d_only = jax.jit(steps.make_train_step(setup.variant, setup.optimizers, ("d_main",), 0.9))
  state, _ = d_only(setup.initial_state, synthetic_batches(config, 1), jax.random.key(0))
  unchanged = jax.tree.map(np.array_equal, state.params["g"], setup.initial_state.params["g"])
  changed = jax.tree.map(np.array_equal, state.params["d"], setup.initial_state.params["d"])
  assert all(jax.tree.leaves(unchanged)) and not any(jax.tree.leaves(changed))


def _phases_with(variant, **fields):
  return variant._replace(phases=tuple(phase._replace(**fields) for phase in variant.phases))


def test_batch_multiple_reads_merged_batches_and_lr_multiple_scales_the_update():
  config = tiny_config("gan_ring8", batch_size=8)
  with config.unlocked():
    config.ema.enabled = True
  setup = run.Setup(config, num_devices=1)
  phases = ("d_main", "g_main")
  key = jax.random.key(3)

  def step(variant, batches):
    return jax.jit(steps.make_train_step(variant, setup.optimizers, phases, 0.9))(setup.initial_state, batches, key)

  two_batches = synthetic_batches(config, 2)
  # Without the one-batch prepare (G once per step), each phase draws its own fakes, as with n_critic > 1.
  variant = setup.variant._replace(prepare=None)
  doubled = _phases_with(variant, batch_multiple=2)
  assert steps.batches_per_step(doubled, phases) == 2
  merged, _ = step(doubled, two_batches)
  # The same step on one batch of 16 holding those 16 examples (example-major order).
  one_batch = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1).reshape((1, -1) + x.shape[2:]), two_batches)
  plain, _ = step(variant, one_batch)
  for a, b in zip(jax.tree.leaves(merged.params), jax.tree.leaves(plain.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  # EMA decay counts global batches: a step on two of them decays like two steps, 0.9 ** 2.
  ema = jax.tree.map(lambda e, p: 0.81 * e + 0.19 * p, setup.initial_state.ema_params["g"], merged.params["g"])
  for a, b in zip(jax.tree.leaves(merged.ema_params["g"]), jax.tree.leaves(ema)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)

  first_batch = jax.tree.map(lambda x: x[:1], two_batches)
  base, _ = step(setup.variant, first_batch)
  faster, _ = step(_phases_with(setup.variant, lr_multiple=2.5), first_batch)
  # D updates first, from the same state in both runs (G's update then sees a different D).
  for start, a, b in zip(*(jax.tree.leaves(s.params["d"]) for s in (setup.initial_state, base, faster))):
    np.testing.assert_allclose(b - start, 2.5 * (a - start), rtol=1e-4, atol=1e-7)


def test_the_g_phase_learns_through_the_prepared_fakes_as_through_its_own_forward_pass():
  """common.standard_training with n_critic 1: G runs once per step (prepare), G's loss and gradient through those
  fakes (Prepared.replay) equal a G forward pass of the G phase's own with the same latents."""
  config = tiny_config("dcgan_digits")
  setup = run.Setup(config, num_devices=1)
  params, model_state = setup.initial_state.params, setup.initial_state.model_state
  batch = jax.tree.map(lambda x: x[0], synthetic_batches(config, 1))
  key = jax.random.key(5)  # the prepare's and the G phase's: the same z
  g_main = [phase for phase in setup.variant.phases if phase.name == "g_main"][0]
  prepared = setup.variant.prepare(params, model_state, batch, key, ("d_main", "g_main"))

  @jax.jit
  def losses_and_grads(params):
    through = lambda g, b: g_main.loss({**params, "g": g}, model_state, b, key)
    return (jax.value_and_grad(through, has_aux=True)(params["g"], prepared),
            jax.value_and_grad(through, has_aux=True)(params["g"], batch))  # no "fake": G runs in the phase

  ((loss, (_, state)), grads), ((own_loss, (_, own_state)), own_grads) = losses_and_grads(params)
  assert float(loss) == pytest.approx(float(own_loss), rel=1e-5)
  for a, b in zip(jax.tree.leaves((grads, state["g"])), jax.tree.leaves((own_grads, own_state["g"]))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)) > 0


def test_n_critic_runs_the_discriminator_on_separate_batches():
  config = tiny_config("gan_ring8", n_critic=3)
  setup = run.Setup(config, num_devices=1)
  assert steps.batches_per_step(setup.variant, ("d_main", "g_main")) == 3
  state, metrics = one_step(config, num_devices=1)
  # Adam's step count in D's optimizer state counts its updates: three per generator step.
  counts = [leaf for leaf in jax.tree.leaves(state.opt_state["d"]) if leaf.dtype == jnp.int32]
  assert counts and all(int(c) == 3 for c in counts)
  g_counts = [leaf for leaf in jax.tree.leaves(state.opt_state["g"]) if leaf.dtype == jnp.int32]
  assert all(int(c) == 1 for c in g_counts)


def test_ema_tracks_the_generator():
  config = tiny_config("gan_ring8")
  with config.unlocked():
    config.ema.enabled = True
    config.ema.decay = 0.5
  setup = run.Setup(config, num_devices=1)
  state, _ = one_step(config, num_devices=1)
  before, after = setup.initial_state.params["g"], state.params["g"]
  expected = jax.tree.map(lambda b, a: 0.5 * b + 0.5 * a, before, after)
  for e, got in zip(jax.tree.leaves(expected), jax.tree.leaves(state.ema_params["g"])):
    np.testing.assert_allclose(got, e, rtol=1e-6)
  assert steps.sampling_params(state)["g"] is state.ema_params["g"]


def params_of(workdir, config):
  setup = run.Setup(config)
  _, state, _, step = setup.restore_latest(workdir)
  return step, state


def train_straight_and_resumed(config, root, stop_at: int) -> tuple[str, str]:
  """Workdirs under root of config.train.steps trained at once ("straight") and of the same run stopped after
  `stop_at` steps, then resumed to the end ("interrupted")."""
  steps = config.train.steps
  straight, interrupted = os.path.join(root, "straight"), os.path.join(root, "interrupted")
  trainer.train_and_evaluate(config, straight)
  for end in (stop_at, steps):
    with config.unlocked():
      config.train.steps = end
    trainer.train_and_evaluate(config, interrupted)
  return straight, interrupted


def assert_resumed_equals_straight(config, straight: str, interrupted: str):
  """Both workdirs' latest states are at config.train.steps and equal leaf for leaf; returns the resumed one."""
  (step_a, a), (step_b, b) = params_of(straight, config), params_of(interrupted, config)
  assert step_a == step_b == config.train.steps
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))
  return b


def test_resume_equals_uninterrupted(tmp_path):
  config = tiny_config("pacgan_ring8", steps=6, checkpoint_every=3, log_every=3, sample_every=0)
  with config.unlocked():
    config.eval.metrics = ()
  assert_resumed_equals_straight(config, *train_straight_and_resumed(config, str(tmp_path), stop_at=3))


def test_a_run_leaves_its_reports(tmp_path):
  config = tiny_config("gan_ring8", steps=4, log_every=2, sample_every=2, checkpoint_every=2)
  trainer.train_and_evaluate(config, str(tmp_path))
  names = set(os.listdir(tmp_path))
  assert {"config.json", "metrics.jsonl", "eval.jsonl", "samples", "checkpoints"} <= names
  assert any(name.startswith("events.out.tfevents") for name in names)
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in records] == [2, 4] and "d_main/loss" in records[0]
  evaluation = json.loads(open(tmp_path / "eval.jsonl").readline())
  assert {"step", "modes", "high_quality", "reverse_kl"} <= set(evaluation)
  assert sorted(os.listdir(tmp_path / "samples")) == ["step_0000002.png", "step_0000004.png"]
  assert json.load(open(tmp_path / "config.json"))["train"]["steps"] == 4


def test_sample_mode_writes_what_it_promises_and_repeats_itself(tmp_path):
  config = tiny_config("dcgan_digits", steps=1, sample_every=0)
  trainer.train_and_evaluate(config, str(tmp_path))
  path = sampling.write_samples(config, str(tmp_path), 10)
  first = np.load(path)["samples"]
  assert first.shape == (10, 8, 8, 1) and first.min() >= -1 and first.max() <= 1
  assert os.path.exists(tmp_path / "samples.png")
  second = np.load(sampling.write_samples(config, str(tmp_path), 10))["samples"]
  np.testing.assert_array_equal(first, second)


def test_a_checkpoint_of_another_config_is_refused_by_name(tmp_path):
  config = tiny_config("gan_ring8", steps=1)
  trainer.train_and_evaluate(config, str(tmp_path))
  with config.unlocked():
    config.model.g_hidden = (32,)
  with pytest.raises(checkpoint.CheckpointError, match=r"(?s)config\.model\.g_hidden: checkpoint has \[16, 16\].*new --workdir"):
    trainer.train_and_evaluate(config, str(tmp_path))


def test_a_corrupt_checkpoint_is_an_error_not_a_restart(tmp_path):
  config = tiny_config("gan_ring8", steps=1)
  trainer.train_and_evaluate(config, str(tmp_path))
  state_dir = tmp_path / "checkpoints" / "1" / "state"
  for root, _, files in os.walk(state_dir):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  with config.unlocked():
    config.train.steps = 2
  with pytest.raises(checkpoint.CheckpointError, match="corrupt|cannot be read"):
    trainer.train_and_evaluate(config, str(tmp_path))


def test_sigterm_at_a_checkpoint_step_saves_that_step_once(tmp_path, monkeypatch):
  """The preemption and the periodic checkpoint fall on one step (it happened in CI with two processes)."""
  config = tiny_config("gan_ring8", steps=10, log_every=1, checkpoint_every=2, sample_every=0)
  monkeypatch.setattr(trainer, "_sigterm_flag", lambda: contextlib.nullcontext(lambda step: step == 4))
  with pytest.raises(trainer.Preempted, match="saved a checkpoint at step 4"):
    trainer.train_and_evaluate(config, str(tmp_path))
  assert checkpoint.Checkpointer(str(tmp_path)).latest_step() == 4


def test_sigterm_saves_a_checkpoint_then_resumes(tmp_path):
  config = tiny_config("gan_ring8", steps=100_000, log_every=1, checkpoint_every=100_000, sample_every=0)
  metrics_file = tmp_path / "metrics.jsonl"

  def preempt_after_first_steps():
    while not (metrics_file.exists() and metrics_file.stat().st_size > 0):
      threading.Event().wait(0.05)
    os.kill(os.getpid(), signal.SIGTERM)

  threading.Thread(target=preempt_after_first_steps, daemon=True).start()
  with pytest.raises(trainer.Preempted, match="rerun the same command"):
    trainer.train_and_evaluate(config, str(tmp_path))
  saved_step = checkpoint.Checkpointer(str(tmp_path)).latest_step()
  assert saved_step is not None and 1 <= saved_step < 100_000
  assert signal.getsignal(signal.SIGTERM) is not None  # the previous handler is back
