"""Loss terms on fixed train and test batches (jaxgan/held_out.py, seed 001 section 4.3)."""
import jax
import numpy as np
import pytest

from configs import acgan, mmd_dcgan
from jaxgan import held_out, steps, systems, train, workdir as wd
from jaxgan.config_util import set_field
from tests.conftest import TINY_OVERRIDES


def _tiny_acgan():
  config = acgan.get_config()
  config.model.update(gen_width=32, disc_width_mult=0.25)
  config.data.batch_size = 8
  return config


def _ce64(logits, labels):
  """Mean softmax cross-entropy in float64."""
  z = np.asarray(logits, np.float64)
  z = z - z.max(axis=1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
  return -logp[np.arange(len(labels)), labels].mean()


def test_class_terms_against_a_float64_reference_and_deterministic():
  config = _tiny_acgan()
  shape = (32, 32, 1)
  models = systems.build_models(config, shape, 10)
  state = systems.create_state(config, models, shape)
  images = np.asarray(jax.random.randint(jax.random.key(1), (8, *shape), 0, 256), np.uint8)
  key, run_key = jax.random.key(2), systems.train_key(config)
  fn = held_out.loss_terms(config, models)

  # D's own class predictions on these images (the real half of the same grouped call).
  k_in, _, k_drop = jax.random.split(key, 3)
  z, y = steps.draw_inputs(k_in, 8, systems.schedule_of(config))
  fake, _ = steps.generate(models.gen, state.gen.params, state.gen.batch_stats, z, y)
  ro, fo, _ = steps.disc_pair(models.disc, state.disc.params, state.disc.batch_stats,
                              steps.to_unit_range(images), fake, mode=config.train.disc_batches,
                              rngs={'dropout': k_drop})
  predicted = np.asarray(np.argmax(ro['class_logits'], -1), np.int32)

  out = fn(state, images, predicted, key, run_key)
  assert float(out['d_class_acc']) == 1.0
  np.testing.assert_allclose(float(out['g_class']), _ce64(fo['class_logits'], np.asarray(y)),
                             rtol=1e-5)
  np.testing.assert_allclose(float(out['d_class']),
                             _ce64(ro['class_logits'], predicted) + float(out['g_class']),
                             rtol=1e-5)
  wrong = (predicted + 1) % 10
  assert float(fn(state, images, wrong, key, run_key)['d_class_acc']) == 0.0
  again = fn(state, images, predicted, key, run_key)
  assert {k: float(v) for k, v in again.items()} == {k: float(v) for k, v in out.items()}


@pytest.mark.slow
def test_each_epoch_line_holds_train_and_test_terms(tmp_path, data_dir):
  del data_dir  # read through $JAXGAN_DATA_DIR
  config = mmd_dcgan.get_config()
  for field, value in TINY_OVERRIDES.items():     # 4 steps an epoch of 64 images
    set_field(config, field, value)
  config.train.num_epochs = 1
  config.eval.update(held_out_batches=1, monitor=False)
  train.train(config, str(tmp_path))
  last = wd.read_metrics(tmp_path / 'metrics.jsonl')[-1]
  for split in held_out.SPLITS:
    assert {f'{split}_d_adv', f'{split}_g_adv'} <= set(last)
  assert not any(k.endswith('_d_class') for k in last)   # unconditional: no class terms
  # Different real images, so D's terms differ; G's fake half is normalised alone.
  assert last['train_d_adv'] != last['test_d_adv']
  assert last['train_g_adv'] == last['test_g_adv']
