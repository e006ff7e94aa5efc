"""--mode=eval (W/eval/metrics.json) and the per-epoch collapse monitor in metrics.jsonl."""
import json
import os
import pathlib

import numpy as np
import pytest

from tests.conftest import REPO, tiny_flags
from tests.test_train import assert_one_line_error, run_main

from jaxgan import evaluate
from jaxgan.config_util import load_config_file


@pytest.fixture(scope='module')
def tiny_classifier(tmp_path_factory) -> pathlib.Path:
  """A barely trained MNIST classifier (6 steps): the pipeline, not its accuracy, is tested."""
  data = os.environ.get('JAXGAN_DATA_DIR')
  if not data or not (pathlib.Path(data) / 'mnist').is_dir():
    pytest.skip('needs real MNIST: set JAXGAN_DATA_DIR to a folder holding mnist/ (e.g. ../shared/data)')
  from jaxgan import classifier_training  # pylint: disable=g-import-not-at-top
  config = load_config_file(REPO / 'configs' / 'mnist_classifier.py')
  config.data.dir = str(pathlib.Path(data) / 'mnist')
  config.data.limit = 640
  config.data.batch_size = 64
  config.train.num_steps = 6
  path = tmp_path_factory.mktemp('classifier')
  classifier_training.train_classifier(config, path)
  return path


def test_to_classifier_input_crops_padding_and_resizes():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (3, 28, 28, 1)).astype(np.float32)
  padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1.0)
  np.testing.assert_array_equal(evaluate.to_classifier_input(padded, pad_to=32), x)
  np.testing.assert_array_equal(evaluate.to_classifier_input(x), x)
  # A constant image stays constant under the (antialiased) resize from 64.
  big = np.full((2, 64, 64, 1), 0.25, np.float32)
  np.testing.assert_allclose(evaluate.to_classifier_input(big), np.full((2, 28, 28, 1), 0.25), atol=1e-6)


def test_classifier_dir_lookup_order(monkeypatch, tmp_path):
  config = load_config_file(REPO / 'configs' / 'mmd_dcgan.py')
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
  monkeypatch.delenv('JAXGAN_CLASSIFIER_DIR', raising=False)
  assert evaluate.classifier_dir(config) is None           # the classifier jaxgan ships
  config.data.name = 'emnist'                              # no shipped one: the cache
  assert evaluate.classifier_dir(config) == tmp_path / 'cache' / 'jaxgan' / 'classifiers' / 'emnist'
  config.data.name = 'mnist'
  monkeypatch.setenv('JAXGAN_CLASSIFIER_DIR', str(tmp_path / 'env'))
  assert evaluate.classifier_dir(config) == tmp_path / 'env' / 'mnist'
  config.eval.classifier_dir = str(tmp_path / 'given')
  assert evaluate.classifier_dir(config) == tmp_path / 'given'
  config.data.name = 'mnist64'  # scored with the MNIST classifier
  config.eval.classifier_dir = None
  assert evaluate.classifier_dir(config) == tmp_path / 'env' / 'mnist'


MONITOR_FLAGS = [*tiny_flags(), '--config.train.num_epochs=2', '--config.eval.monitor_num=50']


@pytest.fixture(scope='module')
def monitored_run(tmp_path_factory, tiny_classifier) -> tuple[pathlib.Path, list]:
  """A 2-epoch tiny run with the collapse monitor on: (workdir, main.py flags)."""
  data = pathlib.Path(os.environ['JAXGAN_DATA_DIR'])
  w = tmp_path_factory.mktemp('monitored') / 'run'
  flags = [*MONITOR_FLAGS, f'--config.eval.classifier_dir={tiny_classifier}']
  proc = run_main(w, *flags, data_dir=data)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return w, flags


@pytest.mark.slow
def test_monitor_lines_then_eval_writes_metrics_json(monitored_run, data_dir, tiny_classifier):
  w, flags = monitored_run
  records = [json.loads(l) for l in (w / 'metrics.jsonl').read_text().splitlines()]
  monitored = [r for r in records if 'class_histogram' in r]
  assert [r['epoch'] for r in monitored] == [1.0, 2.0]       # one line per epoch
  for r in monitored:
    assert len(r['class_histogram']) == 10 and sum(r['class_histogram']) == 50
    assert r['classes_covered'] == sum(c > 0 for c in r['class_histogram'])
    assert 0.0 <= r['class_kl_uniform'] <= np.log(10) + 1e-9

  proc = run_main(w, *flags, '--mode=eval', '--config.eval.num_samples=200',
                  '--config.eval.reference_num=300', '--config.eval.kid_subset_size=100',
                  '--config.eval.kid_subsets=10', data_dir=data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads((w / 'eval' / 'metrics.json').read_text())
  info = json.loads((tiny_classifier / 'classifier.json').read_text())
  assert result['step'] == 8
  for k in ('score', 'score_std', 'fid', 'kid', 'kid_std', 'class_kl_uniform'):
    assert np.isfinite(result[k]), k
  assert 1.0 <= result['score'] <= 10.0 and result['fid'] >= 0.0
  assert sum(result['class_histogram']) == 200
  p = result['protocol']
  assert p['feature_network'] == 'classifier' and p['params_sha256'] == info['params_sha256']
  assert (p['num_samples'], p['reference_split'], p['reference_num'], p['score_splits']) == (
      200, 'test', 300, 10)
  assert p['kid']['subsets'] == 10 and p['kid']['subset_size'] == 100
  # Training was not touched: no new metrics lines.
  assert len((w / 'metrics.jsonl').read_text().splitlines()) == len(records)


@pytest.mark.slow
def test_eval_without_a_classifier_is_a_one_line_error(monitored_run, data_dir, tmp_path):
  w, _ = monitored_run
  proc = run_main(w, *MONITOR_FLAGS, '--mode=eval', data_dir=data_dir,
                  env={'JAXGAN_CLASSIFIER_DIR': str(tmp_path / 'none')})
  assert_one_line_error(proc, 'no mnist classifier at', 'configs/mnist_classifier.py')


def test_monitor_without_a_classifier_is_off_with_a_warning(tmp_path, monkeypatch, caplog):
  config = load_config_file(REPO / 'configs' / 'mmd_dcgan.py')
  monkeypatch.setenv('JAXGAN_CLASSIFIER_DIR', str(tmp_path / 'none'))
  with caplog.at_level('WARNING'):
    monitor = evaluate.CollapseMonitor(config, (28, 28, 1))
  assert not monitor.active
  assert 'collapse monitor off: no mnist classifier at' in caplog.text
  config.eval.monitor = False  # switched off: no lookup, no warning
  caplog.clear()
  assert not evaluate.CollapseMonitor(config, (28, 28, 1)).active and not caplog.text
  assert not evaluate.CollapseMonitor(config, (32, 32, 3)).active  # RGB: no per-epoch Inception


def test_eval_of_an_empty_workdir_is_a_one_line_error(tmp_path, data_dir):
  proc = run_main(tmp_path / 'nothing', *tiny_flags(), '--mode=eval', data_dir=data_dir)
  assert_one_line_error(proc, 'holds no trained run', '--mode=train')
