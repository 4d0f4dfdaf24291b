"""Winograd convolutions (gans/winograd.py) and the layers that use them (gans/layers.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gans import layers, winograd

# The plans the layers use, and a 3-tap one: nothing in the code is specific to 2 taps.
PLANS = [winograd.F4_2, winograd.F3_2, winograd.F2_2, winograd.Plan(2, 3, (0.0, 1.0, -1.0))]


def _lax_correlate(x, kernel):
  return lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  precision=lax.Precision.HIGHEST)


def _value_and_vjp(fn, args, cotangent_key):
  """fn(*args) and its gradients for a random cotangent, in one jitted call (eager dispatch of the many small
  transform ops would compile each one separately)."""
  @jax.jit
  def run(*args):
    y, vjp = jax.vjp(fn, *args)
    return y, vjp(jax.random.normal(cotangent_key, y.shape, jnp.float32).astype(y.dtype))  # float64 runs: the same
  return run(*args)


def _assert_close(got, want, relative=3e-6):
  """Equal up to float32 rounding relative to the largest entry (Winograd's transforms add a little)."""
  scale = float(jnp.abs(want).max())
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=relative * scale)


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: f"F{p.m}_{p.r}")
def test_matrices_compute_a_1d_correlation_exactly(plan):
  a_t, g, b_t = winograd.matrices(plan)
  rng = np.random.default_rng(0)
  for _ in range(5):
    d, w = rng.standard_normal(plan.tile), rng.standard_normal(plan.r)
    want = [sum(d[i + k] * w[k] for k in range(plan.r)) for i in range(plan.m)]
    np.testing.assert_allclose(a_t @ ((g @ w) * (b_t @ d)), want, rtol=1e-12, atol=1e-12)


def test_a_plan_needs_distinct_points_of_the_right_number():
  with pytest.raises(ValueError, match="needs 3 distinct points"):
    winograd.Plan(2, 3, (0.0, 1.0))
  with pytest.raises(ValueError, match="distinct"):
    winograd.Plan(2, 3, (0.0, 1.0, 1.0))


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: f"F{p.m}_{p.r}")
@pytest.mark.parametrize("shape", [(2, 9, 9, 8), (2, 11, 6, 5), (1, 3, 4, 3)])  # whole, ragged, one tile
def test_correlate_and_its_gradients_match_lax(plan, shape):
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(k1, shape)
  kernel = jax.random.normal(k2, (plan.r, plan.r, shape[-1], 7))
  y, grads = _value_and_vjp(lambda x, k: winograd.correlate(x, k, plan), (x, kernel), k3)
  want, want_grads = _value_and_vjp(_lax_correlate, (x, kernel), k3)
  assert y.shape == want.shape
  for got, expected in zip((y, *grads), (want, *want_grads)):
    _assert_close(got, expected)


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: f"F{p.m}_{p.r}")
def test_correlate_transpose_is_the_adjoint_and_its_gradients_match(plan):
  k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
  y = jax.random.normal(k1, (2, 6, 5, 7))
  kernel = jax.random.normal(k2, (plan.r, plan.r, 4, 7))
  x_shape = (2, 6 + plan.r - 1, 5 + plan.r - 1, 4)

  def lax_adjoint(y, kernel):
    return jax.vjp(lambda x: _lax_correlate(x, kernel), jnp.zeros(x_shape))[1](y)[0]

  x, grads = _value_and_vjp(lambda y, k: winograd.correlate_transpose(y, k, plan), (y, kernel), k3)
  want, want_grads = _value_and_vjp(lax_adjoint, (y, kernel), k3)
  assert x.shape == x_shape
  for got, expected in zip((x, *grads), (want, *want_grads)):
    _assert_close(got, expected)


def _count_winograd_calls(monkeypatch, min_channels=16, min_grid_pixels=1):
  """Records the layers' Winograd calls; lowers the thresholds (speed settings) so small layers take it."""
  monkeypatch.setattr(layers, "WINOGRAD_MIN_CHANNELS", min_channels)
  monkeypatch.setattr(layers, "WINOGRAD_MIN_GRID_PIXELS", min_grid_pixels)
  calls = []
  for name in ("correlate", "correlate_transpose"):
    original = getattr(winograd, name)
    monkeypatch.setattr(winograd, name, lambda *args, _f=original, _n=name: calls.append(_n) or _f(*args))
  return calls


