"""Virtual batch norm (S9, model.gen_norm='virtual') in the generators of the maxout GAN
(S1, MLP), the MNIST DCGAN (S4-S6, dcgan28) and AC-GAN (S7/S8), built and run the way
training and sampling build and run them (the DCGAN-64 G: tests/test_systems.py)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import steps, systems
from jaxgan import workdir as wd
from jaxgan.errors import UserError
from tests.solo import solo_step
from tests.test_systems import _tiny

# config -> (shape of its data, whether G takes labels, overrides that shrink it).
GENERATORS = {
    'vanilla_gan': ((28, 28, 1), False, {'model.gen_hidden': (32, 32), 'model.maxout_units': 16}),
    'mmd_dcgan': ((28, 28, 1), False, {}),
    'acgan': ((32, 32, 1), True, {'model.gen_width': 16, 'model.disc_width_mult': 0.125}),
}


def _system(name, gen_norm):
  """(config, models, initial state) of the tiny system, built as training builds it."""
  shape, cond, small = GENERATORS[name]
  config = _tiny(name, **small, **{'model.gen_norm': gen_norm})
  systems.validate(config)
  models = systems.build_models(config, shape, 10 if cond else None)
  # Compiled: flax's init run op by op costs this CPU more than compiling it.
  return config, models, jax.jit(lambda: systems.create_state(config, models, shape))()


@pytest.fixture(scope='module', params=sorted(GENERATORS))
def vbn_system(request):
  """Each generator with gen_norm='virtual' after one train step (so VBN's scale and
  shift have moved off their initial values), and the step's metrics."""
  config, models, state = _system(request.param, 'virtual')
  shape, cond, _ = GENERATORS[request.param]
  rng = np.random.default_rng(0)
  batch = {'images': jnp.asarray(rng.integers(0, 256, (1, 8) + shape), jnp.uint8)}
  if cond:
    batch['labels'] = jnp.asarray(rng.integers(0, 10, (1, 8)), jnp.int32)
  return (config, models) + solo_step(config, models)(state, batch)


def _inputs(config, seed, n):
  """G's inputs for n examples: (noise,), or (noise, labels) for a conditional G."""
  k_z, k_y = jax.random.split(jax.random.key(seed))
  z = steps.latent(k_z, n, config.model.latent_dim, config.model.noise)
  if systems.is_conditional(config):
    return z, jax.random.randint(k_y, (n,), 0, config.model.num_classes)
  return (z,)


def test_vbn_row_depends_on_the_reference_batch_and_not_on_its_own_batch(vbn_system):
  """G run as the train step runs it (steps.generate with the run's reference batch)."""
  config, models, state, _ = vbn_system
  run = jax.jit(lambda inputs, ref: steps.generate(
      models.gen, state.gen.params, state.gen.batch_stats, *inputs, ref=ref)[0])
  x = _inputs(config, 0, 4)
  ref = steps.vbn_reference(systems.train_key(config), config.data.batch_size,
                            config.model.latent_dim, config.model.noise,
                            config.model.get('num_classes', 0))
  out = np.asarray(run(x, ref))
  moved = lambda ref: np.max(np.abs(np.asarray(run(x, ref))[0] - out[0]))
  assert moved((_inputs(config, 1, config.data.batch_size)[0],) + ref[1:]) > 1e-3
  if len(ref) == 2:  # the reference pass sees labels too: they alone move the statistics
    assert moved((ref[0], (ref[1] + 1) % config.model.num_classes)) > 1e-3
  others = tuple(v.at[1:].set(w[1:]) for v, w in zip(x, _inputs(config, 1, 4)))
  np.testing.assert_allclose(np.asarray(run(others, ref))[0], out[0], rtol=0, atol=1e-6)


def test_vbn_output_ignores_the_rest_of_its_batch_when_sampling(vbn_system):
  """Salimans et al.'s VBN normalises an example with the reference batch plus the
  example itself (tricks.VirtualBatchNorm): its image depends on no other row."""
  config, models, state, _ = vbn_system
  sampler = systems.make_sampler(config, models)
  x = _inputs(config, 0, 5)
  # Rows 1..4 get other noise (and labels): row 0 alone is the same.
  changed = tuple(v.at[1:].set(w[1:]) for v, w in zip(x, _inputs(config, 1, 5)))
  a, b = np.asarray(sampler(state, x)), np.asarray(sampler(state, changed))
  assert np.all(np.isfinite(a)) and a.shape[0] == 5
  assert np.max(np.abs(a[1:] - b[1:])) > 1e-3   # the other rows did change
  np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-6)


