"""Losses against hand formulas (numpy float64) and seed 004's optimal-D theory."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgan import losses


def normal(seed, shape, scale=1.0, shift=0.0):
  """float32 N(shift, scale^2) test data from numpy: eager jax.random compiles per shape."""
  return jnp.asarray(np.random.default_rng(seed).normal(shift, scale, shape), jnp.float32)


def _logits(n=8, seed=0, scale=2.0):
  return normal(seed, (n,), scale)


def _log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


# --- one-sided label smoothing (the existing BCE's real_label) ----------------------

def test_one_sided_smoothing_matches_hand_formula():
  real, fake = _logits(seed=0), _logits(seed=1)
  r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  t = 0.9
  want = (-np.mean(t * _log_sigmoid(r) + (1 - t) * _log_sigmoid(-r))   # log(1 - s(r)) = log s(-r)
          - np.mean(_log_sigmoid(-f)))
  np.testing.assert_allclose(losses.bce_discriminator(real, fake, real_label=t), want, rtol=1e-6)
  # and the smoothing matters: t = 1 gives a different value.
  assert abs(float(losses.bce_discriminator(real, fake)) - want) > 1e-2


def test_one_sided_smoothing_moves_the_optimum_to_the_target():
  # For real data alone the smoothed loss is minimised at D(x) = 0.9, not at D -> 1.
  g = jax.grad(lambda l: losses.bce_discriminator(l, jnp.full((1,), -50.0), 0.9))
  np.testing.assert_allclose(g(jnp.full((1,), np.log(9.0))), 0.0, atol=1e-6)


# --- Wasserstein ---------------------------------------------------------------------

def test_wasserstein_losses_match_hand_formula():
  real, fake = _logits(6, 2)[:, None], _logits(5, 3)     # [N, 1] and [M] both accepted
  r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  np.testing.assert_allclose(losses.wasserstein_critic(real, fake), f.mean() - r.mean(), rtol=1e-6)
  np.testing.assert_allclose(losses.wasserstein_generator(fake), -f.mean(), rtol=1e-6)


def test_wasserstein_rejects_label_smoothing():
  with pytest.raises(ValueError, match='label smoothing'):
    losses.wasserstein_critic(_logits(), _logits(), real_label=0.9)


def test_registries_name_every_loss_with_the_shared_signature():
  real, fake = _logits(seed=4), _logits(seed=5)
  assert losses.DISC_LOSSES['wasserstein'] is losses.wasserstein_critic
  assert losses.GEN_LOSSES['wasserstein'] is losses.wasserstein_generator
  for fn in losses.DISC_LOSSES.values():
    assert jnp.shape(fn(real, fake, real_label=1.0)) == ()
  for fn in losses.GEN_LOSSES.values():
    assert jnp.shape(fn(fake)) == ()


# --- AC-GAN class loss and label smoothing --------------------------------------------

def _np_log_softmax(z):
  z = np.asarray(z, np.float64)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_class_loss_with_integer_labels_matches_hand_cross_entropy():
  logits = normal(0, (7, 5), 3.0)
  labels = jnp.array([0, 4, 2, 2, 1, 3, 0])
  lp = _np_log_softmax(logits)
  want = -np.mean([lp[i, int(labels[i])] for i in range(7)])
  np.testing.assert_allclose(losses.acgan_class_loss(logits, labels), want, rtol=1e-6)


def test_class_loss_with_soft_targets_matches_hand_cross_entropy():
  logits = normal(1, (6, 4), 2.0)
  targets = jax.nn.softmax(normal(2, (6, 4)))
  want = -np.mean(np.sum(np.asarray(targets, np.float64) * _np_log_softmax(logits), -1))
  np.testing.assert_allclose(losses.acgan_class_loss(logits, targets), want, rtol=1e-6)


def test_class_loss_one_hot_targets_equal_integer_labels():
  logits = normal(3, (6, 10))
  labels = jnp.arange(6) % 10
  np.testing.assert_allclose(losses.acgan_class_loss(logits, jax.nn.one_hot(labels, 10)),
                             losses.acgan_class_loss(logits, labels), rtol=1e-6)


def test_class_loss_rejects_float_labels_and_bad_shapes():
  logits = jnp.zeros((4, 3))
  with pytest.raises(ValueError, match='integers'):
    losses.acgan_class_loss(logits, jnp.zeros((4,)))
  with pytest.raises(ValueError, match='fit neither'):
    losses.acgan_class_loss(logits, jnp.zeros((4, 5)))


@pytest.mark.parametrize('k,eps', [(10, 0.1), (3, 0.3), (2, 1.0)])
def test_smoothed_targets_are_exact(k, eps):
  labels = jnp.array([0, k - 1, 1 % k])
  t = np.asarray(losses.smoothed_class_targets(labels, k, eps), np.float64)
  assert t.shape == (3, k)
  np.testing.assert_allclose(t.sum(-1), 1.0, rtol=1e-6)
  for i, y in enumerate(np.asarray(labels)):
    np.testing.assert_allclose(t[i, y], 1 - (k - 1) * eps / k, rtol=1e-6)
    np.testing.assert_allclose(np.delete(t[i], y), eps / k, rtol=1e-6)


def test_zero_smoothing_is_one_hot():
  labels = jnp.array([2, 0, 1])
  np.testing.assert_array_equal(losses.smoothed_class_targets(labels, 3, 0.0),
                                np.eye(3)[[2, 0, 1]])


# --- feature matching -----------------------------------------------------------------

def test_feature_matching_is_squared_distance_of_means():
  real = normal(4, (9, 4, 3))                             # trailing axes summed too
  fake = normal(5, (5, 4, 3), shift=0.5)
  r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  want = np.sum((r.mean(0) - f.mean(0)) ** 2)
  np.testing.assert_allclose(losses.feature_matching(real, fake), want, rtol=1e-5)


def test_feature_matching_sends_gradient_to_fake_features_only():
  real, fake = normal(6, (6, 3)), normal(7, (6, 3))
  g_real, g_fake = jax.grad(losses.feature_matching, argnums=(0, 1))(real, fake)
  np.testing.assert_array_equal(g_real, 0.0)
  # d/dfake_i = -2 (mean_real - mean_fake) / M for every row i.
  want = -2.0 * (np.asarray(real).mean(0) - np.asarray(fake).mean(0)) / 6
  np.testing.assert_allclose(g_fake, np.broadcast_to(want, (6, 3)), rtol=1e-5)


# --- seed 004: optimal discriminator on a discrete toy problem -------------------------
# Five points; pmfs with denominator 20 so that "samples" repeated by their counts make
# the library's sample-mean BCE equal -(E_mu log D + E_muG log(1 - D)) exactly.
MU_COUNTS = np.array([6, 5, 4, 3, 2])
MUG_COUNTS = np.array([1, 3, 4, 5, 7])
MU, MUG = MU_COUNTS / 20.0, MUG_COUNTS / 20.0
REAL_IDX = np.repeat(np.arange(5), MU_COUNTS)
FAKE_IDX = np.repeat(np.arange(5), MUG_COUNTS)


def objective(point_logits):
  """L(D, G) = E_mu log D + E_muG log(1 - D), with D = sigmoid(point_logits) [5]."""
  return -losses.bce_discriminator(point_logits[REAL_IDX], point_logits[FAKE_IDX])


def _kl(p, q):
  return float(np.sum(p * np.log(p / q)))


def _fit_discriminator(steps=1500):
  opt = optax.adam(0.05)

  @jax.jit
  def run(l):
    def body(_, carry):
      l, s = carry
      g = jax.grad(lambda l: -objective(l))(l)       # gradient ascent on L
      u, s = opt.update(g, s)
      return optax.apply_updates(l, u), s
    return jax.lax.fori_loop(0, steps, body, (l, opt.init(l)))[0]
  return run(jnp.zeros(5))


def test_numerical_optimal_discriminator_is_mu_over_mu_plus_mug():
  d = jax.nn.sigmoid(_fit_discriminator())
  np.testing.assert_allclose(d, MU / (MU + MUG), atol=2e-4)


def test_objective_at_optimal_d_is_two_js_minus_log4():
  d_star = MU / (MU + MUG)
  m = 0.5 * (MU + MUG)
  js = 0.5 * _kl(MU, m) + 0.5 * _kl(MUG, m)
  value = objective(jnp.asarray(np.log(d_star / (1 - d_star)), jnp.float32))
  np.testing.assert_allclose(value, 2 * js - np.log(4.0), rtol=1e-5)
  assert js > 0.01                                       # the two pmfs really differ
  # D* is the maximiser: any other D scores lower.
  other = objective(jnp.asarray(np.log(d_star / (1 - d_star)) + 0.3, jnp.float32))
  assert float(other) < float(value) - 1e-3


def test_objective_is_minus_log4_when_generator_matches_data():
  # mu_G = mu: D* = 1/2 everywhere and L = -log 4 (JS = 0).
  value = -losses.bce_discriminator(jnp.zeros(20), jnp.zeros(20))
  np.testing.assert_allclose(value, -np.log(4.0), rtol=1e-6)


def test_minimax_and_non_saturating_gradients_have_the_same_sign_in_d():
  # As functions of D = D(G(z)) in (0, 1): d/dD log(1 - D) = -1/(1 - D) and
  # d/dD (-log D) = -1/D; both negative, so G moves D(G(z)) up under either loss.
  d = jnp.linspace(0.001, 0.999, 101)
  as_d = lambda loss: jax.vmap(jax.grad(lambda d: loss(jnp.log(d / (1 - d))[None])))(d)
  g_mm, g_ns = as_d(losses.minimax_generator), as_d(losses.non_saturating_generator)
  assert np.all(np.asarray(g_mm) < 0) and np.all(np.asarray(g_ns) < 0)
  np.testing.assert_allclose(g_mm, -1 / (1 - d), rtol=1e-3)
  np.testing.assert_allclose(g_ns, -1 / d, rtol=1e-3)
  # The saturation seed 004 describes: where D(G(z)) ~ 0 the minimax gradient is ~ -1
  # while the non-saturating one is ~ -1/D, large.
  assert abs(float(g_ns[0])) > 500 * abs(float(g_mm[0]))


@pytest.mark.parametrize('gen_loss', ['minimax', 'non_saturating'])
def test_both_generator_losses_are_stationary_at_mug_equal_mu(gen_loss):
  # G is a pmf softmax(theta) on the five points, D is frozen at D*_G; the generator's
  # expected loss E_muG[loss(logit D)] has zero gradient in theta iff mu_G = mu.
  loss = losses.GEN_LOSSES[gen_loss]
  per_point = jax.vmap(lambda l: loss(l[None]))

  def grad_at(mug):
    d_logit = jnp.asarray(np.log(MU / mug), jnp.float32)       # logit of mu / (mu + mug)
    theta = jnp.asarray(np.log(mug), jnp.float32)
    return jax.grad(lambda th: jnp.sum(jax.nn.softmax(th) * per_point(d_logit)))(theta)

  np.testing.assert_allclose(grad_at(MU), 0.0, atol=1e-6)
  assert float(jnp.max(jnp.abs(grad_at(MUG)))) > 1e-2


def test_rmsprop_is_pytorchs_update_written_out_in_float64():
  """WGAN's RMSProp: v <- 0.99 v + 0.01 g^2, p <- p - lr g / (sqrt(v) + 1e-8), as
  torch.optim.RMSprop (alpha 0.99, eps 1e-8 outside the square root)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from jaxgan import systems  # pylint: disable=g-import-not-at-top
  lr = 5e-5
  tx = systems.make_optimizer(ml_collections.ConfigDict(dict(name='rmsprop', learning_rate=lr)))
  rng = np.random.default_rng(0)
  p = rng.normal(size=(5,)).astype(np.float32)
  grads = [rng.normal(size=(5,)).astype(np.float32) * s for s in (1.0, 1e-3, 10.0)]
  state, params = tx.init(jnp.asarray(p)), jnp.asarray(p)
  p64, v64 = p.astype(np.float64), np.zeros(5)
  for g in grads:
    updates, state = tx.update(jnp.asarray(g), state, params)
    params = optax.apply_updates(params, updates)
    v64 = 0.99 * v64 + 0.01 * g.astype(np.float64) ** 2
    p64 = p64 - lr * g / (np.sqrt(v64) + 1e-8)
  np.testing.assert_allclose(np.asarray(params), p64, rtol=1e-6, atol=1e-9)
