"""config.model.dtype=bfloat16: one step stays float32 where it must and is close to the float32 step.

The same initial state (float32 parameters, drawn once) and batch go through a float32 and a bfloat16 step.
The optimizers are SGD, so a parameter's change is -lr times its gradient and the relative difference of the
changes is that of the gradients (Adam's first step, lr * g / |g|, would hide it in a sign).

Tolerance: bfloat16 keeps 8 significant bits, a unit roundoff of u = 2^-8 per rounding (float32's is 2^-24).
On its way from the loss to a parameter a gradient goes through some thirty bfloat16 roundings (the forward
and backward pass of D, for G's gradient G's as well; a BatchNorm or a modulated conv is several rounded
elementwise operations), whose relative errors add up at most linearly: 32 u = 1/8 bounds the relative
difference of a parameter group's whole change. Measured when this was written: 1 u to 18 u, the most for
the 2D GAN's G, whose BatchNorm backward subtracts batch means that nearly cancel. From below: a difference
under u / 64 (2^-14, a thousand times float32's rounding) means nothing was rounded to bfloat16, i.e. the
dtype was silently ignored.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiments
from gans import checkpoint, layers, run, steps, winograd
from gans.variants import get_variant
from test_training import synthetic_batches, tiny_config

BF16_ROUNDOFF = 2.0 ** -8  # unit roundoff of bfloat16's 8-bit significand
UPPER = 32 * BF16_ROUNDOFF  # some thirty roundings on a gradient's path, errors adding linearly (docstring)
LOWER = BF16_ROUNDOFF / 64  # below this, nothing was rounded to bfloat16


def stylegan2_tiny_config():
  config = experiments.get_config("stylegan2_digits")
  with config.unlocked():
    config.data.resolution = 8
    config.model.update(z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8)
    config.train.batch_size = 8
  return config


CONFIGS = {
    "gan": lambda: tiny_config("gan_ring8"),
    "dcgan": lambda: tiny_config("dcgan_digits"),
    "stylegan2": stylegan2_tiny_config,
}


def with_dtype(config, dtype: str):
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.model.dtype = dtype
    config.ema.enabled = True
    for group in config.optim:
      config.optim[group] = {"name": "sgd", "learning_rate": 1e-2}
  return config


def main_step(config, state=None):
  """(state before, state after, metrics) of one step of the main phases (no lazy regularisers), one device;
  from the config's initial state unless `state` is given."""
  if state is None:
    state = run.Setup(config, num_devices=1).initial_state
  variant = get_variant(config.variant)(config)
  optimizers = steps.make_optimizers(config.optim, state.params.keys())
  phases = tuple(phase.name for phase in variant.phases if phase.every == 1)
  train_step = jax.jit(steps.make_train_step(variant, optimizers, phases, config.ema.decay))
  batches = synthetic_batches(config, steps.batches_per_step(variant, phases))
  after, metrics = train_step(state, batches, jax.random.key(7))
  return jax.device_get(state), jax.device_get(after), jax.device_get(metrics)


