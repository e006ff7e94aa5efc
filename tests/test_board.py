"""TensorBoard's own reader loads what a run writes to W/tensorboard/ (jaxgan/board.py)."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from jaxgan import train
from jaxgan.config_util import load_config_file, set_field
from tests.conftest import REPO, tiny_config

event_accumulator = pytest.importorskip(
    'tensorboard.backend.event_processing.event_accumulator',
    reason="needs the tensorboard package (pip install -e '.[test]')")


def _events(logdir):
  acc = event_accumulator.EventAccumulator(
      str(logdir), size_guidance={event_accumulator.IMAGES: 0, event_accumulator.SCALARS: 0,
                                  event_accumulator.HISTOGRAMS: 0})
  acc.Reload()
  return acc


def test_a_20_step_run_writes_its_scalars_sample_grids_and_class_histograms(tmp_path, data_dir):
  w = tmp_path / 'run'
  # 4 steps an epoch, a log line every 2: 10 records and 5 epochs' grids and histograms.
  train.run(tiny_config(**{'train.num_steps': 20, 'eval.monitor_num': 64}), str(w))
  records = [json.loads(l) for l in (w / 'metrics.jsonl').read_text().splitlines()]
  acc = _events(w / 'tensorboard')
  tags = acc.Tags()
  for name in ('d_loss', 'g_loss', 'mmd2', 'img_s', 'classes_covered', 'monitor_score'):
    assert name in tags['scalars'], (name, tags['scalars'])
    logged = [(r['step'], r[name]) for r in records if name in r]
    got = [(e.step, e.value) for e in acc.Scalars(name)]
    assert [s for s, _ in got] == [s for s, _ in logged]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in logged], rtol=1e-6)
  assert [e.step for e in acc.Images('samples')] == [4, 8, 12, 16, 20]
  # The image is the epoch's PNG grid (16 samples of 28x28, 4 x 4 with 2-pixel borders).
  last = acc.Images('samples')[-1]
  shown = np.asarray(Image.open(io.BytesIO(last.encoded_image_string)))
  assert shown.shape[:2] == (4 * 30 + 2, 4 * 30 + 2)
  np.testing.assert_array_equal(shown.reshape(shown.shape[:2] + (-1,))[..., 0],
                                np.asarray(Image.open(w / 'samples' / 'step_0000020.png')))
  histograms = acc.Histograms('class_histogram')
  assert [h.step for h in histograms] == [4, 8, 12, 16, 20]
  want = [r['class_histogram'] for r in records if 'class_histogram' in r]
  for h, counts in zip(histograms, want):
    assert h.histogram_value.num == sum(counts) == 64
    assert list(h.histogram_value.bucket) == counts


def test_2d_runs_show_their_scatter_plots_and_mode_counts(tmp_path):
  config = load_config_file(REPO / 'configs' / 'toy2d.py')
  for k, v in {'data.toy_size': 40, 'train.num_steps': 8, 'log_every_steps': 4}.items():
    set_field(config, k, v)
  w = tmp_path / 'toy'
  train.run(config, str(w))
  acc = _events(w / 'tensorboard')
  assert [e.step for e in acc.Images('samples')] == [4, 8]
  assert [h.step for h in acc.Histograms('mode_counts')] == [4, 8]
  assert 'modes_covered' in acc.Tags()['scalars']


def test_off_by_config(tmp_path):
  config = load_config_file(REPO / 'configs' / 'toy2d.py')
  for k, v in {'data.toy_size': 40, 'train.num_steps': 4, 'tensorboard': False}.items():
    set_field(config, k, v)
  train.run(config, str(tmp_path / 'w'))
  assert (tmp_path / 'w' / 'metrics.jsonl').exists()
  assert not (tmp_path / 'w' / 'tensorboard').exists()


def test_a_resumed_run_hides_what_the_interrupted_run_wrote_past_its_checkpoint(tmp_path):
  from jaxgan import board  # pylint: disable=g-import-not-at-top
  first = board.Board(tmp_path, resume_step=0)
  for step in range(1, 6):          # killed after step 5, its last checkpoint at step 2
    first.record({'step': step, 'd_loss': float(step)})
  first.close()
  resumed = board.Board(tmp_path, resume_step=2)
  for step in (3, 4):
    resumed.record({'step': step, 'd_loss': 10.0 * step})
  resumed.close()
  got = [(e.step, e.value) for e in _events(tmp_path).Scalars('d_loss')]
  assert got == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