# F(4, 2); F(2, 2) for sides of 2 mod 4; a 2x2 map padded to the 4x4 kernel is one window, a matmul (faster).
@pytest.mark.parametrize("size,winograd_calls", [(8, ["correlate", "correlate_transpose"]),
                                                 (6, ["correlate", "correlate_transpose"]),
                                                 (2, ["correlate_transpose"])])
def test_dcgan_layers_use_winograd_and_match_the_direct_forms(monkeypatch, size, winograd_calls):
  calls = _count_winograd_calls(monkeypatch)
  k1, k2, k3, k4 = jax.random.split(jax.random.key(2), 4)
  c_in, c_out = layers.WINOGRAD_MIN_CHANNELS, layers.WINOGRAD_MIN_CHANNELS + 8
  x = jax.random.normal(k1, (2, size, size, c_in))
  kernel = 0.1 * jax.random.normal(k2, (4, 4, c_in, c_out))

  def direct_conv(x, k):
    return lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    precision=lax.Precision.HIGHEST)

  def direct_conv_transpose(x, k):
    return layers.conv_transpose_reference(x, k, 2, 1, precision=lax.Precision.HIGHEST)

  for ours, direct, x_in in [(lambda x, k: layers.conv(x, k, 2, 1), direct_conv, x),
                             (lambda x, k: layers.conv_transpose(x, k, 2, 1), direct_conv_transpose,
                              jax.random.normal(k4, (2, size, size, c_in)))]:
    y, grads = _value_and_vjp(ours, (x_in, kernel), k3)
    with jax.enable_x64(True):
      exact = _value_and_vjp(direct, (x_in.astype(jnp.float64), kernel.astype(jnp.float64)), k3)
    # Against the float64 values, within 1e-5 of the largest entry (the bound README gives Winograd's layers):
    # 3e-6 of it held against the float32 direct forms on one CPU, not on an AMD EPYC host (4.1e-6, from float64
    # as from the direct forms).
    for got, expected in zip((y, *grads), jax.tree.leaves(exact)):
      _assert_close(got, expected, relative=1e-5)
  assert calls == winograd_calls


def test_second_order_gradients_match_lax(monkeypatch):
  """Gradient penalties differentiate the input gradient again (WGAN-GP, R1 on DCGAN-like critics)."""
  calls = _count_winograd_calls(monkeypatch)
  k1, k2 = jax.random.split(jax.random.key(3))
  c = layers.WINOGRAD_MIN_CHANNELS
  x = jax.random.normal(k1, (2, 8, 8, c))
  kernel = 0.1 * jax.random.normal(k2, (4, 4, c, c))

  def penalty(conv_fn):
    def input_gradient_norm(kernel):
      x_grad = jax.grad(lambda x: jnp.sum(jnp.tanh(conv_fn(x, kernel))))(x)
      return jnp.sum(x_grad ** 2)
    return jax.jit(jax.grad(input_gradient_norm))(kernel)

  got = penalty(lambda x, k: layers.conv(x, k, 2, 1))
  want = penalty(lambda x, k: lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)),
                                                       dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                                       precision=lax.Precision.HIGHEST))
  assert calls, "the Winograd path was not taken"
  _assert_close(got, want, relative=2e-5)


