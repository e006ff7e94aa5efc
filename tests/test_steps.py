"""The train step: determinism, one compilation, common random numbers, the schedule."""
import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import kernels, steps, systems, terms
from tests.conftest import tiny_config
from tests.solo import solo_step

SHAPE = (28, 28, 1)


def _setup(**overrides):
  config = tiny_config(**overrides)
  models = systems.build_models(config, SHAPE)
  return config, models, systems.create_state(config, models, SHAPE)


def _batch(seed, n_disc=1):
  pix = np.random.RandomState(seed).randint(0, 256, (n_disc, 16) + SHAPE)
  return {'images': jnp.asarray(pix, jnp.uint8)}


def _copy(tree):
  return jax.tree.map(jnp.copy, tree)  # the step donates its input state


def test_step_is_deterministic_and_compiles_once():
  config, models, state = _setup()
  one = systems.member_step([config], models)
  step = jax.jit(chex.assert_max_traces(
      lambda s, b, k: one(s, b, k, terms.weights(config)), n=1))
  key = systems.train_key(config)
  s1, m1 = step(_copy(state), _batch(0), key)
  s2, m2 = step(_copy(state), _batch(0), key)
  chex.assert_trees_all_equal(s1, s2)
  chex.assert_trees_all_equal(m1, m2)
  s3, _ = step(s1, _batch(1), key)  # a new batch and step: must not retrace
  assert int(s3.step) == 2
  assert not np.allclose(s3.gen.params['Dense_0']['kernel'], s1.gen.params['Dense_0']['kernel'])


def test_jitted_step_matches_unjitted():
  config, models, state = _setup()
  key = systems.train_key(config)
  fast, m_fast = solo_step(config, models)(_copy(state), _batch(0))
  slow, m_slow = systems.member_step([config], models)(state, _batch(0), key, terms.weights(config))
  chex.assert_trees_all_close(fast, slow, rtol=1e-4, atol=1e-5)
  chex.assert_trees_all_close(m_fast, m_slow, rtol=1e-4, atol=1e-5)


def test_runs_differing_only_in_eta_see_identical_noise_and_init():
  """Seed 000's protocol: the D update of a step does not depend on eta, so after one
  step D is bit-identical across eta (same init, same noise, same data); G differs."""
  results = {}
  for eta in (0.0, 10.0):
    config, models, state = _setup(**{'train.eta': eta})
    results[eta] = solo_step(config, models)(state, _batch(0))
  (s0, m0), (s10, m10) = results[0.0], results[10.0]
  chex.assert_trees_all_equal(s0.disc.params, s10.disc.params)
  assert float(m0['d_loss']) == float(m10['d_loss'])
  assert float(m0['g_adv']) == float(m10['g_adv'])     # same z', same D: same BCE before G moves
  assert 'mmd2' not in m0 and float(m10['mmd2']) > 0
  assert not np.allclose(s0.gen.params['Dense_0']['kernel'], s10.gen.params['Dense_0']['kernel'])
  chex.assert_trees_all_equal(systems.eval_noise(tiny_config(**{'train.eta': 0.0}), 8),
                              systems.eval_noise(tiny_config(**{'train.eta': 10.0}), 8))


def test_eta_zero_is_plain_dcgan_and_eta_adds_eta_times_mmd2():
  config, models, state = _setup(**{'train.eta': 0.0})
  _, m = solo_step(config, models)(state, _batch(0))
  assert float(m['g_loss']) == float(m['g_adv'])
  config, models, state = _setup(**{'train.eta': 7.0})
  _, m = solo_step(config, models)(state, _batch(0))
  np.testing.assert_allclose(float(m['g_loss']), float(m['g_adv']) + 7.0 * float(m['mmd2']), rtol=1e-5)


def test_discriminator_sees_real_and_fake_as_separate_batchnorm_batches():
  """D(concat([real, fake])) with two BatchNorm groups equals two separate D calls."""
  config, models, state = _setup()
  real = steps.to_unit_range(_batch(0)['images'][0])
  fake = steps.to_unit_range(_batch(1)['images'][0])
  args = (models.disc, state.disc.params, state.disc.batch_stats, real, fake)
  grouped = steps.disc_pair(*args, mode='grouped', rngs={})
  separate = steps.disc_pair(*args, mode='separate', rngs={})
  for g, s in zip(grouped[:2], separate[:2]):
    chex.assert_trees_all_close(g, s, rtol=1e-4, atol=1e-5)