def relative_difference(a, b) -> float:
  """||a - b|| / ||b|| over all leaves of two pytrees of arrays."""
  a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(a)]).astype(np.float64)
  b = np.concatenate([np.ravel(x) for x in jax.tree.leaves(b)]).astype(np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def change(after, before):
  return jax.tree.map(lambda x, y: np.asarray(x, np.float64) - np.asarray(y, np.float64), after, before)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def steps_f32_bf16(request):
  config = CONFIGS[request.param]()
  before, after_f32, metrics_f32 = main_step(with_dtype(config, "float32"))
  _, after_bf16, metrics_bf16 = main_step(with_dtype(config, "bfloat16"), state=before)
  return before, (after_f32, metrics_f32), (after_bf16, metrics_bf16)


def test_a_bfloat16_step_keeps_the_state_and_the_losses_float32_and_finite(steps_f32_bf16):
  _, _, (after, metrics) = steps_f32_bf16
  for part in ("params", "opt_state", "ema_params", "model_state"):
    for path, leaf in jax.tree_util.tree_leaves_with_path(getattr(after, part)):
      if jnp.issubdtype(leaf.dtype, jnp.floating):
        assert leaf.dtype == np.float32, f"{part}{jax.tree_util.keystr(path)} is {leaf.dtype}"
        assert np.all(np.isfinite(leaf)), f"{part}{jax.tree_util.keystr(path)}"
  assert after.ema_params
  for name, value in metrics.items():
    if name != "train/skipped_updates":  # the divergence guard's counter is an integer
      assert np.asarray(value).dtype == np.float32 and np.isfinite(value), name


def test_a_bfloat16_step_is_close_to_the_float32_step_from_the_same_state(steps_f32_bf16):
  before, (after_f32, metrics_f32), (after_bf16, metrics_bf16) = steps_f32_bf16
  for group in before.params:
    delta_f32 = change(after_f32.params[group], before.params[group])
    delta_bf16 = change(after_bf16.params[group], before.params[group])
    difference = relative_difference(delta_bf16, delta_f32)
    assert LOWER < difference < UPPER, (group, difference)
  for name in metrics_f32:
    if name.endswith("loss"):
      np.testing.assert_allclose(metrics_bf16[name], metrics_f32[name], rtol=UPPER, err_msg=name)


def test_a_bfloat16_dtype_name_is_checked():
  config = tiny_config("dcgan_digits")
  config.model.dtype = "float16"
  with pytest.raises(ValueError, match=r"config.model.dtype='float16'.*valid: float32, bfloat16"):
    run.Setup(config, num_devices=1)


def test_a_float32_checkpoint_resumes_in_bfloat16_but_another_model_is_refused(tmp_path):
  config = with_dtype(tiny_config("gan_ring8"), "float32")
  state = run.Setup(config, num_devices=1).initial_state
  checkpointer = checkpoint.Checkpointer(str(tmp_path))
  checkpointer.save(0, state, {}, checkpoint.make_meta(config, state))
  checkpointer.wait()
  bf16 = with_dtype(config, "bfloat16")
  restored, _ = checkpointer.restore(0, state, checkpoint.make_meta(bf16, state))
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
    np.testing.assert_array_equal(a, b)
  with bf16.unlocked():
    bf16.model.z_dim += 1
  with pytest.raises(checkpoint.CheckpointError, match=r"config.model.z_dim: checkpoint has 8, this run has 9"):
    checkpointer.restore(0, state, checkpoint.make_meta(bf16, state))


# Every fast form of gans.layers: Winograd-sized strided conv and transposed conv (4x4, stride 2, padding 1,
# made to qualify by lowering the threshold), the sub-pixel transposed conv (stride 3), a stride-1 conv.
LAYER_CASES = {
    "conv_4x4_s2": (lambda x, k: layers.conv(x, k, 2, 1), (2, 8, 8, 4), (4, 4, 4, 6)),
    "conv_transpose_4x4_s2": (lambda x, k: layers.conv_transpose(x, k, 2, 1), (2, 4, 4, 4), (4, 4, 4, 6)),
    "conv_transpose_3x3_s3": (lambda x, k: layers.conv_transpose(x, k, 3, 1), (2, 4, 4, 4), (3, 3, 4, 6)),
    "conv_3x3_s1": (lambda x, k: layers.conv(x, k, 1, 1), (2, 6, 6, 4), (3, 3, 4, 6)),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_the_fast_layers_keep_bfloat16_and_skip_winograd_for_it(monkeypatch, case):
  fn, x_shape, k_shape = LAYER_CASES[case]
  monkeypatch.setattr(layers, "WINOGRAD_MIN_CHANNELS", 1)
  monkeypatch.setattr(layers, "WINOGRAD_MIN_GRID_PIXELS", 1)
  winograd_calls = []
  for name in ("correlate", "correlate_transpose"):
    original = getattr(winograd, name)
    monkeypatch.setattr(winograd, name, lambda *args, _f=original: winograd_calls.append(1) or _f(*args))
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  x, kernel = jax.random.normal(k1, x_shape), 0.2 * jax.random.normal(k2, k_shape)

  def value_and_grads(x, kernel):
    y, vjp = jax.vjp(fn, x, kernel)
    return (y, *vjp(jax.random.normal(k3, y.shape).astype(y.dtype)))

  with jax.default_matmul_precision("highest"):
    reference = value_and_grads(x, kernel)
  winograd_calls.clear()
  got = value_and_grads(x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16))
  assert not winograd_calls  # float32 only (gans/layers.py `_winograd_applies` says why)
  for name, value, want in zip(("y", "x_grad", "kernel_grad"), got, reference):
    # A custom VJP's cotangents have its inputs' dtypes; each value is one bfloat16 conv of bfloat16 operands
    # away from float32's (a few roundoffs of the largest entry).
    assert value.dtype == jnp.bfloat16, (name, value.dtype)
    np.testing.assert_allclose(np.asarray(value, np.float32), want, rtol=0,
                               atol=8 * BF16_ROUNDOFF * float(jnp.max(jnp.abs(want))), err_msg=name)


def _operand_types(hlo_text: str, op: str) -> list[str]:
  """Element types of the operands of every `op` (e.g. "convolution") in StableHLO text."""
  types = []
  for line in hlo_text.splitlines():
    if f"stablehlo.{op}" in line:
      signature = line.rsplit(": (", 1)[-1]
      types.append(" ".join(sorted(set(re.findall(r"x(bf16|f32)>", signature.split("->")[0])))))
  return types


@pytest.mark.parametrize("name", ["dcgan", "stylegan2"])
def test_the_generator_convolves_in_bfloat16(name):
  config = CONFIGS[name]()
  for dtype, element in (("float32", "f32"), ("bfloat16", "bf16")):
    variant = get_variant(config.variant)(with_dtype(config, dtype))
    params, model_state = jax.eval_shape(variant.init, jax.random.key(0))
    sample = lambda params, model_state: variant.sample(params, model_state, jax.random.key(0), 4)
    hlo = jax.jit(sample).lower(params, model_state).as_text()
    convolutions = _operand_types(hlo, "convolution")
    if name == "dcgan":  # at the tiny test's widths (<= 4 channels) gans.layers computes its convs as matmuls
      convolutions += _operand_types(hlo, "dot_general")
    assert convolutions and set(convolutions) == {element}, (dtype, convolutions)
    out = jax.eval_shape(sample, params, model_state)
    assert out.dtype == jnp.float32  # samples leave in float32 whatever the computation dtype
  if name == "dcgan":  # its dense layer (z -> 4x4) too; StyleGAN2's mapping stays float32 by design
    assert set(_operand_types(hlo, "dot_general")) == {"bf16"}
