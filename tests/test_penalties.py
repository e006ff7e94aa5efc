"""Gradient penalty (analytic and float64 loop) and weight clipping."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgan import penalties


def normal(seed, shape, scale=1.0, shift=0.0):
  """float32 N(shift, scale^2) test data from numpy: eager jax.random compiles per shape."""
  return jnp.asarray(np.random.default_rng(seed).normal(shift, scale, shape), jnp.float32)


def linear_critic(w):
  """f(x) = sum(w * x) per example: its input gradient is w, norm |w|."""
  return lambda x: jnp.sum(x * w, axis=tuple(range(1, x.ndim)))


def test_gradient_penalty_of_linear_critic_is_analytic():
  # w = 0.25 on 2x2x1 inputs: |w| = sqrt(4 * 0.0625) = 0.5 -> (0.5 - 1)^2 = 0.25.
  w = jnp.full((2, 2, 1), 0.25)
  real, fake = jnp.zeros((4, 2, 2, 1)), jnp.ones((4, 2, 2, 1))
  gp = penalties.gradient_penalty(linear_critic(w), real, fake, jax.random.key(0))
  np.testing.assert_allclose(gp, 0.25, rtol=1e-6)
  # target_norm moves the minimum: |w| = 0.5 is then penalty-free.
  np.testing.assert_allclose(
      penalties.gradient_penalty(linear_critic(w), real, fake, jax.random.key(0),
                                 target_norm=0.5), 0.0, atol=1e-7)


def test_interpolates_use_one_uniform_weight_per_example():
  real, fake = normal(1, (16, 3, 3, 2)), normal(2, (16, 3, 3, 2))
  x_hat = penalties.interpolate(real, fake, jax.random.key(3))
  a = np.asarray((x_hat - fake) / (real - fake)).reshape(16, -1)
  np.testing.assert_allclose(a, np.broadcast_to(a[:, :1], a.shape), atol=1e-4)   # per example
  assert np.all((a >= 0) & (a <= 1))
  assert np.std(a[:, 0]) > 0.1                        # different examples, different a


class SmallCritic(nn.Module):
  """A per-example nonlinear critic: Dense -> LayerNorm -> tanh -> Dense(1)."""

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    x = jnp.tanh(nn.LayerNorm()(nn.Dense(8)(x)))
    return nn.Dense(1)(x)                              # [n, 1], as a flax critic returns


def _critic_and_batches():
  critic = SmallCritic()
  x = normal(4, (5, 2, 3, 1))
  params = jax.jit(critic.init)(jax.random.key(5), x)   # jitted: eager init takes seconds
  fake = normal(6, (5, 2, 3, 1), 2.0)
  return critic, params, x, fake


def test_gradient_penalty_matches_float64_loop_over_examples():
  critic, params, real, fake = _critic_and_batches()
  key = jax.random.key(7)
  got = jax.jit(lambda p: penalties.gradient_penalty(
      lambda x: critic.apply(p, x), real, fake, key))(params)
  x_hat = np.asarray(penalties.interpolate(real, fake, key), np.float64)

  with jax.enable_x64(True):
    p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    grad_one = jax.jit(jax.grad(lambda xi: critic.apply(p64, xi[None])[0, 0]))
    norms = []
    for i in range(len(x_hat)):                        # one example at a time, no vmap
      g = np.asarray(grad_one(jnp.asarray(x_hat[i], jnp.float64)))
      assert g.dtype == np.float64
      norms.append(np.sqrt(np.sum(g ** 2)))
  norms = np.array(norms)
  assert np.ptp(norms) > 1e-3                          # a nonlinear critic, varying norms
  got_norms = jax.jit(lambda p, x: penalties.per_example_grad_norms(
      lambda x: critic.apply(p, x), x))(params, jnp.asarray(x_hat, jnp.float32))
  np.testing.assert_allclose(got_norms, norms, rtol=1e-4)
  np.testing.assert_allclose(got, np.mean((norms - 1.0) ** 2), rtol=1e-4)


def test_penalty_gradient_is_finite_when_the_critic_is_flat():
  # f = sum(0 * x): |grad| = 0, where d sqrt / ds is infinite; the penalty (= 1) must
  # still give the critic's weights a finite gradient (a plain sqrt gives NaN here).
  real, fake = jnp.zeros((3, 4)), jnp.ones((3, 4))
  gp, g = jax.value_and_grad(lambda w: penalties.gradient_penalty(
      linear_critic(w), real, fake, jax.random.key(0)))(jnp.zeros(4))
  np.testing.assert_allclose(gp, 1.0)
  assert np.all(np.isfinite(np.asarray(g)))


def test_penalty_gradient_wrt_weights_matches_the_analytic_one():
  # GP(w) = (|w| - 1)^2 for a linear critic, so dGP/dw = 2 (|w| - 1) w / |w|.
  w = jnp.array([0.3, -0.4, 1.2, 0.0])
  real, fake = jnp.zeros((3, 4)), jnp.ones((3, 4))
  g = jax.grad(lambda w: penalties.gradient_penalty(
      linear_critic(w), real, fake, jax.random.key(0)))(w)
  n = np.linalg.norm(np.asarray(w))
  np.testing.assert_allclose(g, 2 * (n - 1) * np.asarray(w) / n, rtol=1e-5, atol=1e-7)


def test_critic_with_several_outputs_per_example_is_rejected():
  with pytest.raises(TypeError):
    penalties.per_example_grad_norms(lambda x: x * 2.0, jnp.ones((3, 2)))


def test_penalty_registry_shares_one_signature():
  assert set(penalties.PENALTIES) == {'none', 'gradient_penalty'}
  w = jnp.full((3,), 2.0)                              # |w| = sqrt(12)
  real, fake = jnp.zeros((2, 3)), jnp.ones((2, 3))
  vals = {name: fn(linear_critic(w), real, fake, jax.random.key(0), target_norm=1.0)
          for name, fn in penalties.PENALTIES.items()}
  assert float(vals['none']) == 0.0
  np.testing.assert_allclose(vals['gradient_penalty'], (np.sqrt(12.0) - 1) ** 2, rtol=1e-6)


# --- weight clipping ------------------------------------------------------------------

C = 0.01


@pytest.fixture(scope='module')
def blown_up_params():
  """Critic params after one SGD step with huge gradients: many leaves far outside C."""
  critic, params, x, _ = _critic_and_batches()
  tx = optax.sgd(1.0)

  @jax.jit
  def step(params):
    grads = jax.grad(lambda p: 1e3 * jnp.mean(critic.apply(p, x) ** 2))(params)
    updates, _ = tx.update(grads, tx.init(params))
    return optax.apply_updates(params, updates)
  params = step(params)
  assert max(float(jnp.max(jnp.abs(l))) for l in jax.tree.leaves(params)) > 10 * C
  return params


def test_clip_weights_keeps_every_critic_weight_in_range(blown_up_params):
  c, params = C, blown_up_params
  clipped = penalties.clip_weights(params, c)
  assert jax.tree.structure(clipped) == jax.tree.structure(params)
  for before, after in zip(jax.tree.leaves(params), jax.tree.leaves(clipped)):
    after, before = np.asarray(after), np.asarray(before)
    assert np.all((after >= -c) & (after <= c))
    inside = np.abs(before) <= c                       # clipping, not zeroing
    np.testing.assert_array_equal(after[inside], before[inside])
    np.testing.assert_array_equal(after[~inside], np.sign(before[~inside]) * c)


def test_clip_weights_can_leave_normalisation_parameters_free(blown_up_params):
  c, params = C, blown_up_params
  clipped = penalties.clip_weights(params, c, clip_norm_params=False)
  norm_in, norm_out = params['params']['LayerNorm_0'], clipped['params']['LayerNorm_0']
  np.testing.assert_array_equal(norm_out['scale'], norm_in['scale'])
  np.testing.assert_array_equal(norm_out['bias'], norm_in['bias'])
  assert float(jnp.max(jnp.abs(norm_in['scale']))) > c      # it would have been clipped
  for name in ('Dense_0', 'Dense_1'):
    for leaf in jax.tree.leaves(clipped['params'][name]):
      assert float(jnp.max(jnp.abs(leaf))) <= c


def test_clip_weights_runs_under_jit(blown_up_params):
  a = jax.jit(penalties.clip_weights, static_argnums=1)(blown_up_params, C)
  b = penalties.clip_weights(blown_up_params, C)
  jax.tree.map(np.testing.assert_array_equal, a, b)