def test_initialisation_follows_dcgan():
  _, _, state = _setup(**{'model.gen_width': 256, 'model.disc_width': 64})
  k = np.asarray(state.gen.params['Dense_0']['kernel'])
  assert abs(k.std() - 0.02) < 0.001 and abs(k.mean()) < 0.001
  scale = np.asarray(state.disc.params['BatchNorm_0']['scale'])
  assert abs(scale.mean() - 1.0) < 0.01 and 0.01 < scale.std() < 0.03


# --- Seed 000's literal protocol (configs/mmd_dcgan_seed000.py) ---------------------


_COMPILED = []  # (models, step) of the last config: its later calls reuse the compilation


def _one_step(config, models, state, batch):
  if not _COMPILED or _COMPILED[0][0] is not models:
    _COMPILED[:] = [(models, solo_step(config, models))]
  return _COMPILED[0][1](_copy(state), batch)


def test_noise_period_repeats_the_noise_of_the_first_epoch():
  """With noise_period P, step P draws step 0's noise: from the same state and batch the
  two steps are bit-identical; without it they differ."""
  for period, same in ((5, True), (0, False)):
    config, models, state = _setup(**{'train.noise_period': period})
    later = state.replace(step=jnp.asarray(5, jnp.int32))
    a, _ = _one_step(config, models, state, _batch(0))
    b, _ = _one_step(config, models, later, _batch(0))
    equal = all(np.array_equal(x, y) for x, y in
                zip(jax.tree.leaves(a.gen.params), jax.tree.leaves(b.gen.params)))
    assert equal == same, f'noise_period={period}'
  # Step P + 1 repeats step 1, not step 0.
  config, models, state = _setup(**{'train.noise_period': 5})
  a, _ = _one_step(config, models, state.replace(step=jnp.asarray(1, jnp.int32)), _batch(0))
  b, _ = _one_step(config, models, state.replace(step=jnp.asarray(6, jnp.int32)), _batch(0))
  chex.assert_trees_all_equal(a.gen.params, b.gen.params)


def _mmd_of_d_step_fake(config, models, state, new_state, batch):
  """MMD^2 between the updated D's features of the real batch and of the fake batch the
  D step of `state`'s step drew (its keys rebuilt by hand from the step's key schedule)."""
  k_d, _ = jax.random.split(jax.random.fold_in(systems.train_key(config), state.step))
  k_fake = jax.random.split(jax.random.fold_in(k_d, 0), 3)[0]
  k_z, _ = jax.random.split(k_fake)
  z = steps.latent(k_z, 16, config.model.latent_dim, config.model.noise)
  fake, _ = steps.generate(models.gen, state.gen.params, state.gen.batch_stats, z)
  real = steps.to_unit_range(batch['images'][-1])
  ro, fo, _ = steps.disc_pair(models.disc, new_state.disc.params, new_state.disc.batch_stats,
                              real, fake, mode='grouped', rngs={})
  return float(kernels.mmd2(fo['features'], ro['features'], config.train.mmd_sigmas,
                            config.train.mmd_estimator))


def test_mmd_fake_d_step_scores_the_d_steps_fake_batch():
  batch = _batch(0)
  config, models, state = _setup(**{'train.mmd_fake': 'd_step'})
  new, m = _one_step(config, models, state, batch)
  np.testing.assert_allclose(float(m['mmd2']), _mmd_of_d_step_fake(config, models, state, new, batch),
                             rtol=1e-4)
  # The default scores G's own fresh batch: another number.
  config, models, state = _setup()
  new, m = _one_step(config, models, state, batch)
  assert abs(float(m['mmd2']) - _mmd_of_d_step_fake(config, models, state, new, batch)) > 1e-4


def test_mmd_fake_d_step_still_trains_g_through_the_mmd_term():
  """The D step's batch is regenerated by G inside its loss: eta changes G's update."""
  out = {}
  for eta in (0.0, 10.0):
    config, models, state = _setup(**{'train.mmd_fake': 'd_step', 'train.eta': eta})
    out[eta], _ = _one_step(config, models, state, _batch(0))
  assert not np.allclose(out[0.0].gen.params['Dense_0']['kernel'],
                         out[10.0].gen.params['Dense_0']['kernel'])


def test_literal_seed000_config_sets_all_four_options():
  from jaxgan.config_util import load_config_file  # pylint: disable=g-import-not-at-top
  from tests.conftest import REPO  # pylint: disable=g-import-not-at-top
  t = load_config_file(REPO / 'configs' / 'mmd_dcgan_seed000.py').train
  assert (t.g_loss, t.mmd_fake, t.noise_period, t.mmd_estimator) == (
      'minimax', 'd_step', 600, 'seed000')