def test_narrow_layers_small_grids_and_other_shapes_keep_the_direct_forms(monkeypatch):
  calls = _count_winograd_calls(monkeypatch, min_channels=layers.WINOGRAD_MIN_CHANNELS,
                                min_grid_pixels=layers.WINOGRAD_MIN_GRID_PIXELS)
  wide, narrow = layers.WINOGRAD_MIN_CHANNELS, layers.WINOGRAD_MIN_CHANNELS - 1
  # Batches whose 8x8 inputs make tile grids of exactly the threshold: the conv's 4x4 outputs, the transposed
  # conv's 8x8 inputs.
  conv_batch, transposed_batch = layers.WINOGRAD_MIN_GRID_PIXELS // 16, layers.WINOGRAD_MIN_GRID_PIXELS // 64

  def shapes_of(fn, x_shape, kernel_shape, **kwargs):
    jax.eval_shape(lambda x, k: fn(x, k, **kwargs), jnp.ones(x_shape), jnp.ones(kernel_shape))

  shapes_of(layers.conv, (conv_batch, 8, 8, narrow), (4, 4, narrow, wide), strides=2, padding=1)
  shapes_of(layers.conv, (conv_batch, 8, 8, wide), (3, 3, wide, wide), strides=2, padding=1)  # kernel 3
  shapes_of(layers.conv, (conv_batch, 7, 7, wide), (4, 4, wide, wide), strides=2, padding=1)  # odd side
  shapes_of(layers.conv, (conv_batch, 8, 8, wide), (4, 4, wide, wide), strides=1, padding=1)  # stride 1
  shapes_of(layers.conv, (conv_batch - 1, 8, 8, wide), (4, 4, wide, wide), strides=2, padding=1)  # small grid
  shapes_of(layers.conv_transpose, (transposed_batch, 8, 8, wide), (4, 4, wide, 3), strides=2, padding=1)  # RGB
  shapes_of(layers.conv_transpose, (transposed_batch, 8, 8, wide), (4, 4, wide, wide), strides=2, padding=1,
            output_padding=1)
  shapes_of(layers.conv_transpose, (transposed_batch - 1, 8, 8, wide), (4, 4, wide, wide), strides=2, padding=1)
  assert calls == []
  shapes_of(layers.conv, (conv_batch, 8, 8, wide), (4, 4, wide, wide), strides=2, padding=1)
  shapes_of(layers.conv_transpose, (transposed_batch, 8, 8, wide), (4, 4, wide, wide), strides=2, padding=1)
  assert calls == ["correlate", "correlate_transpose"]  # within the rules, the same layers do take it


def test_rounding_error_at_a_dcgan_layer_is_float32_sized(monkeypatch):
  """DCGAN's 16x16x128 -> 8x8x256 conv at its initialisation scale: Winograd vs float64."""
  calls = _count_winograd_calls(monkeypatch, min_channels=128)  # batch 4: a grid below the speed threshold
  rng = np.random.default_rng(0)
  x = rng.standard_normal((4, 16, 16, 128))
  kernel = 0.02 * rng.standard_normal((4, 4, 128, 256))
  got = np.asarray(jax.jit(lambda x, k: layers.conv(x, k, 2, 1))(jnp.asarray(x, jnp.float32),
                                                                  jnp.asarray(kernel, jnp.float32)), np.float64)
  direct = np.asarray(layers._conv(jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32), (2, 2), (1, 1),
                                   None), np.float64)
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  exact = sum(np.einsum("nhwc,cd->nhwd", xp[:, a:a + 16:2, b:b + 16:2], kernel[a, b])
              for a in range(4) for b in range(4))
  winograd_error, direct_error = np.abs(got - exact).max(), np.abs(direct - exact).max()
  assert calls == ["correlate"]
  assert winograd_error < 10 * direct_error + 1e-7, (winograd_error, direct_error)
  assert winograd_error < 1e-5 * np.abs(exact).max()


def test_a_dcgan_step_with_winograd_layers_is_the_same_on_four_devices(monkeypatch):
  """The tiles' matrix products merge the batch (sharded over devices) with the tile grid; XLA must partition
  that reshape and all-reduce the kernel gradient's sum over it."""
  from tests.test_training import one_step, tiny_config
  calls = _count_winograd_calls(monkeypatch)
  config = tiny_config("dcgan_celeba64")
  with config.unlocked():
    config.data.resolution = 16  # G: 4x4x32 -> 8x8x16 -> 16x16x3; D: 16x16x3 -> 8x8x16 -> 4x4x32
    config.model.g_channels = config.model.d_channels = 16
  state_1, metrics_1 = one_step(config, num_devices=1)
  state_4, metrics_4 = one_step(config, num_devices=4)
  assert sorted(set(calls)) == ["correlate", "correlate_transpose"]
  for a, b in zip(jax.tree.leaves(state_1.params), jax.tree.leaves(state_4.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  for name in metrics_1:
    np.testing.assert_allclose(metrics_1[name], metrics_4[name], rtol=1e-4, atol=1e-6)
