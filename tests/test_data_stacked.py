"""Stacked MNIST: the builder (jaxgan/data/stacked.py), its mode metric and a tiny run."""
import json
import math

import numpy as np
import pytest

from tests.conftest import REPO

from jaxgan import evaluate
from jaxgan.config_util import load_config_file, set_field
from jaxgan.data import idx
from jaxgan.data import registry
from jaxgan.data import stacked
from jaxgan.errors import UserError
from jaxgan.metrics import stacked_mnist
from jaxgan.metrics.classifier import SHIPPED_SHA256

# Digit frequencies of a deliberately uneven source (sums to 60): each channel of the
# stacked set must follow it, and a mode's frequency is the product of its digits'.
UNEVEN_COUNTS = np.array([3, 4, 5, 6, 7, 8, 9, 6, 7, 5])


def _uneven_source(side=2):
  labels = np.repeat(np.arange(10), UNEVEN_COUNTS)
  # Image i holds i everywhere but one pixel, so every source image is distinct.
  images = np.repeat(np.arange(len(labels), dtype=np.uint8), side * side).reshape(-1, side, side, 1)
  images = images.copy()
  images[:, 0, 0, 0] = 255 - labels
  return images, labels


def _kl_uniform_reference(counts, k=1000):
  """KL(p || uniform over k) in float64, term by term."""
  total = float(sum(counts))
  return sum((c / total) * math.log(k * c / total) for c in counts if c)


# --- Mode ids.


def test_mode_id_of_a_known_triple_and_its_inverse():
  assert stacked.mode_id(3, 1, 4) == 314
  assert tuple(int(d) for d in stacked.mode_digits(314)) == (3, 1, 4)
  assert stacked.mode_id(0, 0, 7) == 7 and stacked.mode_id(9, 9, 9) == 999
  every = np.arange(1000)
  np.testing.assert_array_equal(stacked.mode_id(*stacked.mode_digits(every)), every)
  assert stacked.CLASS_NAMES[314] == '314' and stacked.CLASS_NAMES[7] == '007'


# --- The builder.


def test_channel_k_is_the_kth_source_image_of_its_triple():
  rng = np.random.default_rng(1)
  images = rng.integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)   # distinct with certainty
  labels = rng.integers(0, 10, 40)
  out, modes = stacked.make_stacked_mnist(images, labels, 300, seed=5)
  assert out.shape == (300, 28, 28, 3) and out.dtype == np.uint8 and modes.dtype == np.int32
  flat = images.reshape(40, -1)
  for i in range(300):
    digits = []
    for c in range(3):
      match = np.flatnonzero((flat == out[i, ..., c].reshape(-1)).all(axis=1))
      assert len(match) == 1, (i, c)
      digits.append(labels[match[0]])
    assert modes[i] == 100 * digits[0] + 10 * digits[1] + digits[2]


def test_same_seed_same_set_and_fewer_images_give_a_prefix():
  images, labels = _uneven_source()
  a, ma = stacked.make_stacked_mnist(images, labels, 500, seed=3)
  b, mb = stacked.make_stacked_mnist(images, labels, 500, seed=3)
  c, mc = stacked.make_stacked_mnist(images, labels, 37, seed=3)
  d, _ = stacked.make_stacked_mnist(images, labels, 500, seed=4)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(ma, mb)
  np.testing.assert_array_equal(a[:37], c)
  np.testing.assert_array_equal(ma[:37], mc)
  assert (a != d).any()


def test_triples_are_independent_uniform_draws():
  images, labels = _uneven_source()
  n = 100_000
  _, modes = stacked.make_stacked_mnist(images, labels, n, seed=0)
  p = UNEVEN_COUNTS / UNEVEN_COUNTS.sum()
  # Each channel's digits follow the source's digit frequencies (std ~0.0015 at n=1e5).
  for c, digits in enumerate(stacked.mode_digits(modes)):
    np.testing.assert_allclose(np.bincount(digits, minlength=10) / n, p, atol=0.006, err_msg=c)
  # Modes: chi-square against the product of the marginals, 999 degrees of freedom
  # (mean 999, sd 44.7); 6 sd either side is a bound a wrong draw (e.g. one source index
  # for all channels, or a fixed stride) breaks by far.
  expected = n * np.einsum('a,b,c->abc', p, p, p).reshape(-1)
  observed = np.bincount(modes, minlength=1000)
  chi2 = float(((observed - expected) ** 2 / expected).sum())
  assert 999 - 6 * 44.7 < chi2 < 999 + 6 * 44.7, chi2


def test_bad_fields_are_one_line_user_errors():
  base = {'name': 'stacked_mnist', 'dir': '/nonexistent'}
  for key, value in (('stacked_size', 0), ('stacked_size', -5), ('stacked_size', 2.5),
                     ('stacked_seed', -1), ('stacked_seed', 'a')):
    with pytest.raises(UserError, match=f'data.{key} must be an integer') as err:
      registry.load_images({**base, key: value})
    assert '\n' not in str(err.value)
  with pytest.raises(UserError, match='stacked_mnist has 3 channels'):
    registry.load_images({**base, 'channels': 1})
  with pytest.raises(UserError, match='expects images'):
    stacked.make_stacked_mnist(np.zeros((4, 28, 28, 3), np.uint8), np.zeros(4), 2)


