"""Pairwise kernels and the MMD^2 estimators (no Flax here).

Every kernel is written for one pair of vectors and lifted to batches with `vmap`
(`pairwise`). For speed the library computes squared distances in the matmul form
|a|^2 + |b|^2 - 2 a.b; tests/test_kernels.py checks it equal to the vmap form and to a
float64 double loop.

MMD^2 (Gretton et al. 2012, JMLR, eq. 2 biased / eq. 3 unbiased) with the
mixture-of-Gaussians kernel k(a, b) = sum_s exp(-|a - b|^2 / (2 s^2)) used by the
MMD-regularised DCGAN (seed 000, after Li et al. 2017).
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

MMD_SIGMAS = (1.0, 2.0, 4.0, 8.0, 16.0)
ESTIMATORS = ('unbiased', 'biased')


def pairwise(fn: Callable[[jax.Array, jax.Array], jax.Array]) -> Callable:
  """fn(a [d], b [d]) -> scalar  becomes  fn(x [n, d], y [m, d]) -> [n, m]."""
  return jax.vmap(jax.vmap(fn, in_axes=(None, 0)), in_axes=(0, None))


def sq_distances_vmap(x: jax.Array, y: jax.Array) -> jax.Array:
  """|x_i - y_j|^2 for every pair, x [n, d], y [m, d] -> [n, m] (readable form)."""
  return pairwise(lambda a, b: jnp.sum((a - b) ** 2))(x, y)


def sq_distances(x: jax.Array, y: jax.Array) -> jax.Array:
  """|x_i - y_j|^2 via |a|^2 + |b|^2 - 2 a.b, clipped at 0 against rounding -> [n, m]."""
  xx = jnp.sum(x * x, axis=-1)
  yy = jnp.sum(y * y, axis=-1)
  xy = jnp.matmul(x, y.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.maximum(xx[:, None] + yy[None, :] - 2.0 * xy, 0.0)


def mixture_rbf_from_sq(sq: jax.Array, sigmas: Sequence[float]) -> jax.Array:
  """sum_s exp(-sq / (2 s^2)) elementwise."""
  inv = 1.0 / (2.0 * jnp.asarray(sigmas, sq.dtype) ** 2)
  return jnp.sum(jnp.exp(-sq[..., None] * inv), axis=-1)


def mixture_rbf(x: jax.Array, y: jax.Array, sigmas: Sequence[float] = MMD_SIGMAS,
                impl: str = 'matmul') -> jax.Array:
  """Mixture-of-Gaussians kernel matrix, x [n, d], y [m, d] -> [n, m]."""
  sq = sq_distances(x, y) if impl == 'matmul' else sq_distances_vmap(x, y)
  return mixture_rbf_from_sq(sq, sigmas)


def mmd2_from_kernels(kxx: jax.Array, kyy: jax.Array, kxy: jax.Array,
                      estimator: str = 'unbiased') -> jax.Array:
  """MMD^2 from kernel blocks kxx [n, n], kyy [m, m], kxy [n, m].

  'unbiased' excludes the diagonals of kxx and kyy (a U-statistic, needs n, m >= 2;
  can be negative); 'biased' is the V-statistic (>= 0, zero for identical samples).
  """
  n, m = kxx.shape[0], kyy.shape[0]
  if estimator == 'unbiased':
    xx = (jnp.sum(kxx) - jnp.trace(kxx)) / (n * (n - 1))
    yy = (jnp.sum(kyy) - jnp.trace(kyy)) / (m * (m - 1))
  elif estimator == 'biased':
    xx = jnp.mean(kxx)
    yy = jnp.mean(kyy)
  else:
    raise ValueError(f'unknown MMD estimator {estimator!r}; choose one of {ESTIMATORS}')
  return xx + yy - 2.0 * jnp.mean(kxy)


def mmd2(x: jax.Array, y: jax.Array, sigmas: Sequence[float] = MMD_SIGMAS,
         estimator: str = 'unbiased', impl: str = 'matmul') -> jax.Array:
  """Squared MMD between samples x [n, d] and y [m, d] with the mixture kernel.

  One kernel matrix over concat([x, y]) serves all three blocks.
  """
  xy = jnp.concatenate([x, y], axis=0)
  k = mixture_rbf(xy, xy, sigmas, impl)
  n = x.shape[0]
  return mmd2_from_kernels(k[:n, :n], k[n:, n:], k[:n, n:], estimator)
