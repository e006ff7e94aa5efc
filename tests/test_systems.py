"""Every config of the GAN family: a real 20-step run through main.py, and the
schedules, clipping and class losses inside the compiled step."""
import json
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from jaxgan import pipeline, systems
from jaxgan.config_util import load_config_file
from tests.conftest import REPO
from tests.solo import solo_step
from tests.test_train import run_main

# Per config: overrides that shrink the networks and the data (same code paths).
SMALL = {
    'vanilla_gan': ['--config.model.gen_hidden=(32,32)', '--config.model.maxout_units=16',
                    '--config.data.batch_size=16', '--config.data.limit=640'],
    'toy2d': ['--config.data.toy_size=400'],
    'toy2d_pacgan': ['--config.data.toy_size=4000'],
    'dcgan': ['--config.model.ngf=8', '--config.model.ndf=8', '--config.data.batch_size=8',
              '--config.data.limit=320', '--config.sample.num=16'],
    'dcgan_5x5': ['--config.model.ngf=8', '--config.model.ndf=8', '--config.data.batch_size=8',
                  '--config.data.limit=320', '--config.sample.num=16'],
    'mmd_dcgan': ['--config.model.gen_width=16', '--config.model.disc_width=8',
                  '--config.data.batch_size=16', '--config.data.limit=640'],
    'wgan': ['--config.model.gen_width=16', '--config.model.disc_width=8',
             '--config.data.batch_size=16', '--config.data.limit=3200'],
    'wgan_gp': ['--config.model.gen_width=16', '--config.model.disc_width=8',
                '--config.data.batch_size=16', '--config.data.limit=3200'],
    'acgan': ['--config.model.gen_width=32', '--config.model.disc_width_mult=0.125',
              '--config.data.batch_size=16', '--config.data.limit=640', '--config.sample.num=20'],
    'vtgan': ['--config.model.gen_width=32', '--config.model.disc_width_mult=0.125',
              '--config.data.batch_size=16', '--config.data.limit=640', '--config.sample.num=20'],
}


def _check_run(w, proc, steps=20):
  assert proc.returncode == 0, proc.stderr[-3000:]
  records = [json.loads(l) for l in (w / 'metrics.jsonl').read_text().splitlines()]
  assert records[-1]['step'] == steps
  assert all(np.isfinite(r['d_loss']) and np.isfinite(r['g_loss']) for r in records)
  pngs = sorted((w / 'samples').glob('*.png'))
  assert pngs and Image.open(pngs[-1]).size[0] > 50
  return records


@pytest.mark.slow
# dcgan and vtgan run end to end below (image folder, CIFAR-10 batches), and with them
# the networks of dcgan_5x5 (dcgan's, 5x5 kernels) and acgan (vtgan's, without the
# minibatch layer); every config's step is also pinned by tests/test_golden.py. (Suite
# time: these two runs cost ~115 s of CI's ~20-minute budget.)
@pytest.mark.parametrize('name', sorted(set(SMALL) - {'dcgan', 'vtgan', 'dcgan_5x5', 'acgan'}))
def test_every_config_runs_20_steps(tmp_path, name, data_dir):
  w = tmp_path / name
  proc = run_main(w, *SMALL[name], '--config.train.num_steps=20', '--config.log_every_steps=10',
                  config=name, data_dir=data_dir)
  records = _check_run(w, proc)
  if name.startswith('toy2d'):
    assert 'modes_covered' in records[-1] and 0 <= records[-1]['high_quality'] <= 1
  if name in ('acgan', 'vtgan'):
    assert 'd_class' in records[-1] and 'g_class' in records[-1]
  if name == 'wgan_gp':
    assert records[-1]['gp'] >= 0


@pytest.mark.slow
def test_dcgan_on_an_image_folder_the_test_makes(tmp_path):
  folder = tmp_path / 'faces'
  folder.mkdir()
  rng = np.random.default_rng(0)
  for i in range(40):  # images of several sizes and both formats: cropped and resized to 64
    size = (70 + i % 5, 64 + i % 7)
    Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(
        folder / f'{i}.{"png" if i % 2 else "jpg"}')
  w = tmp_path / 'run'
  proc = run_main(w, '--config.data.name=image_folder',
                  f'--config.data.dir={folder}', '--config.model.ngf=8', '--config.model.ndf=8',
                  '--config.data.batch_size=8', '--config.sample.num=16',
                  '--config.train.num_steps=20', '--config.log_every_steps=10', config='dcgan')
  _check_run(w, proc)


@pytest.mark.slow
def test_vtgan_on_cifar10_batches_the_test_writes(tmp_path):
  root = tmp_path / 'data' / 'cifar10' / 'cifar-10-batches-py'
  root.mkdir(parents=True)
  rng = np.random.default_rng(0)
  for f in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
    with open(root / f, 'wb') as fh:
      pickle.dump({b'data': rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                   b'labels': list(rng.integers(0, 10, 20))}, fh)
  w = tmp_path / 'run'
  proc = run_main(w, '--config.data.name=cifar10',
                  '--config.data.pad_to=0', '--config.model.gen_width=32',
                  '--config.model.disc_width_mult=0.125', '--config.data.batch_size=16',
                  '--config.sample.num=20', '--config.train.num_steps=20',
                  '--config.log_every_steps=10', config='vtgan', data_dir=tmp_path / 'data')
  _check_run(w, proc)


