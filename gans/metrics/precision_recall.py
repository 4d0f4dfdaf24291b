"""Improved precision and recall (Kynkäänniemi et al. 2019).

Each set's manifold is the union of balls around its samples, each ball's radius
the distance to that sample's k-th nearest neighbour within its own set (k = 3).
Precision is the fraction of generated samples inside the real manifold, recall
the fraction of real samples inside the generated one. Distances are computed
in row blocks so memory stays at block_size x N.

The paper (and StyleGAN2-ADA's pr50k3) measure this on VGG16 features; fed
with Inception pool3 features the numbers are not comparable to those.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np


@jax.jit
def _squared_distances(a_BD, b_ND):
  # |a|^2 + |b|^2 - 2 a.b, clamped: rounding can make a point's distance to itself negative.
  cross = jnp.matmul(a_BD, b_ND.T, precision=jax.lax.Precision.HIGHEST)
  squared = jnp.sum(a_BD**2, axis=1)[:, None] + jnp.sum(b_ND**2, axis=1)[None, :] - 2.0 * cross
  return jnp.maximum(squared, 0.0)


@functools.partial(jax.jit, static_argnames="k")
def _kth_neighbour_squared_radius(a_BD, b_ND, k: int):
  # The k+1-th smallest, because each point's zero distance to itself is the smallest.
  neg_smallest, _ = jax.lax.top_k(-_squared_distances(a_BD, b_ND), k + 1)
  return -neg_smallest[:, k]


@jax.jit
def _inside_any_ball(a_BD, centres_ND, squared_radii_N):
  return jnp.any(_squared_distances(a_BD, centres_ND) <= squared_radii_N[None, :], axis=1)


def _row_blocks(x_ND, block_size: int):
  for start in range(0, len(x_ND), block_size):
    yield x_ND[start:start + block_size]


def knn_squared_radii(features_ND: np.ndarray, k: int = 3, block_size: int = 1024) -> np.ndarray:
  """Squared distance of each sample to its k-th nearest other sample of the same set."""
  if len(features_ND) <= k:
    raise ValueError(f"Need more than k={k} samples, got {len(features_ND)}")
  features = jnp.asarray(features_ND, jnp.float32)
  return np.concatenate([np.asarray(_kth_neighbour_squared_radius(block, features, k))
                         for block in _row_blocks(features, block_size)])


def manifold_coverage(queries_ND: np.ndarray, centres_MD: np.ndarray, k: int = 3,
                      block_size: int = 1024) -> float:
  """Fraction of `queries` inside the k-NN manifold of `centres`."""
  centres = jnp.asarray(centres_MD, jnp.float32)
  squared_radii = jnp.asarray(knn_squared_radii(centres_MD, k, block_size))
  inside = [np.asarray(_inside_any_ball(block, centres, squared_radii))
            for block in _row_blocks(jnp.asarray(queries_ND, jnp.float32), block_size)]
  return float(np.mean(np.concatenate(inside)))


def precision_recall(real_ND: np.ndarray, fake_MD: np.ndarray, k: int = 3,
                     block_size: int = 1024) -> tuple[float, float]:
  """(precision, recall) of generated features against real ones."""
  precision = manifold_coverage(fake_MD, real_ND, k, block_size)
  recall = manifold_coverage(real_ND, fake_MD, k, block_size)
  return precision, recall
