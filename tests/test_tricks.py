"""MinibatchDiscrimination and VirtualBatchNorm modules against numpy hand computations."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import penalties
from jaxgan.nets import tricks
from jaxgan.nets.tricks import VBN_COLLECTION


def _normal(seed, shape, scale=1.0, shift=0.0):
  """float32 N(shift, scale^2) test data from numpy: eager jax.random compiles per shape."""
  return jnp.asarray(np.random.default_rng(seed).normal(shift, scale, shape), jnp.float32)



# --- MinibatchDiscrimination -------------------------------------------------------------

def naive_mbd(x, t, b, c, exclude_self=False):
  """concat([x, o]) in float64 with explicit loops over pairs and kernels."""
  x, t = np.asarray(x, np.float64), np.asarray(t, np.float64)
  m = (x @ t).reshape(len(x), b, c)
  o = np.zeros((len(x), b))
  for i in range(len(x)):
    for j in range(len(x)):
      if exclude_self and i == j:
        continue
      o[i] += np.exp(-np.abs(m[i] - m[j]).sum(-1))
  return np.concatenate([x, o], -1)


@pytest.mark.parametrize('impl', ['fast', 'vmap'])
@pytest.mark.parametrize('exclude_self', [False, True])
def test_minibatch_discrimination_matches_double_loop(impl, exclude_self):
  layer = tricks.MinibatchDiscrimination(num_kernels=6, kernel_dim=3, exclude_self=exclude_self,
                                         impl=impl)
  x = _normal(0, (5, 10))
  variables = jax.jit(layer.init)(jax.random.key(1), x)
  # Larger T than the init, so the cross terms are neither ~0 nor ~1.
  t = variables['params']['kernel'] * 10.0
  got = jax.jit(layer.apply)({'params': {'kernel': t}}, x)
  assert got.shape == (5, 16)
  np.testing.assert_array_equal(got[:, :10], x)            # the input passes through
  np.testing.assert_allclose(got, naive_mbd(x, t, 6, 3, exclude_self), rtol=1e-5, atol=1e-6)


def test_minibatch_discrimination_counts_a_collapsed_batch():
  layer = tricks.MinibatchDiscrimination(num_kernels=4, kernel_dim=5)
  x = jnp.broadcast_to(_normal(2, (1, 8)), (6, 8))         # six identical examples
  variables = jax.jit(layer.init)(jax.random.key(3), x)
  np.testing.assert_array_equal(layer.apply(variables, x)[:, 8:], 6.0)
  excl = tricks.MinibatchDiscrimination(num_kernels=4, kernel_dim=5, exclude_self=True)
  np.testing.assert_array_equal(excl.apply(variables, x)[:, 8:], 5.0)


def test_minibatch_discrimination_init_and_shapes():
  layer = tricks.MinibatchDiscrimination(num_kernels=100, kernel_dim=5)
  variables = jax.jit(layer.init)(jax.random.key(4), jnp.zeros((2, 64)))
  t = np.asarray(variables['params']['kernel'])
  assert set(variables['params']) == {'kernel'}            # no bias: it cancels in M_i - M_j
  assert t.shape == (64, 500)
  np.testing.assert_allclose(t.std(), 0.02, rtol=0.05)
  with pytest.raises(ValueError, match='flatten'):
    layer.apply(variables, jnp.zeros((2, 8, 8)))


def test_minibatch_discrimination_is_permutation_equivariant():
  layer = tricks.MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
  x = _normal(5, (7, 6))
  variables = jax.jit(layer.init)(jax.random.key(6), x)
  apply = jax.jit(layer.apply)
  perm = np.array([6, 2, 0, 5, 1, 3, 4])
  np.testing.assert_allclose(apply(variables, x[perm]), np.asarray(apply(variables, x))[perm],
                             rtol=1e-6)


# --- VirtualBatchNorm ----------------------------------------------------------------------

EPS = 1e-5


def naive_vbn(ref, x, scale, bias):
  """Example i normalised by the mean and variance of concat([ref, x_i]) (n + 1 examples)."""
  ref, x = np.asarray(ref, np.float64), np.asarray(x, np.float64)
  out = np.empty_like(x)
  for i in range(len(x)):
    stack = np.concatenate([ref, x[i:i + 1]], 0)
    axes = tuple(range(stack.ndim - 1))
    mu, var = stack.mean(axes), stack.var(axes)
    out[i] = (x[i] - mu) / np.sqrt(var + EPS) * scale + bias
  return out


def naive_vbn_by_weights(ref, x):
  """The same for [N, C] inputs, written as the 1 / (n + 1) rule itself."""
  ref, x = np.asarray(ref, np.float64), np.asarray(x, np.float64)
  n = len(ref)
  w = 1.0 / (n + 1)
  mu = (1 - w) * ref.mean(0) + w * x                              # [N, C]
  mean_sq = (1 - w) * (ref ** 2).mean(0) + w * x ** 2
  return (x - mu) / np.sqrt(mean_sq - mu ** 2 + EPS)


def reference_pass(module, variables, ref):
  """Pass 1, jitted (flax applied op by op takes seconds on this CPU)."""
  return jax.jit(lambda v, r: module.apply(v, r, mutable=[VBN_COLLECTION]))(variables, ref)


def _vbn_vars(layer, ref, seed=7):
  """A non-trivial scale and bias, plus the reference statistics of ref (pass 1)."""
  c = ref.shape[-1]
  params = {'scale': _normal(seed, (c,), 0.5, 1.0), 'bias': _normal(seed + 1, (c,))}
  _, ref_vars = reference_pass(layer, {'params': params}, ref)
  return {'params': params, **ref_vars}


@pytest.mark.parametrize('shape', [(6,), (3, 2, 4)], ids=['dense', 'conv'])
def test_vbn_matches_stacked_reference_plus_example(shape):
  layer = tricks.VirtualBatchNorm(epsilon=EPS)
  ref = _normal(1, (10,) + shape, 2.0, 0.5)
  x = _normal(2, (4,) + shape, 3.0, -1.0)
  variables = _vbn_vars(layer, ref)
  got = jax.jit(layer.apply)(variables, x)
  want = naive_vbn(ref, x, np.asarray(variables['params']['scale'], np.float64),
                   np.asarray(variables['params']['bias'], np.float64))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_vbn_weights_the_example_by_one_over_n_plus_one():
  layer = tricks.VirtualBatchNorm(epsilon=EPS, use_scale=False, use_bias=False)
  ref, x = _normal(3, (7, 5), 1.5, 2.0), _normal(4, (3, 5), 4.0)
  _, ref_vars = reference_pass(layer, {}, ref)
  got = np.asarray(jax.jit(layer.apply)(ref_vars, x))
  np.testing.assert_allclose(got, naive_vbn_by_weights(ref, x), rtol=1e-4, atol=1e-5)
  # Against plain BN of the reference alone the example's weight matters.
  ref_only = (np.asarray(x) - np.asarray(ref).mean(0)) / np.sqrt(np.asarray(ref).var(0) + EPS)
  assert np.max(np.abs(got - ref_only)) > 1e-2


def test_vbn_reference_pass_uses_the_reference_statistics_alone():
  layer = tricks.VirtualBatchNorm(epsilon=EPS, use_scale=False, use_bias=False)
  ref = _normal(5, (8, 2, 2, 3), 2.0, 1.0)
  y, ref_vars = reference_pass(layer, {}, ref)
  r = np.asarray(ref, np.float64)
  stats = ref_vars[VBN_COLLECTION]
  np.testing.assert_allclose(stats['mean'], r.mean((0, 1, 2)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(stats['var'], r.var((0, 1, 2)), rtol=1e-5)
  assert float(stats['count']) == 8.0
  np.testing.assert_allclose(y, (r - r.mean((0, 1, 2))) / np.sqrt(r.var((0, 1, 2)) + EPS),
                             rtol=1e-4, atol=1e-5)


def test_vbn_output_of_an_example_ignores_the_rest_of_its_batch():
  # The point of VBN: unlike BatchNorm, example 0's output does not move when the
  # other examples of its batch change.
  layer = tricks.VirtualBatchNorm()
  ref = _normal(6, (9, 4))
  variables = _vbn_vars(layer, ref)
  x = _normal(7, (5, 4))
  x2 = x.at[1:].set(_normal(8, (4, 4), 10.0))
  apply = jax.jit(layer.apply)
  np.testing.assert_array_equal(apply(variables, x)[0], apply(variables, x2)[0])


def test_vbn_without_reference_statistics_is_an_error():
  layer = tricks.VirtualBatchNorm()
  variables = jax.jit(layer.init)(jax.random.key(0), jnp.ones((3, 2)))
  with pytest.raises(ValueError, match='reference'):
    layer.apply({'params': variables['params']}, jnp.ones((3, 2)))


class VbnCritic(nn.Module):
  """Dense -> VirtualBatchNorm -> tanh -> Dense(1): a critic with virtual batch norm."""

  @nn.compact
  def __call__(self, x):
    x = jnp.tanh(tricks.VirtualBatchNorm()(nn.Dense(6)(x.reshape(x.shape[0], -1))))
    return nn.Dense(1)(x)


def test_apply_with_reference_is_pure_and_differentiable_through_the_reference():
  net = VbnCritic()
  ref, x = _normal(9, (8, 3)), _normal(10, (4, 3))
  params = {'params': jax.jit(net.init)(jax.random.key(1), ref)['params']}
  run = jax.jit(lambda p, r, x: tricks.apply_with_reference(net, p, r, x))
  out = run(params, ref, x)
  _, ref_vars = reference_pass(net, params, ref)
  np.testing.assert_allclose(out, jax.jit(net.apply)({**params, **ref_vars}, x), rtol=1e-6)
  # The reference statistics are activations under the current parameters: the output
  # depends on the reference batch, and gradients flow into it.
  g_ref = jax.jit(jax.grad(lambda r: jnp.sum(run(params, r, x))))(ref)
  assert float(jnp.max(jnp.abs(g_ref))) > 1e-4


def test_vbn_critic_is_safe_under_the_per_example_gradient_penalty():
  # With VBN the per-example vmap(grad) equals the gradient of the batch sum, which is
  # only true when examples are not coupled (it fails for BatchNorm in train mode).
  net = VbnCritic()
  ref, x = _normal(11, (8, 3)), _normal(12, (5, 3))
  params = {'params': jax.jit(net.init)(jax.random.key(2), ref)['params']}
  critic = lambda x: tricks.apply_with_reference(net, params, ref, x)
  norms = jax.jit(lambda x: penalties.per_example_grad_norms(critic, x))(x)
  g_sum = jax.jit(jax.grad(lambda x: jnp.sum(critic(x))))(x)
  np.testing.assert_allclose(norms, np.linalg.norm(np.asarray(g_sum), axis=-1), rtol=1e-5)
  # Control: swap the reference for the batch itself (plain BatchNorm) and they differ.
  bn_critic = lambda x: tricks.apply_with_reference(net, params, x, x)
  bn_norms = jax.jit(lambda x: penalties.per_example_grad_norms(bn_critic, x))(x)
  bn_sum = jax.jit(jax.grad(lambda x: jnp.sum(bn_critic(x))))(x)
  assert np.max(np.abs(np.asarray(bn_norms) - np.linalg.norm(np.asarray(bn_sum), axis=-1))) > 1e-3
