"""Minibatch-discrimination features and L1 distances against float64 double loops."""
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import kernels

# Jitted: op-by-op dispatch of the unrolled fast form costs seconds per call shape.
IMPLS = {'fast': jax.jit(kernels.minibatch_features, static_argnums=1),
         'vmap': jax.jit(kernels.minibatch_features_vmap, static_argnums=1)}


def normal(seed, shape, scale=1.0, shift=0.0):
  """float32 N(shift, scale^2) test data from numpy: eager jax.random compiles per shape."""
  return jnp.asarray(np.random.default_rng(seed).normal(shift, scale, shape), jnp.float32)


def naive_features(m, exclude_self):
  """o_ib = sum_j exp(-sum_c |M_ibc - M_jbc|), float64, one term at a time."""
  m = np.asarray(m, np.float64)
  n, b, c = m.shape
  o = np.zeros((n, b))
  for i, j in itertools.product(range(n), range(n)):
    if exclude_self and i == j:
      continue
    for k in range(b):
      o[i, k] += np.exp(-sum(abs(m[i, k, t] - m[j, k, t]) for t in range(c)))
  return o


def _m(n=6, b=4, c=3, scale=0.5, seed=0):
  return normal(seed, (n, b, c), scale)


def test_l1_distances_match_double_loop():
  x, y = normal(0, (5, 4)), normal(1, (7, 4))
  xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
  want = np.array([[np.abs(xn[i] - yn[j]).sum() for j in range(7)] for i in range(5)])
  for fn in (kernels.l1_distances, kernels.l1_distances_vmap):
    got = fn(x, y)
    chex.assert_shape(got, (5, 7))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('exclude_self', [False, True])
@pytest.mark.parametrize('impl', sorted(IMPLS))
# c = 3 takes the unrolled branch of the fast form, c = 40 the broadcast branch.
@pytest.mark.parametrize('c', [3, 40])
def test_features_match_double_loop(impl, exclude_self, c):
  m = _m(c=c, scale=0.5 if c < 10 else 0.05)
  got = IMPLS[impl](m, exclude_self)
  chex.assert_shape(got, (6, 4))
  np.testing.assert_allclose(got, naive_features(m, exclude_self), rtol=1e-5, atol=1e-6)


def test_fast_and_vmap_forms_agree_on_a_training_sized_batch():
  m = _m(n=64, b=50, c=5, scale=0.3, seed=3)
  for exclude_self in (False, True):
    np.testing.assert_allclose(IMPLS['fast'](m, exclude_self), IMPLS['vmap'](m, exclude_self),
                               rtol=1e-5)


@pytest.mark.parametrize('impl', sorted(IMPLS))
def test_identical_rows_give_n_with_self_and_n_minus_1_without(impl):
  # A fully collapsed batch: every c_b = exp(0) = 1.
  n = 5
  m = jnp.broadcast_to(_m(n=1, b=3, c=4), (n, 3, 4))
  np.testing.assert_array_equal(IMPLS[impl](m, False), np.full((n, 3), n))
  np.testing.assert_array_equal(IMPLS[impl](m, True), np.full((n, 3), n - 1))


@pytest.mark.parametrize('impl', sorted(IMPLS))
def test_features_are_permutation_equivariant(impl):
  m = _m(n=7)
  perm = np.array([3, 0, 6, 1, 5, 2, 4])
  np.testing.assert_allclose(IMPLS[impl](m[perm], False), np.asarray(IMPLS[impl](m, False))[perm],
                             rtol=1e-6)


def test_far_apart_rows_leave_only_the_self_term():
  # Distances of ~100 make every cross term exp(-100) ~ 0.
  m = jnp.arange(4.0)[:, None, None] * 100.0 * jnp.ones((4, 2, 1))
  np.testing.assert_allclose(IMPLS['fast'](m, False), np.ones((4, 2)), atol=1e-30)
  np.testing.assert_allclose(IMPLS['fast'](m, True), np.zeros((4, 2)), atol=1e-30)


def test_gradients_of_fast_and_vmap_forms_agree():
  m = _m(n=8, b=5, c=4)
  grad = lambda fn: jax.jit(jax.grad(lambda m: jnp.sum(fn(m) ** 2)))
  np.testing.assert_allclose(grad(kernels.minibatch_features)(m),
                             grad(kernels.minibatch_features_vmap)(m), rtol=1e-4, atol=1e-5)


def test_accelerator_form_equals_the_reference_and_its_gradient_pads_nothing(monkeypatch):
  """Off CPU, minibatch_features broadcasts over the kernel dimension instead of slicing
  it: the slices' gradient is one zero-padded piece a slice, which XLA fuses into the
  concatenation its GPU compiler stalled on in the VT-GAN step."""
  m = jax.random.normal(jax.random.key(3), (12, 6, 5))
  grad = lambda f: jax.grad(lambda v: jnp.sum(f(v) ** 2))
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  np.testing.assert_allclose(kernels.minibatch_features(m), kernels.minibatch_features_vmap(m),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(grad(kernels.minibatch_features)(m),
                             grad(kernels.minibatch_features_vmap)(m), rtol=1e-4, atol=1e-5)
  accelerator = jax.jit(grad(kernels.minibatch_features)).lower(m).as_text()
  monkeypatch.undo()
  cpu = jax.jit(grad(kernels.minibatch_features)).lower(m).as_text()
  assert cpu.count('stablehlo.pad') == 2 * 5 and 'stablehlo.pad' not in accelerator
