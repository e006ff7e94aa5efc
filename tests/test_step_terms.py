"""The loss terms inside the train step, each recomputed outside it.

Each test replays one step's randomness (steps.gan_step: the step's key, split into a D
and a G key, one key per update) and recomputes a term from the same networks, so a
step that used the wrong D, the wrong batch or the wrong weight fails.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import kernels, penalties, steps, systems
from jaxgan.errors import UserError
from tests import golden
from tests.conftest import tiny_flags
from tests.solo import solo_step
from tests.test_train import run_main

SHAPE = (28, 28, 1)


def _setup(name, **fields):
  config = golden.tiny_config(name)
  for key, value in fields.items():
    section, field = key.split('.')
    config[section][field] = value
  models = systems.build_models(config, SHAPE, None)
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (config.train.n_disc, golden.BATCH) + SHAPE).astype(np.uint8)
  return config, models, images


def _step(config, models, images):
  """(state before, state after, metrics) of the first step; the step donates its input,
  so the state before is built twice (initialisation is deterministic)."""
  before = systems.create_state(config, models, SHAPE)
  state = systems.create_state(config, models, SHAPE)
  after, metrics = solo_step(config, models)(state, {'images': images})
  return before, after, {k: float(v) for k, v in metrics.items()}


def _keys(config):
  """(D key, G key) of step 0."""
  return jax.random.split(jax.random.fold_in(systems.train_key(config), 0))


def _fake(config, models, gen_state, key):
  k_z, _ = jax.random.split(key)
  z = steps.latent(k_z, golden.BATCH, config.model.latent_dim, config.model.noise)
  return steps.generate(models.gen, gen_state.params, gen_state.batch_stats, z)[0]


def _d_outputs(models, disc_state, real, fake, k_drop):
  return steps.disc_pair(models.disc, disc_state.params, disc_state.batch_stats, real, fake,
                         mode='grouped', rngs={'dropout': k_drop})[:2]


def _g_phase(config, models, before, after, images):
  """D's outputs on the last real batch and G's fake, as the G update sees them."""
  _, k_g = _keys(config)
  k_fake, k_drop = jax.random.split(jax.random.fold_in(k_g, 0))
  fake = _fake(config, models, before.gen, k_fake)
  real = steps.to_unit_range(images[-1])
  return (_d_outputs(models, after.disc, real, fake, k_drop),
          _d_outputs(models, before.disc, real, fake, k_drop))


def test_mmd2_is_taken_in_the_updated_discriminator():
  config, models, images = _setup('mmd_dcgan', **{'train.eta': 10.0})
  before, after, metrics = _step(config, models, images)
  (ro, fo), (ro_old, fo_old) = _g_phase(config, models, before, after, images)
  t = config.train
  want = float(kernels.mmd2(fo['features'], ro['features'], t.mmd_sigmas, t.mmd_estimator))
  stale = float(kernels.mmd2(fo_old['features'], ro_old['features'], t.mmd_sigmas,
                             t.mmd_estimator))
  np.testing.assert_allclose(metrics['mmd2'], want, rtol=1e-4)
  assert abs(stale - want) > 100 * 1e-4 * abs(want)    # the pre-update D would be seen
  np.testing.assert_allclose(metrics['g_loss'], metrics['g_adv'] + 10.0 * metrics['mmd2'],
                             rtol=1e-5)


def test_virtual_batch_norm_g_runs_on_the_runs_reference_batch_inside_the_step():
  """G's adversarial term with VBN: G normalised by the run's fixed reference batch
  (steps.vbn_reference of the run's key), scored by the updated D."""
  config, models, images = _setup('mmd_dcgan', **{'train.eta': 0.0, 'model.gen_norm': 'virtual'})
  before, after, metrics = _step(config, models, images)
  _, k_g = _keys(config)
  k_fake, k_drop = jax.random.split(jax.random.fold_in(k_g, 0))
  z = steps.draw_inputs(k_fake, golden.BATCH, systems.schedule_of(config))

  def g_adv(ref_key):
    ref = steps.vbn_reference(ref_key, golden.BATCH, config.model.latent_dim, config.model.noise)
    fake = steps.generate(models.gen, before.gen.params, before.gen.batch_stats, *z, ref=ref)[0]
    variables = {'params': after.disc.params, 'batch_stats': after.disc.batch_stats}
    logit = models.disc.apply(variables, fake, train=True, rngs={'dropout': k_drop},
                              mutable=['batch_stats'])[0][0]
    return float(np.mean(_softplus64(-np.asarray(logit))))
  np.testing.assert_allclose(metrics['g_adv'], g_adv(systems.train_key(config)), rtol=1e-5)
  assert abs(g_adv(jax.random.key(123)) - metrics['g_adv']) > 1e-4  # another reference


def _fm64(real_features, fake_features):
  diff = (np.asarray(real_features, np.float64).mean(0) - np.asarray(fake_features, np.float64).mean(0))
  return float((diff ** 2).sum())


@pytest.mark.parametrize('adversarial_weight', [0.5])
def test_feature_matching_and_adversarial_weight_make_the_g_loss(adversarial_weight):
  config, models, images = _setup('mmd_dcgan', **{
      'train.eta': 0.0, 'train.feature_matching': 2.0,
      'train.adversarial_weight': adversarial_weight})
  before, after, metrics = _step(config, models, images)
  (ro, fo), _ = _g_phase(config, models, before, after, images)
  np.testing.assert_allclose(metrics['feature_matching'], _fm64(ro['features'], fo['features']),
                             rtol=1e-4)
  np.testing.assert_allclose(
      metrics['g_loss'], adversarial_weight * metrics['g_adv'] + 2.0 * metrics['feature_matching'],
      rtol=1e-5, atol=1e-7)


def _d_phase(config, models, before, images):
  """(real, fake, penalty key, dropout key) of the step's first D update."""
  k_d, _ = _keys(config)
  k_fake, k_gp, k_drop = jax.random.split(jax.random.fold_in(k_d, 0), 3)
  return (steps.to_unit_range(images[0]), _fake(config, models, before.gen, k_fake), k_gp,
          k_drop)


def _softplus64(x):
  x = np.asarray(x, np.float64)
  return np.logaddexp(0.0, x)


@pytest.mark.parametrize('real_label', [0.9])
def test_real_label_is_the_target_of_the_real_batch(real_label):
  config, models, images = _setup('mmd_dcgan', **{'train.eta': 0.0, 'train.real_label': real_label})
  before, _, metrics = _step(config, models, images)
  real, fake, _, k_drop = _d_phase(config, models, before, images)
  ro, fo = _d_outputs(models, before.disc, real, fake, k_drop)
  r, f = ro['logit'], fo['logit']
  want = (np.mean(real_label * _softplus64(-r) + (1 - real_label) * _softplus64(r))
          + np.mean(_softplus64(f)))
  np.testing.assert_allclose(metrics['d_adv'], want, rtol=1e-5)


@pytest.mark.parametrize('gp_weight', [3.0])   # not the config's 10
def test_gradient_penalty_uses_the_steps_own_pair_and_its_weight(gp_weight):
  config, models, images = _setup('wgan_gp', **{'train.n_disc': 1, 'train.gp_weight': gp_weight})
  before, _, metrics = _step(config, models, images)
  real, fake, k_gp, k_drop = _d_phase(config, models, before, images)
  variables = {'params': before.disc.params, 'batch_stats': before.disc.batch_stats}
  critic = lambda x: models.disc.apply(variables, x, train=True, rngs={'dropout': k_drop})[0]
  gp = float(penalties.gradient_penalty(critic, real, fake, k_gp))
  np.testing.assert_allclose(metrics['gp'], gp, rtol=1e-4)
  np.testing.assert_allclose(metrics['d_loss'], metrics['d_adv'] + gp_weight * gp, rtol=1e-5)


@pytest.mark.parametrize('overrides,message', [
    ({'data.batch_size': 1}, 'data.batch_size must be >= 2'),
    ({'data.limit': 5}, r'data.limit \(5\) must be >= data.batch_size \* train.n_disc'),
    ({'train.mmd_estimator': 'exact'}, 'train.mmd_estimator must be one of'),
    ({'train.noise_period': -1}, 'train.noise_period must be >= 0'),
    ({'train.d_loss': 'hinge'}, 'train.d_loss must be one of'),
    ({'train.n_disc': 0}, 'train.n_disc must be >= 1'),
    ({'train.num_steps': 0}, 'train.num_steps must be >= 1'),
    ({'optim.learning_rate': 0.0}, r'optim.learning_rate must be in \(0, inf\)'),
    ({'train.mmd_sigmas': (1.0, -2.0)}, r'train.mmd_sigmas must be kernel bandwidths, each in \(0, inf\)'),
    ({'train.gp_weight': 10.0}, 'train.gp_weight needs a per-example critic'),
    ({'train.r1_weight': 1.0}, 'train.r1_weight needs a per-example critic'),
    ({'train.d_loss': 'wasserstein', 'train.real_label': 0.9}, 'not to the Wasserstein critic'),
    ({'model.pack': 3}, r'data.batch_size \(8\) must be divisible by model.pack \(3\)'),
    ({'model.gen_norm': 'none'}, 'model.gen_norm must be one of'),
    ({'train.class_smoothing': 0.1}, 'needs a conditional model'),
])
def test_validate_rejects_each_bad_value_with_its_reason(overrides, message):
  config = golden.tiny_config('mmd_dcgan')
  for key, value in overrides.items():
    section, field = key.split('.')
    config[section][field] = value
  with pytest.raises(UserError, match=message):
    systems.validate(config)


@pytest.mark.slow
def test_main_exits_with_status_3_on_a_non_finite_loss(tmp_path, data_dir):
  proc = run_main(tmp_path / 'w', *tiny_flags(), '--config.optim.learning_rate=1e6',
                  '--config.train.num_steps=8', data_dir=data_dir)
  assert proc.returncode == 3, proc.stderr[-2000:]
  assert 'non-finite' in proc.stderr.strip().splitlines()[-1]
