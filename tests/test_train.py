"""End to end: main.py runs, resumes exactly, and rejects bad input cleanly."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest

from jaxgan import steps, systems, train
from jaxgan.checkpoint import Checkpointer
from jaxgan.errors import UserError
from tests.conftest import REPO, tiny_config, tiny_flags

def run_main(workdir, *flags, config='mmd_dcgan', data_dir=None, env=None):
  """python main.py --config=configs/<config>.py --workdir=<workdir> <flags>."""
  e = dict(os.environ, **(env or {}))
  if data_dir is not None:
    e['JAXGAN_DATA_DIR'] = str(data_dir)
  cmd = [sys.executable, str(REPO / 'main.py'), f'--config={REPO / "configs" / f"{config}.py"}',
         f'--workdir={workdir}', *flags]
  return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=600, cwd=REPO)


def assert_one_line_error(proc, *needles):
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
  for needle in needles:
    assert needle in lines[0], lines[0]


def read_steps(workdir):
  return [json.loads(l)['step'] for l in (workdir / 'metrics.jsonl').read_text().splitlines()]


@pytest.mark.slow
def test_main_trains_writes_outputs_and_resumes(tmp_path, data_dir):
  w = tmp_path / 'run'
  proc = run_main(w, *tiny_flags(), '--config.train.num_steps=6', data_dir=data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert sorted(p.name for p in (w / 'samples').glob('*.png')) == ['step_0000004.png', 'step_0000006.png']
  assert (w / 'loss_curves.png').stat().st_size > 1000
  assert Checkpointer(w / 'checkpoints').latest_step() == 6
  records = [json.loads(l) for l in (w / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records] == [2, 4, 6]
  for r in records:
    for k in ('epoch', 'd_loss', 'g_loss', 'mmd2', 'd_real', 'd_fake', 'g_grad_norm', 'd_grad_norm', 'img_s'):
      assert np.isfinite(r[k]), (k, r)
  # A rerun with a later stop continues at step 6: new lines start after it.
  proc = run_main(w, *tiny_flags(), '--config.train.num_steps=10', data_dir=data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert read_steps(w) == [2, 4, 6, 8, 10]
  assert 'from step 6 to 10' in proc.stderr
  # --mode=sample draws the fixed evaluation noise through the last checkpoint, as many
  # samples as it is asked for (sample.* may differ from the run's config in this mode).
  proc = run_main(w, *tiny_flags(), '--config.train.num_steps=10', '--mode=sample',
                  '--config.sample.num=10000', data_dir=data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with np.load(w / 'samples.npz') as f:
    assert f['images'].shape == (10000, 28, 28, 1) and f['images'].dtype == np.uint8
    assert int(f['step']) == 10 and f['images'].std() > 0
  # In training, sample.num shapes the run's grids: the same override is refused there.
  proc = run_main(w, *tiny_flags(), '--config.train.num_steps=12', '--config.sample.num=10000',
                  data_dir=data_dir)
  assert_one_line_error(proc, 'sample.num')


def _final_state(workdir, config):
  models = systems.build_models(config, (28, 28, 1))
  return Checkpointer(workdir / 'checkpoints').restore(systems.create_state(config, models, (28, 28, 1)))


@pytest.mark.slow
def test_resume_is_bit_exact(tmp_path, data_dir):
  """7 steps straight == 3 steps, stop, resume for 4 (across an epoch boundary)."""
  cfg = lambda n: tiny_config(**{'data.dir': str(data_dir), 'train.num_steps': n})
  train.train(cfg(7), tmp_path / 'straight')
  train.train(cfg(3), tmp_path / 'resumed')
  train.train(cfg(7), tmp_path / 'resumed')
  a, b = _final_state(tmp_path / 'straight', cfg(7)), _final_state(tmp_path / 'resumed', cfg(7))
  assert int(a.step) == int(b.step) == 7
  chex.assert_trees_all_equal(a, b)
  ra = [json.loads(l) for l in (tmp_path / 'straight' / 'metrics.jsonl').read_text().splitlines()]
  rb = [json.loads(l) for l in (tmp_path / 'resumed' / 'metrics.jsonl').read_text().splitlines()]
  # Log intervals after the first full one cover the same steps: identical numbers.
  assert [r['d_loss'] for r in ra if r['step'] > 4] == [r['d_loss'] for r in rb if r['step'] > 4] != []


def test_typo_in_config_override_is_rejected_with_a_suggestion(tmp_path):
  proc = run_main(tmp_path / 'w', '--config.train.etta=5')
  assert_one_line_error(proc, '--config.train.etta', '--config.train.eta')
  proc = run_main(tmp_path / 'w', '--config.no_such_field=1')
  assert_one_line_error(proc, 'no_such_field', 'no such config field')
  assert not (tmp_path / 'w').exists()


def test_missing_data_folder(tmp_path):
  proc = run_main(tmp_path / 'w', data_dir='/nonexistent')
  assert_one_line_error(proc, '/nonexistent/mnist', 'JAXGAN_DATA_DIR')
  assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('damage', ['truncated', 'checksum'])
def test_damaged_train_images_file(tmp_path, data_dir, damage):
  bad = tmp_path / 'data' / 'mnist'
  shutil.copytree(data_dir / 'mnist', bad)
  f = bad / 'train-images-idx3-ubyte.gz'
  raw = f.read_bytes()
  f.write_bytes(raw[:len(raw) // 3] if damage == 'truncated' else raw[:-1] + bytes([raw[-1] ^ 1]))
  proc = run_main(tmp_path / 'w', data_dir=tmp_path / 'data')
  assert_one_line_error(proc, 'train-images-idx3-ubyte.gz',
                        'truncated' if damage == 'truncated' else 'checksum')


def test_workdir_with_another_run_is_not_overwritten(tmp_path, data_dir):
  w = tmp_path / 'w'
  (w / 'checkpoints' / '20').mkdir(parents=True)  # what the other run's config is protecting
  original = json.dumps({'system': 'mmd_dcgan', 'train': {'eta': 5.0}})
  (w / 'config.json').write_text(original)
  proc = run_main(w, *tiny_flags(), '--config.train.num_steps=2', data_dir=data_dir)
  assert_one_line_error(proc, 'different config', 'new --workdir')
  assert (w / 'config.json').read_text() == original
  assert sorted(p.name for p in w.iterdir()) == ['checkpoints', 'config.json']


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data_dir, monkeypatch):
  real_gan_step = steps.gan_step

  def poisoned_gan_step(*args, **kwargs):
    state, metrics = real_gan_step(*args, **kwargs)
    poison = jax.numpy.where(state.step >= 6, jax.numpy.nan, 0.0)
    return state, dict(metrics, g_loss=metrics['g_loss'] + poison)

  monkeypatch.setattr(steps, 'gan_step', poisoned_gan_step)
  w = tmp_path / 'w'
  with pytest.raises(train.NonFiniteLoss, match=r'at step 6.*last good checkpoint \(step 4\) is kept'):
    train.train(tiny_config(**{'data.dir': str(data_dir), 'train.num_steps': 12}), w)
  assert Checkpointer(w / 'checkpoints').latest_step() == 4
  assert max(read_steps(w)) == 4


def test_user_errors_are_one_line():
  with pytest.raises(UserError) as e:
    systems.validate(tiny_config(**{'train.mmd_estimator': 'bogus'}))
  assert '\n' not in str(e.value) and 'unbiased' in str(e.value)
