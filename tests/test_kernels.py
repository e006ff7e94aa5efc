"""MMD^2 kernels against a float64 double loop and the estimators' properties."""
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import kernels

SIGMAS = (1.0, 2.0, 4.0, 8.0, 16.0)


def naive_kernel(x, y, sigmas):
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  k = np.zeros((len(x), len(y)))
  for i, j in itertools.product(range(len(x)), range(len(y))):
    d2 = sum((x[i, t] - y[j, t]) ** 2 for t in range(x.shape[1]))
    k[i, j] = sum(np.exp(-d2 / (2 * s * s)) for s in sigmas)
  return k


def naive_mmd2(x, y, sigmas, estimator):
  kxx, kyy, kxy = naive_kernel(x, x, sigmas), naive_kernel(y, y, sigmas), naive_kernel(x, y, sigmas)
  n, m = len(x), len(y)
  if estimator == 'unbiased':
    sxx = sum(kxx[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    syy = sum(kyy[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  else:
    sxx, syy = kxx.sum() / n**2, kyy.sum() / m**2
  return sxx + syy - 2 * kxy.sum() / (n * m)


def _samples(n=7, m=9, d=5, shift=0.5):
  k1, k2 = jax.random.split(jax.random.key(0))
  return jax.random.normal(k1, (n, d)) * 2.0, jax.random.normal(k2, (m, d)) * 2.0 + shift


@pytest.mark.parametrize('impl', ['matmul', 'vmap'])
def test_mixture_kernel_matches_double_loop(impl):
  x, y = _samples()
  got = kernels.mixture_rbf(x, y, SIGMAS, impl=impl)
  chex.assert_shape(got, (7, 9))
  np.testing.assert_allclose(got, naive_kernel(x, y, SIGMAS), rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize('estimator', ['unbiased', 'biased'])
@pytest.mark.parametrize('impl', ['matmul', 'vmap'])
def test_mmd2_matches_double_loop(estimator, impl):
  x, y = _samples()
  got = kernels.mmd2(x, y, SIGMAS, estimator, impl)
  np.testing.assert_allclose(got, naive_mmd2(x, y, SIGMAS, estimator), rtol=1e-4, atol=1e-5)


def test_matmul_and_vmap_distances_agree():
  x, y = _samples(20, 30, 20)
  np.testing.assert_allclose(kernels.sq_distances(x, y), kernels.sq_distances_vmap(x, y),
                             rtol=1e-5, atol=1e-4)


def test_biased_mmd2_of_a_sample_with_itself_is_zero():
  x, _ = _samples()
  np.testing.assert_allclose(kernels.mmd2(x, x, SIGMAS, 'biased'), 0.0, atol=1e-5)


@pytest.mark.parametrize('estimator', ['unbiased', 'biased'])
def test_mmd2_is_symmetric(estimator):
  x, y = _samples(8, 8)
  np.testing.assert_allclose(kernels.mmd2(x, y, SIGMAS, estimator),
                             kernels.mmd2(y, x, SIGMAS, estimator), rtol=1e-5, atol=1e-6)


def test_unbiased_estimate_is_near_zero_on_average_for_one_distribution():
  # 400 pairs of samples of N(0, I): the U-statistic is unbiased, its mean -> 0 while
  # the V-statistic stays positive (its bias is of order 1/n).
  keys = jax.random.split(jax.random.key(1), 400)
  draw = jax.vmap(lambda k: jax.random.normal(k, (2, 20, 3)))(keys)
  u = jax.vmap(lambda s: kernels.mmd2(s[0], s[1], SIGMAS, 'unbiased'))(draw)
  v = jax.vmap(lambda s: kernels.mmd2(s[0], s[1], SIGMAS, 'biased'))(draw)
  stderr = float(jnp.std(u)) / np.sqrt(len(u))
  assert abs(float(jnp.mean(u))) < 3 * stderr, (float(jnp.mean(u)), stderr)
  assert float(jnp.mean(v)) > 10 * stderr
  # ... and a shifted distribution is clearly detected.
  shifted = jax.vmap(lambda s: kernels.mmd2(s[0], s[1] + 1.0, SIGMAS, 'unbiased'))(draw)
  assert float(jnp.mean(shifted)) > 20 * stderr


@pytest.mark.parametrize('estimator', ['unbiased', 'biased'])
@pytest.mark.parametrize('impl', ['matmul', 'vmap'])
def test_gradients_are_finite_at_identical_inputs(estimator, impl):
  x, _ = _samples(6, 6)
  grad = jax.grad(lambda a: kernels.mmd2(a, x, SIGMAS, estimator, impl))(x)
  assert np.all(np.isfinite(grad))
  if estimator == 'biased':  # a minimum of the V-statistic: zero gradient
    np.testing.assert_allclose(grad, 0.0, atol=1e-5)


def test_unknown_estimator_is_rejected():
  x, y = _samples()
  with pytest.raises(ValueError, match='unknown MMD estimator'):
    kernels.mmd2(x, y, SIGMAS, 'nope')


def naive_seed000_mmd2(x, y, sigmas):
  """Seed 000, section 4.1, term by term: sums over ordered pairs with distinct
  indices, each divided by C(n, 2)."""
  n = len(x)
  assert len(y) == n
  kxx, kyy, kxy = naive_kernel(x, x, sigmas), naive_kernel(y, y, sigmas), naive_kernel(x, y, sigmas)
  pairs = n * (n - 1) / 2
  total = 0.0
  for i in range(n):
    for j in range(n):
      if i != j:
        total += (kxx[i, j] - 2.0 * kxy[i, j] + kyy[i, j]) / pairs
  return total


@pytest.mark.parametrize('impl', ['matmul', 'vmap'])
def test_seed000_estimator_matches_the_seeds_formula(impl):
  x, y = _samples(n=8, m=8)
  got = kernels.mmd2(x, y, SIGMAS, 'seed000', impl)
  np.testing.assert_allclose(got, naive_seed000_mmd2(x, y, SIGMAS), rtol=1e-4, atol=1e-5)


def test_seed000_estimator_is_twice_the_u_statistic_without_the_cross_diagonal():
  x, y = _samples(n=8, m=8)
  kxx, kyy, kxy = (naive_kernel(a, b, SIGMAS) for a, b in ((x, x), (y, y), (x, y)))
  off = lambda k: k.sum() - np.trace(k)
  u_no_diag = (off(kxx) + off(kyy) - 2 * off(kxy)) / (8 * 7)
  np.testing.assert_allclose(kernels.mmd2(x, y, SIGMAS, 'seed000'), 2 * u_no_diag,
                             rtol=1e-4, atol=1e-5)


def test_seed000_estimator_needs_equal_batches():
  x, y = _samples(n=7, m=9)
  with pytest.raises(ValueError, match='equal'):
    kernels.mmd2(x, y, SIGMAS, 'seed000')