def test_one_train_step_with_vbn_is_finite(vbn_system):
  config, models, state, metrics = vbn_system
  assert steps.uses_vbn(models.gen) and int(state.step) == 1
  assert np.isfinite(float(metrics['d_loss'])) and np.isfinite(float(metrics['g_loss']))
  assert 'VirtualBatchNorm_0' in state.gen.params
  assert not state.gen.batch_stats   # no running averages: VBN has none


def test_mlp_generator_default_is_goodfellows_unnormalised_mlp():
  """gen_norm 'none', the maxout GAN's default, is the G it had before the option:
  three biased Dense layers, ReLU, ReLU, tanh."""
  assert _tiny('vanilla_gan').model.gen_norm == 'none'
  config, models, state = _system('vanilla_gan', 'none')
  p = state.gen.params
  assert {k: set(v) for k, v in p.items()} == {f'Dense_{i}': {'kernel', 'bias'} for i in range(3)}
  z = _inputs(config, 0, 3)[0]
  h = z
  for i in range(3):
    h = h @ p[f'Dense_{i}']['kernel'] + p[f'Dense_{i}']['bias']
    h = jnp.tanh(h) if i == 2 else jax.nn.relu(h)
  out, _ = jax.jit(lambda z: steps.generate(models.gen, p, state.gen.batch_stats, z))(z)
  np.testing.assert_allclose(out, h.reshape(out.shape), rtol=1e-5, atol=1e-6)


def test_mlp_generator_with_batch_norm_couples_the_rows_of_its_batch():
  config, models, state = _system('vanilla_gan', 'batch')
  assert 'bias' not in state.gen.params['Dense_0'] and 'BatchNorm_1' in state.gen.params
  run = jax.jit(lambda z: steps.generate(models.gen, state.gen.params, state.gen.batch_stats, z))
  z = _inputs(config, 0, 5)[0]
  (a, stats), (b, _) = run(z), run(z.at[1:].set(_inputs(config, 1, 5)[0][1:]))
  assert np.all(np.isfinite(a)) and np.max(np.abs(a[0] - b[0])) > 1e-3
  assert not np.allclose(stats['BatchNorm_0']['mean'], state.gen.batch_stats['BatchNorm_0']['mean'])


@pytest.mark.parametrize('name,gen_norm', [('toy2d', 'virtual'), ('mmd_dcgan', 'none'),
                                           ('acgan', 'layer')])
def test_a_gen_norm_the_generator_lacks_is_a_user_error(name, gen_norm):
  config = _tiny(name)
  with config.unlocked():
    config.model.gen_norm = gen_norm
  with pytest.raises(UserError, match=r"model.gen_norm must be one of \[.*\] for model .*, got"):
    systems.validate(config)


def test_runs_made_before_gen_norm_existed_resume_with_batch_norm(tmp_path):
  config = _tiny('mmd_dcgan')
  old = wd.config_to_dict(config)
  del old['model']['gen_norm']
  (tmp_path / 'config.json').write_text(json.dumps(old))
  (tmp_path / 'checkpoints' / '1').mkdir(parents=True)  # else any config may replace it
  wd.check_config(tmp_path, config)
  config.model.gen_norm = 'virtual'
  with pytest.raises(UserError, match='model.gen_norm: <absent> -> virtual'):
    wd.check_config(tmp_path, config)


def test_old_mlp_runs_resume_with_the_unnormalised_generator(tmp_path):
  config = _tiny('vanilla_gan')
  old = wd.config_to_dict(config)
  del old['model']['gen_norm']
  (tmp_path / 'config.json').write_text(json.dumps(old))
  (tmp_path / 'checkpoints' / '1').mkdir(parents=True)  # else any config may replace it
  wd.check_config(tmp_path, config)                    # 'none' is how the MLP trained then
  config.model.gen_norm = 'batch'
  with pytest.raises(UserError, match='model.gen_norm: <absent> -> batch'):
    wd.check_config(tmp_path, config)
