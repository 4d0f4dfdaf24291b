"""Adversarial losses and penalties, pure functions of discriminator outputs.

Every loss takes raw discriminator outputs (logits, or critic values for the
Wasserstein loss) and returns the batch mean, so a variant's phase is the
composition `d_loss(d(real), d(g(z)))` and nothing here knows about modules.

Losses are grouped into pairs (discriminator loss, generator loss) in
`ADVERSARIAL`, which experiments select by name with `config.model.loss`.
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


# --- Goodfellow et al. 2014: D maximises log D(x) + log(1 - D(G(z))); with D = sigmoid(logit),
# -log sigmoid(l) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l), which is stable for any l.

def minimax_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """-E[log D(x)] - E[log(1 - D(G(z)))], the discriminator's side of the minimax game."""
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def minimax_g_loss(fake_logits: jax.Array) -> jax.Array:
  """E[log(1 - D(G(z)))], the generator's side of the minimax game (saturates when D wins)."""
  return -jnp.mean(jax.nn.softplus(fake_logits))


def non_saturating_g_loss(fake_logits: jax.Array) -> jax.Array:
  """-E[log D(G(z))]: same fixed point as minimax, strong gradients early (Goodfellow et al. 2014, sec. 3)."""
  return jnp.mean(jax.nn.softplus(-fake_logits))


# --- Hinge loss (Lim & Ye 2017; Miyato et al. 2018).

def hinge_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def hinge_g_loss(fake_logits: jax.Array) -> jax.Array:
  return -jnp.mean(fake_logits)


# --- Wasserstein loss (Arjovsky et al. 2017); pair with `gradient_penalty` (Gulrajani et al. 2017).

def wasserstein_d_loss(real_critic: jax.Array, fake_critic: jax.Array) -> jax.Array:
  return jnp.mean(fake_critic) - jnp.mean(real_critic)


def wasserstein_g_loss(fake_critic: jax.Array) -> jax.Array:
  return -jnp.mean(fake_critic)


# --- Least squares (Mao et al. 2017, the 0-1 coding a=0, b=c=1 with the paper's 1/2 factors).

def least_squares_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  return 0.5 * jnp.mean(jnp.square(real_logits - 1.0)) + 0.5 * jnp.mean(jnp.square(fake_logits))


def least_squares_g_loss(fake_logits: jax.Array) -> jax.Array:
  return 0.5 * jnp.mean(jnp.square(fake_logits - 1.0))


class AdversarialLoss(NamedTuple):
  d: Callable[[jax.Array, jax.Array], jax.Array]  # (real outputs, fake outputs) -> scalar
  g: Callable[[jax.Array], jax.Array]  # fake outputs -> scalar


ADVERSARIAL = {
    "minimax": AdversarialLoss(minimax_d_loss, minimax_g_loss),
    "non_saturating": AdversarialLoss(minimax_d_loss, non_saturating_g_loss),
    "hinge": AdversarialLoss(hinge_d_loss, hinge_g_loss),
    "wasserstein": AdversarialLoss(wasserstein_d_loss, wasserstein_g_loss),
    "least_squares": AdversarialLoss(least_squares_d_loss, least_squares_g_loss),
}


def get_adversarial_loss(name: str) -> AdversarialLoss:
  if name not in ADVERSARIAL:
    raise ValueError(f"Unknown adversarial loss {name!r}; valid names: {', '.join(sorted(ADVERSARIAL))}.")
  return ADVERSARIAL[name]


# --- Penalties on the discriminator's input gradient. `d_fn` maps a batch of inputs to outputs
# of shape (N,) or (N, 1); it closes over the discriminator's parameters so the penalty's
# gradient flows into them.

def _per_example_input_grad(d_fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
  # Examples are independent in D (no batch norm or minibatch-std across them in penalised
  # critics), so the gradient of the summed outputs is each output's own input gradient.
  return jax.grad(lambda inputs: jnp.sum(d_fn(inputs)))(x)


def _squared_norm_per_example(g: jax.Array) -> jax.Array:
  return jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1)


def r1_penalty(d_fn: Callable[[jax.Array], jax.Array], real_x: jax.Array) -> jax.Array:
  """E ||grad_x D(x)||^2 on real data (Mescheder et al. 2018); multiply by gamma / 2."""
  return jnp.mean(_squared_norm_per_example(_per_example_input_grad(d_fn, real_x)))


def gradient_penalty(d_fn: Callable[[jax.Array], jax.Array], real_x: jax.Array, fake_x: jax.Array,
                     key: jax.Array) -> jax.Array:
  """E (||grad D(x_hat)|| - 1)^2 at random interpolates x_hat (Gulrajani et al. 2017); times lambda (10)."""
  eps_shape = (real_x.shape[0],) + (1,) * (real_x.ndim - 1)
  eps = jax.random.uniform(key, eps_shape, dtype=real_x.dtype)
  x_hat = eps * real_x + (1.0 - eps) * fake_x
  # The epsilon keeps the norm's gradient finite where the input gradient vanishes.
  norms = jnp.sqrt(_squared_norm_per_example(_per_example_input_grad(d_fn, x_hat)) + 1e-12)
  return jnp.mean(jnp.square(norms - 1.0))


def logit_metrics(real_logits: jax.Array, fake_logits: jax.Array) -> dict:
  """A D phase's standard metrics: mean logits, and mean signs; "real_signs" is ADA's overfitting
  heuristic r_t = E[sign(D(real))] (Karras et al. 2020), which config.augment.policy="ada" reads."""
  return {"real_logits": jnp.mean(real_logits), "fake_logits": jnp.mean(fake_logits),
          "real_signs": jnp.mean(jnp.sign(real_logits)), "fake_signs": jnp.mean(jnp.sign(fake_logits))}
