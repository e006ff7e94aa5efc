"""Configs that give a seed's own version where jaxgan's default departs from it.

Seed 004's toy loop (configs/toy2d_seed004.py), Goodfellow's maxout input dropout,
seed 003's 5x5 DCGAN under WGAN by flag, and seed 001's LeakyReLU(0.01) with the
normalisation after the activation. (WGAN's PyTorch RMSProp: tests/test_losses.py.)
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import steps, systems
from jaxgan.config_util import load_config_file, set_field
from jaxgan.nets import acgan, mlp
from tests.conftest import REPO
from tests.solo import solo_step


def _config(name, **overrides):
  config = load_config_file(REPO / 'configs' / f'{name}.py')
  for k, v in overrides.items():
    set_field(config, k, v)
  systems.validate(config)
  return config


def _host(tree):
  return jax.tree.map(np.array, tree)


def _changed(before, after):
  return any(not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(before), jax.tree.leaves(after)))


def test_toy2d_seed004_updates_g_on_even_steps_and_d_on_odd_with_the_saturating_loss():
  config = _config('toy2d_seed004')
  assert (config.train.g_loss, config.train.alternate) == ('minimax', True)
  n = config.data.batch_size
  models = systems.build_models(config, (2,))
  step = solo_step(config, models)
  state = systems.create_state(config, models, (2,))
  rng = np.random.default_rng(0)
  schedule = systems.schedule_of(config)
  key = systems.train_key(config)

  def seed_g_loss(g_params, s):
    """The seed's G loss, (1 - D(G(z))).log().mean(), on the step's noise, with D as it
    was before the step (it is not updated on even steps)."""
    _, k_g = jax.random.split(jax.random.fold_in(key, s.step))
    k_fake, _ = jax.random.split(jax.random.fold_in(k_g, 0))
    (z,) = steps.draw_inputs(k_fake, n, schedule)
    fake = models.gen.apply({'params': g_params}, z)
    d_prob = jax.nn.sigmoid(models.disc.apply({'params': s.disc.params}, fake)[0])
    return jnp.mean(jnp.log(1.0 - d_prob))

  def seed_d_loss(d_params, s, real):
    """The seed's D loss, -(1 - D(G(z))).log().mean() - D(x).log().mean()."""
    k_d, _ = jax.random.split(jax.random.fold_in(key, s.step))
    k_fake = jax.random.split(jax.random.fold_in(k_d, 0), 3)[0]
    (z,) = steps.draw_inputs(k_fake, n, schedule)
    fake = models.gen.apply({'params': s.gen.params}, z)
    d_fake = jax.nn.sigmoid(models.disc.apply({'params': d_params}, fake)[0])
    d_real = jax.nn.sigmoid(models.disc.apply({'params': d_params}, real)[0])
    return -jnp.mean(jnp.log(1.0 - d_fake)) - jnp.mean(jnp.log(d_real))

  g_grad, d_grad = jax.jit(jax.value_and_grad(seed_g_loss)), jax.jit(jax.grad(seed_d_loss))
  for t in range(4):
    real = rng.normal(size=(1, n, 2)).astype(np.float32)
    before = _host(state)
    state, metrics = step(state, {'images': jnp.asarray(real)})
    after = _host(state)
    assert int(after.step) == t + 1
    if t % 2 == 0:  # G alone, by Adam on the gradient of the seed's saturating loss
      assert not _changed(before.disc, after.disc), f'D changed on even step {t}'
      loss, grads = g_grad(before.gen.params, before)
      updates, _ = models.tx_gen.update(grads, before.gen.opt_state, before.gen.params)
      expected = jax.tree.map(lambda p, u: p + u, before.gen.params, updates)
      np.testing.assert_allclose(metrics['g_loss'], loss, rtol=1e-5, atol=1e-6)
    else:           # D alone, on this minibatch's real points
      assert not _changed(before.gen, after.gen), f'G changed on odd step {t}'
      grads = d_grad(before.disc.params, before, jnp.asarray(real[0]))
      updates, _ = models.tx_disc.update(grads, before.disc.opt_state, before.disc.params)
      expected = jax.tree.map(lambda p, u: p + u, before.disc.params, updates)
    net = after.gen if t % 2 == 0 else after.disc
    for got, want in zip(jax.tree.leaves(net.params), jax.tree.leaves(expected)):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_alternate_needs_one_update_of_each_network_a_step():
  with pytest.raises(Exception, match='train.alternate'):
    _config('toy2d_seed004', **{'train.n_disc': 2})