def test_registry_builds_from_the_mnist_split(data_dir):
  d = {'name': 'stacked_mnist', 'dir': str(data_dir / 'mnist'), 'limit': 500, 'stacked_seed': 2}
  ds = registry.load_images(d)
  assert ds.images.shape == (500, 28, 28, 3) and ds.images.dtype == np.uint8
  assert ds.num_classes == 1000 and len(ds.class_names) == 1000 and ds.name == 'stacked_mnist'
  train_images, train_labels = idx.load_dataset('mnist', 'train', data_dir / 'mnist')
  want, want_modes = stacked.make_stacked_mnist(train_images, train_labels, 500, seed=2)
  np.testing.assert_array_equal(ds.images, want)
  np.testing.assert_array_equal(ds.labels, want_modes)
  # data.limit is a prefix of the whole set (here of stacked_size = 800).
  full = registry.load_images({**d, 'limit': None, 'stacked_size': 800})
  assert len(full) == 800
  np.testing.assert_array_equal(full.images[:500], ds.images)
  test_images, test_labels = idx.load_dataset('mnist', 'test', data_dir / 'mnist')
  ref = registry.load_images(d, 'test')
  np.testing.assert_array_equal(
      ref.images, stacked.make_stacked_mnist(test_images, test_labels, 500, seed=2)[0])


# --- The counting function.


def _triples(modes):
  return np.stack(stacked.mode_digits(np.asarray(modes)), axis=1)


def test_metric_counts_modes_and_kl_against_a_float64_reference():
  uniform = stacked_mnist.stacked_mnist_metric(_triples(np.tile(np.arange(1000), 26)))
  assert uniform['modes'] == 1000 and uniform['num_samples'] == 26_000
  assert uniform['kl_to_uniform'] == pytest.approx(0.0, abs=1e-12)
  one = stacked_mnist.stacked_mnist_metric(_triples([314] * 500))
  assert one['modes'] == 1 and one['histogram'][314] == 500
  assert one['kl_to_uniform'] == pytest.approx(math.log(1000), rel=1e-12)
  rng = np.random.default_rng(0)
  for k in (2, 17, 640):
    present = rng.choice(1000, k, replace=False)
    modes = np.concatenate([present, rng.choice(present, 3000)])   # every chosen mode at least once
    got = stacked_mnist.stacked_mnist_metric(_triples(modes))
    counts = np.bincount(modes, minlength=1000)
    assert got['modes'] == k
    assert got['histogram'] == counts.tolist()
    assert got['kl_to_uniform'] == pytest.approx(_kl_uniform_reference(counts.tolist()), rel=1e-12)


def _digit_classifier():
  """A stand-in MNIST classifier: reads the digit d off an image filled with -1 + 2d/9."""
  centers = -1.0 + 2.0 * np.arange(10) / 9.0

  def apply_fn(params, x):
    m = x.mean(axis=(1, 2, 3))[:, None]
    return -100.0 * (m - centers) ** 2, m
  return evaluate.FeatureNet('classifier', apply_fn, {}, evaluate.to_classifier_input, {}, 64)


def test_stacked_modes_classifies_each_channel_in_order():
  modes = [314] * 5 + [413] * 3 + [9] * 2
  digits = _triples(modes)
  images = np.broadcast_to((-1.0 + 2.0 * digits / 9.0)[:, None, None, :], (10, 28, 28, 3))
  got = evaluate.stacked_modes(_digit_classifier(), np.asarray(images, np.float32))
  assert got['modes_covered'] == 3
  assert (got['mode_counts'][314], got['mode_counts'][413], got['mode_counts'][9]) == (5, 3, 2)
  assert got['mode_kl_uniform'] == pytest.approx(_kl_uniform_reference([5, 3, 2]), rel=1e-9)


# --- A tiny run through train.train, the per-epoch monitor and --mode=eval.


def _tiny_stacked_config(data_dir):
  """configs/stacked_mnist.py shrunk; one G update per step only to compile faster."""
  config = load_config_file(REPO / 'configs' / 'stacked_mnist.py')
  for k, v in {'data.dir': str(data_dir / 'mnist'), 'data.batch_size': 16, 'data.limit': 64,
               'model.gen_width': 16, 'model.disc_width': 8, 'model.feature_dim': 4,
               'sample.num': 16, 'log_every_steps': 2, 'train.num_steps': 2,
               'eval.monitor_num': 64,
               'eval.num_samples': 200, 'train.n_gen': 1}.items():
    set_field(config, k, v)
  return config


@pytest.mark.slow
def test_two_steps_then_eval_report_modes(data_dir, tmp_path):
  from jaxgan import train  # pylint: disable=g-import-not-at-top
  config = _tiny_stacked_config(data_dir)   # scored with the MNIST classifier jaxgan ships
  w = tmp_path / 'run'
  train.train(config, str(w))
  epoch = [json.loads(l) for l in (w / 'metrics.jsonl').read_text().splitlines()][-1]
  assert epoch['step'] == 2 and sum(epoch['mode_counts']) == 64
  assert epoch['modes_covered'] == sum(c > 0 for c in epoch['mode_counts'])

  result = evaluate.evaluate(config, str(w))
  assert result == json.loads((w / 'eval' / 'metrics.json').read_text())
  assert result['step'] == 2 and result['dataset'] == 'stacked_mnist'
  counts = result['mode_counts']
  assert len(counts) == 1000 and sum(counts) == 200
  assert result['modes_covered'] == sum(c > 0 for c in counts)
  assert result['mode_kl_uniform'] == pytest.approx(_kl_uniform_reference(counts), rel=1e-9)
  assert 'fid' not in result and 'score' not in result
  p = result['protocol']
  assert p['params_sha256'] == SHIPPED_SHA256['mnist'] and p['dataset'] == 'mnist'
  assert p['is_pinned_classifier']
  assert (p['num_samples'], p['num_modes'], p['published_num_samples']) == (200, 1000, 26_000)
  assert 'KL(p_gen || uniform' in p['kl_direction']
