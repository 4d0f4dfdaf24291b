"""Adversarial losses and penalties against values computed by hand."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans import losses

REAL = jnp.array([2.0, -1.0])
FAKE = jnp.array([0.5, -3.0])


def log_sigmoid(x):
  return -math.log1p(math.exp(-x))


def test_minimax_discriminator_loss_is_binary_cross_entropy():
  expected = -(log_sigmoid(2.0) + log_sigmoid(-1.0)) / 2 - (math.log(1 - 1 / (1 + math.exp(-0.5)))
                                                          + math.log(1 - 1 / (1 + math.exp(3.0)))) / 2
  np.testing.assert_allclose(losses.minimax_d_loss(REAL, FAKE), expected, rtol=1e-6)


def test_minimax_generator_loss_is_log_one_minus_d():
  expected = (math.log(1 - 1 / (1 + math.exp(-0.5))) + math.log(1 - 1 / (1 + math.exp(3.0)))) / 2
  np.testing.assert_allclose(losses.minimax_g_loss(FAKE), expected, rtol=1e-6)


def test_non_saturating_generator_loss_is_minus_log_d():
  expected = -(log_sigmoid(0.5) + log_sigmoid(-3.0)) / 2
  np.testing.assert_allclose(losses.non_saturating_g_loss(FAKE), expected, rtol=1e-6)


def test_non_saturating_gradient_does_not_vanish_where_minimax_saturates():
  confident_fake = jnp.array([-10.0])  # D is sure the sample is fake
  minimax_grad = jax.grad(losses.minimax_g_loss)(confident_fake)
  non_saturating_grad = jax.grad(losses.non_saturating_g_loss)(confident_fake)
  assert abs(minimax_grad[0]) < 1e-4 < 0.9 < abs(non_saturating_grad[0])


def test_losses_are_stable_for_extreme_logits():
  huge = jnp.array([1e4, -1e4])
  for name, pair in losses.ADVERSARIAL.items():
    assert np.isfinite(pair.d(huge, -huge)), name
    assert np.isfinite(pair.g(huge)), name


def test_hinge():
  # relu(1 - 2) + relu(1 + 1) = 0 + 2 -> mean 1; relu(1 + 0.5) + relu(1 - 3) = 1.5 + 0 -> mean 0.75.
  np.testing.assert_allclose(losses.hinge_d_loss(REAL, FAKE), 1.0 + 0.75)
  np.testing.assert_allclose(losses.hinge_g_loss(FAKE), 1.25)


def test_wasserstein():
  np.testing.assert_allclose(losses.wasserstein_d_loss(REAL, FAKE), -1.25 - 0.5)
  np.testing.assert_allclose(losses.wasserstein_g_loss(FAKE), 1.25)


def test_least_squares():
  # 0.5 * mean((2-1)^2, (-1-1)^2) + 0.5 * mean(0.25, 9) = 0.5 * 2.5 + 0.5 * 4.625
  np.testing.assert_allclose(losses.least_squares_d_loss(REAL, FAKE), 1.25 + 2.3125)
  np.testing.assert_allclose(losses.least_squares_g_loss(FAKE), 0.5 * (0.25 + 16.0) / 2)


def test_r1_penalty_of_a_linear_critic_is_its_squared_weight_norm():
  w = jnp.array([3.0, -4.0])
  x = jax.random.normal(jax.random.key(0), (5, 2))
  np.testing.assert_allclose(losses.r1_penalty(lambda v: v @ w, x), 25.0, rtol=1e-6)


def test_r1_penalty_of_a_quadratic_critic():
  # D(x) = sum(x^2) has gradient 2x, so the penalty is the mean of 4 |x|^2.
  x = jnp.array([[1.0, 2.0], [0.0, 3.0]])
  np.testing.assert_allclose(losses.r1_penalty(lambda v: jnp.sum(v ** 2, axis=1), x), (4 * 5 + 4 * 9) / 2)


def test_gradient_penalty_of_a_linear_critic():
  # ||grad|| = 5 everywhere, so the penalty is (5 - 1)^2 whatever the interpolation.
  w = jnp.array([3.0, -4.0])
  real, fake = jnp.ones((4, 2)), jnp.zeros((4, 2))
  np.testing.assert_allclose(losses.gradient_penalty(lambda v: v @ w, real, fake, jax.random.key(1)), 16.0,
                             rtol=1e-5)


def test_gradient_penalty_interpolates_between_real_and_fake():
  # D(x) = sum(x^2)/2 has gradient x; with real = 1 and fake = 0 (in 1D) the norm is eps, so the penalty is
  # E (eps - 1)^2 over eps ~ U(0, 1), i.e. 1/3 in expectation.
  real, fake = jnp.ones((20000, 1)), jnp.zeros((20000, 1))
  penalty = losses.gradient_penalty(lambda v: 0.5 * jnp.sum(v ** 2, axis=1), real, fake, jax.random.key(2))
  np.testing.assert_allclose(penalty, 1 / 3, atol=0.01)


def test_unknown_loss_name_lists_valid_names():
  with pytest.raises(ValueError, match="hinge.*least_squares.*minimax"):
    losses.get_adversarial_loss("minimax_typo")
