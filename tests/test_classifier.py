"""The MNIST feature network: shapes, batched inference, a tiny real training run, save/load."""
import json

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.config_util import load_config_file
from jaxgan.data import load_dataset, to_float
from jaxgan.errors import DataError, UserError
from jaxgan import classifier_training
from jaxgan.metrics import classifier

from conftest import REPO


def _small_model():
  return classifier.ClassifierCNN(widths=(4, 8), features=16)


def _images(n, seed=0):
  return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28, 1), dtype=np.uint8)


def test_forward_shapes():
  model = _small_model()
  x = jnp.zeros((3, 28, 28, 1))
  params = model.init(jax.random.key(0), x)['params']
  logits, feats = model.apply({'params': params}, x)
  chex.assert_shape(logits, (3, 10))
  chex.assert_shape(feats, (3, 16))
  assert np.all(np.asarray(feats) >= 0)          # ReLU features


def test_max_pool_2x2_equals_flax_max_pool():
  x = jax.random.normal(jax.random.key(1), (2, 8, 6, 3))
  np.testing.assert_array_equal(classifier.max_pool_2x2(x), nn.max_pool(x, (2, 2), (2, 2)))


def test_classify_equals_unbatched_apply_and_compiles_once():
  model = _small_model()
  params = model.init(jax.random.key(2), jnp.zeros((1, 28, 28, 1)))['params']
  apply_fn = chex.assert_max_traces(classifier.make_apply_fn(model), n=1)
  images = _images(7)
  probs, feats = classifier.classify(apply_fn, params, images, batch_size=3)   # 3 + 3 + 1 padded
  logits, want_feats = model.apply({'params': params}, jnp.asarray(to_float(images)))
  chex.assert_shape(probs, (7, 10))
  np.testing.assert_allclose(probs, jax.nn.softmax(logits), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(feats, want_feats, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
  # Another N with the same batch size reuses the compiled shape (assert_max_traces would fail).
  probs5, _ = classifier.classify(apply_fn, params, images[:5], batch_size=3)
  np.testing.assert_allclose(probs5, probs[:5], rtol=1e-6)


def test_classify_uint8_and_float_inputs_agree():
  model = _small_model()
  params = model.init(jax.random.key(3), jnp.zeros((1, 28, 28, 1)))['params']
  apply_fn = classifier.make_apply_fn(model)
  images = _images(4, seed=1)
  p_u8, f_u8 = classifier.classify(apply_fn, params, images)
  p_f, f_f = classifier.classify(apply_fn, params, to_float(images)[..., 0])   # [N, 28, 28] too
  np.testing.assert_allclose(p_u8, p_f, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(f_u8, f_f, rtol=1e-5, atol=1e-6)
  with pytest.raises(UserError):
    classifier.classify(apply_fn, params, np.zeros((0, 28, 28, 1), np.uint8))


def test_params_sha256_depends_on_values():
  a = {'w': np.ones((2, 3), np.float32), 'b': np.zeros(3, np.float32)}
  b = {'w': np.ones((2, 3), np.float32), 'b': np.full(3, 1e-7, np.float32)}
  assert classifier.params_sha256(a) == classifier.params_sha256(jax.tree.map(jnp.asarray, a))
  assert classifier.params_sha256(a) != classifier.params_sha256(b)


def test_fashion_config_differs_only_in_dataset():
  mnist = load_config_file(REPO / 'configs' / 'mnist_classifier.py')
  fashion = load_config_file(REPO / 'configs' / 'fashion_mnist_classifier.py')
  assert mnist.system == fashion.system == 'classifier'
  assert fashion.data.name == 'fashion_mnist'
  fashion.data.name = 'mnist'
  assert fashion.to_dict() == mnist.to_dict()


def test_tiny_training_run_saves_and_restores(data_dir, tmp_path):
  config = load_config_file(REPO / 'configs' / 'mnist_classifier.py')
  config.data.dir = str(data_dir)
  config.data.limit = 640
  config.data.batch_size = 64
  config.train.num_steps = 6
  info = classifier_training.train_classifier(config, tmp_path)

  assert info['dataset'] == 'mnist' and info['steps'] == 6
  assert 0.0 <= info['test_accuracy'] <= 1.0
  records = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert len(records) == 1 and records[0]['step'] == 6
  assert records[0]['test/accuracy'] == info['test_accuracy']
  assert json.loads((tmp_path / 'classifier.json').read_text()) == info

  apply_fn, params, loaded = classifier.load_classifier(tmp_path)
  assert loaded == info
  assert classifier.params_sha256(params) == info['params_sha256']
  # The restored network reproduces the test accuracy recorded at the end of training.
  from jaxgan.data import load_dataset  # pylint: disable=g-import-not-at-top
  test_x, test_y = load_dataset('mnist', 'test', data_dir)
  got = classifier.accuracy_and_nll(apply_fn, params, test_x, test_y)['accuracy']
  assert got == info['test_accuracy']

  with pytest.raises(UserError, match='already holds'):
    classifier_training.train_classifier(config, tmp_path)

  # A classifier.json that does not belong to the saved parameters is refused.
  tampered = dict(info, params_sha256='0' * 64)
  (tmp_path / 'classifier.json').write_text(json.dumps(tampered))
  with pytest.raises(DataError, match='sha256'):
    classifier.load_classifier(tmp_path / 'classifier.json')


def test_load_classifier_without_a_run_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match='no trained classifier'):
    classifier.load_classifier(tmp_path)


def test_shipped_classifiers_hash_to_the_pinned_values():
  for dataset, pinned in classifier.SHIPPED_SHA256.items():
    _, params, info = classifier.load_shipped(dataset)
    assert classifier.params_sha256(params) == pinned == info['params_sha256']


def test_shipped_mnist_classifier_scores_99_percent_on_the_test_split(data_dir):
  apply_fn, params, _ = classifier.load_shipped('mnist')
  test_x, test_y = load_dataset('mnist', 'test', data_dir)
  acc = classifier.accuracy_and_nll(apply_fn, params, test_x, test_y)['accuracy']
  assert acc >= 0.99, acc