# ----------------------------------------------------------------- inside the step


def _tiny(name, **overrides):
  config = load_config_file(REPO / 'configs' / f'{name}.py')
  config.model.update({k: v for k, v in dict(gen_width=16, disc_width=8).items() if k in config.model})
  config.data.batch_size = 8
  for k, v in overrides.items():
    section, field = k.split('.')
    config[section][field] = v
  return config


def _one_step(config, shape=(28, 28, 1), labels=False):
  models = systems.build_models(config, shape, 10 if labels else None)
  state = systems.create_state(config, models, shape)
  n = config.train.n_disc
  rng = np.random.default_rng(0)
  batch = {'images': jnp.asarray(rng.integers(0, 256, (n, 8) + shape), jnp.uint8)}
  if labels:
    batch['labels'] = jnp.asarray(rng.integers(0, 10, (n, 8)), jnp.int32)
  return solo_step(config, models)(state, batch)


def _adam_count(opt_state):
  return int(optax.tree_utils.tree_get(opt_state, 'count'))


@pytest.mark.parametrize('n_disc,n_gen', [(5, 1), (1, 2), (3, 2)])
def test_d_g_schedule_is_counted_exactly(n_disc, n_gen):
  config = _tiny('mmd_dcgan', **{'train.n_disc': n_disc, 'train.n_gen': n_gen, 'train.eta': 0.0})
  state, _ = _one_step(config)
  assert int(state.step) == 1
  assert _adam_count(state.disc.opt_state) == n_disc
  assert _adam_count(state.gen.opt_state) == n_gen


def test_wgan_clipping_keeps_every_critic_weight_in_range():
  config = _tiny('wgan', **{'optim.learning_rate': 0.5})  # large steps push weights out
  state, metrics = _one_step(config)
  leaves = jax.tree.leaves(state.disc.params)
  assert max(float(jnp.max(jnp.abs(l))) for l in leaves) <= config.train.clip + 1e-9
  assert any(float(jnp.max(jnp.abs(l))) == pytest.approx(config.train.clip) for l in leaves)
  assert np.isfinite(float(metrics['d_loss']))


def test_conditional_step_logs_class_losses_and_smoothing_is_validated():
  config = _tiny('acgan', **{'model.gen_width': 32, 'model.disc_width_mult': 0.125})
  state, metrics = _one_step(config, (32, 32, 1), labels=True)
  # At initialisation the class head is near uniform: cross-entropy near log 10 per term.
  assert 1.5 < float(metrics['g_class']) < 3.5 and 3.0 < float(metrics['d_class']) < 7.0
  bad = _tiny('mmd_dcgan', **{'train.class_smoothing': 0.1})
  with pytest.raises(Exception, match='conditional'):
    systems.validate(bad)


def test_pipeline_batches_follow_the_schedule(data_dir):
  config = _tiny('wgan', **{'data.limit': 400, 'data.dir': str(data_dir)})
  ds = pipeline.load_train_data(config)
  batches = pipeline.StepBatches(ds, 8, 0, 5, with_labels=False)
  assert batches.steps_per_epoch == 400 // 8 // 5
  b = batches.get(3)
  assert b['images'].shape == (5, 8, 28, 28, 1)
  # Step 3's D batches are data batches 15..19 of the (seed, epoch) order.
  from jaxgan.data import batch_indices  # pylint: disable=g-import-not-at-top
  np.testing.assert_array_equal(b['images'][2], ds.images[batch_indices(0, 17, 400, 8)])


def test_virtual_batch_norm_makes_each_sample_independent_of_its_batch():
  """With VBN (S9) G normalises every example with the fixed reference batch plus
  itself, so an example's image does not depend on the rest of its batch; with
  BatchNorm in training mode it does."""
  for norm, independent in (('virtual', True), ('batch', False)):
    config = load_config_file(REPO / 'configs' / 'dcgan.py')
    config.model.update(ngf=4, ndf=4, gen_norm=norm)
    config.data.batch_size = 4
    models = systems.build_models(config, (64, 64, 3))
    state = systems.create_state(config, models, (64, 64, 3))
    sampler = systems.make_sampler(config, models)
    z = systems.eval_noise(config, 8)
    a = sampler(state, (z[:4],))
    b = sampler(state, (jnp.concatenate([z[:1], z[4:7]]),))
    assert np.allclose(a[0], b[0], atol=1e-5) == independent, norm


def test_wgan_gp_critic_is_per_example():
  """The gradient penalty differentiates the critic one example at a time, which is only
  the critic's gradient if an example's score does not depend on its batch (LayerNorm)."""
  config = _tiny('wgan_gp')
  models = systems.build_models(config, (28, 28, 1))
  state = systems.create_state(config, models, (28, 28, 1))
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (6, 28, 28, 1)), jnp.float32)
  v = {'params': state.disc.params, 'batch_stats': state.disc.batch_stats}
  apply = jax.jit(lambda x: models.disc.apply(v, x, train=True, mutable=['batch_stats'])[0][0])
  np.testing.assert_allclose(apply(x)[:1], apply(x[:1]), rtol=1e-5, atol=1e-6)
  assert 'LayerNorm_0' in state.disc.params and 'BatchNorm_0' not in state.disc.params