def test_maxout_discriminator_keeps_four_fifths_of_its_input_pixels():
  """Goodfellow's D: dropout 0.2 on the input, 0.5 on the hidden units. An input pixel
  dropped by the mask has exactly zero gradient; one kept almost never does."""
  config = _config('vanilla_gan')
  assert (config.model.input_dropout, config.model.dropout) == (0.2, 0.5)
  disc = mlp.MaxoutDiscriminator(units=32, pieces=3, dropout=0.5, input_dropout=0.2)
  x = jax.random.normal(jax.random.key(0), (64, 28, 28, 1))
  params = disc.init(jax.random.key(1), x, train=False)['params']
  grad = jax.grad(lambda x: jnp.sum(disc.apply({'params': params}, x, train=True,
                                               rngs={'dropout': jax.random.key(2)})[0]))(x)
  dropped = float(jnp.mean(grad == 0))
  # 50,176 pixels: the binomial's std is 0.0018 at p = 0.2 (0.5 would give ~0.5).
  assert abs(dropped - 0.2) < 0.01, dropped


def test_wgan_and_wgan_gp_run_on_seed_003s_5x5_dcgan_chosen_by_flag():
  """--config.model.name picks any network for any config: every config declares
  every model field. (The 5x5 DCGAN's step is pinned by golden's dcgan_5x5 entry.)"""
  default_fields = set(load_config_file(REPO / 'configs' / 'default.py').model.keys())
  for name in ('wgan', 'wgan_gp', 'mmd_dcgan', 'toy2d', 'vanilla_gan', 'acgan'):
    assert set(load_config_file(REPO / 'configs' / f'{name}.py').model.keys()) == default_fields
  tiny = {'model.name': 'dcgan', 'model.kernel_size': 5, 'model.ngf': 4, 'model.ndf': 4,
          'train.n_gen': 2, 'data.pad_to': 32, 'data.batch_size': 4}
  for name in ('wgan', 'wgan_gp'):
    config = _config(name, **tiny)
    models = systems.build_models(config, (32, 32, 1))
    state = systems.create_state(config, models, (32, 32, 1))
    for net in (state.gen, state.disc):
      kernels = [v.shape[:2] for p, v in jax.tree_util.tree_leaves_with_path(net.params)
                 if 'kernel' in jax.tree_util.keystr(p) and v.ndim == 4]
      assert kernels and all(k == (5, 5) for k in kernels), kernels


@pytest.mark.parametrize('norm_first', [True, False])
def test_acgan_discriminator_orders_norm_and_leaky_relu_as_configured(norm_first):
  """Seed 001's letter (slope 0.01, BatchNorm after the activation) and the default
  (slope 0.2, BatchNorm first), checked on D's second layer: its BatchNorm's output
  recomputed in float64 from its convolution's output."""
  slope = 0.2 if norm_first else 0.01
  disc = acgan.AuxClassifierDiscriminator(num_classes=3, width_mult=0.25,
                                          leaky_slope=slope, norm_first=norm_first)
  x = jax.random.normal(jax.random.key(0), (8, 32, 32, 1))
  variables = disc.init(jax.random.key(1), x, train=False)
  _, inter = disc.apply(variables, x, train=True, mutable=['batch_stats', 'intermediates'],
                        capture_intermediates=True)
  conv = np.asarray(inter['intermediates']['Conv_1']['__call__'][0], np.float64)
  bn_out = np.asarray(inter['intermediates']['BatchNorm_0']['__call__'][0], np.float64)
  bn = {k: np.asarray(v, np.float64) for k, v in variables['params']['BatchNorm_0'].items()}
  h = conv if norm_first else np.where(conv >= 0, conv, slope * conv)
  mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
  want = (h - mean) / np.sqrt(var + 1e-5) * bn['scale'] + bn['bias']
  np.testing.assert_allclose(bn_out, want, rtol=1e-4, atol=1e-4)
  # A convolution straight into a BatchNorm has no bias (the norm's shift replaces it).
  assert ('bias' in variables['params']['Conv_1']) == (not norm_first)
