"""What a run may and may not do to a workdir (issue 17): one training run at a time,
no folder but a writable one, no mode moving another's output, no weight that flips a
loss, and an honest word after a non-finite stop."""
import errno
import json
import logging
import os
import pathlib
import socket
import types

import numpy as np
import pytest

from jaxgan import systems, terms, train
from jaxgan import workdir as wd
from jaxgan.errors import UserError
from tests.conftest import tiny_config, tiny_flags
from tests.test_train import assert_one_line_error, read_steps, run_main


def _data_dir() -> pathlib.Path:
  path = os.environ.get('JAXGAN_DATA_DIR')
  if not path or not (pathlib.Path(path) / 'mnist').is_dir():
    pytest.skip('needs real MNIST: set JAXGAN_DATA_DIR to a folder holding mnist/')
  return pathlib.Path(path)


def _config(**overrides):
  """tiny_config over real MNIST: 4 steps, one epoch, so one checkpoint at step 4."""
  _data_dir()
  return tiny_config(**{'train.num_steps': 4, 'eval.monitor': False, **overrides})


class _Warnings(logging.Handler):
  def __init__(self):
    super().__init__(logging.WARNING)
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


def _retried(w: pathlib.Path) -> types.SimpleNamespace:
  """A run that diverged at its first steps, then retried in the same folder with a
  sane learning rate, trained to its checkpoint at step 4. W starts with a lock file
  left by a process that no longer exists; while the retry trains, a second training
  run in W is attempted from inside its sample-grid writer."""
  w.mkdir()
  (w / '.lock').write_text(json.dumps({'pid': 999999, 'host': 'gone', 'started': 'long ago'}))
  out = types.SimpleNamespace(w=w)
  with pytest.raises(train.NonFiniteLoss) as e:
    train.run(_config(**{'optim.learning_rate': 1e6}), w)
  out.diverged = str(e.value)
  out.lock_after_divergence = (w / '.lock').exists()

  write_samples = train._write_samples

  def second_run_meanwhile(*args, **kwargs):
    with pytest.raises(UserError) as busy:
      train.run(_config(), w)
    out.busy = str(busy.value)
    return write_samples(*args, **kwargs)

  warnings = _Warnings()
  logging.getLogger('absl').addHandler(warnings)
  try:
    with pytest.MonkeyPatch.context() as m:
      m.setattr(train, '_write_samples', second_run_meanwhile)
      train.run(_config(), w)
  finally:
    logging.getLogger('absl').removeHandler(warnings)
  out.warnings = warnings.messages
  return out


# 3. One writer per workdir.

def test_main_refuses_a_locked_workdir_in_one_line(tmp_path):
  w = tmp_path / 'w'
  w.mkdir()
  with wd.WorkdirLock(w):  # this process plays the run already training in W
    proc = run_main(w, *tiny_flags(), '--config.train.num_steps=2')
  assert_one_line_error(proc, f'{w} is in use', f'pid {os.getpid()} on host {socket.gethostname()}',
                        'another --workdir')
  assert list(w.iterdir()) == []


def test_each_process_of_a_multi_process_run_locks_its_own_file(tmp_path):
  with wd.WorkdirLock(tmp_path, 0), wd.WorkdirLock(tmp_path, 1):
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.lock', '.lock.1']
    with pytest.raises(UserError, match='is in use'):
      wd.WorkdirLock(tmp_path, 1).acquire()


# 4 and 6. The folder itself.

def test_empty_workdir_is_refused(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(UserError, match='--workdir is empty'):
    train.run(_config(), '')
  assert list(tmp_path.iterdir()) == []


def test_main_refuses_a_workdir_that_is_a_file_in_one_line(tmp_path):
  f = tmp_path / 'notes.txt'
  f.write_text('keep me')
  proc = run_main(f, *tiny_flags(), '--config.train.num_steps=2')
  assert_one_line_error(proc, f'--workdir {f} is a file, not a folder')
  assert f.read_text() == 'keep me'


@pytest.mark.parametrize('mode', ['train', 'sample', 'eval'])
def test_workdir_that_is_a_file_or_under_one(tmp_path, mode):
  f = tmp_path / 'notes.txt'
  f.write_text('keep me')
  with pytest.raises(UserError, match='is a file, not a folder'):
    train.run(_config(), f, mode)
  with pytest.raises(UserError, match=f'cannot create --workdir {f}/run: {f} is a file'):
    train.run(_config(), f / 'run', 'train')
  assert f.read_text() == 'keep me'


def test_unwritable_workdir_is_refused_before_any_work(tmp_path, monkeypatch):
  """A read-only mount: the probe's write fails with EROFS (as it does there), for a
  new run, a rerun and --mode=sample (of a run the checks stop before they open)."""
  def read_only(folder):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))

  monkeypatch.setattr(wd, '_probe_write', read_only)
  new = tmp_path / 'runs' / 'w'
  with pytest.raises(UserError, match=rf'cannot write to {tmp_path} \(read-only file system\): '
                     f'{new} would be created there; training writes'):
    train.run(_config(), new)
  assert list(tmp_path.iterdir()) == []
  old = tmp_path / 'old'
  (old / 'checkpoints' / '4').mkdir(parents=True)
  wd.save_config(old, _config())
  for mode, writes in (('train', 'training writes'), ('sample', '--mode=sample writes samples.npz')):
    with pytest.raises(UserError, match=rf'cannot write to {old} \(read-only file system\): '
                       f'{writes}') as e:
      train.run(_config(), old, mode)
    assert '\n' not in str(e.value)
  assert sorted(p.name for p in old.iterdir()) == ['checkpoints', 'config.json']


def test_workdir_without_write_permission(tmp_path):
  w = tmp_path / 'w'
  w.mkdir()
  w.chmod(0o555)
  try:
    if os.access(w, os.W_OK):
      pytest.skip('running as root: permissions do not stop root writing (the EROFS test '
                  'above covers the message)')
    with pytest.raises(UserError, match=rf'cannot write to {w} \(permission denied\)'):
      train.run(_config(), w)
  finally:
    w.chmod(0o755)


# 7. Values that make the loss mean something else.

WEIGHTS = sorted({t.weight for t in terms.TERMS if t.weight})
BAD = ([(f'train.{f}', -1.0, '[0, inf)') for f in WEIGHTS] + [
    ('train.eta', float('nan'), '[0, inf)'),
    ('train.real_label', 0.0, '(0, 1]'), ('train.real_label', 1.5, '(0, 1]'),
    ('train.class_smoothing', 1.0, '[0, 1)'), ('train.class_smoothing', -0.1, '[0, 1)'),
    ('train.clip', -0.01, '[0, inf)'),
    ('optim.learning_rate', 0.0, '(0, inf)'), ('optim.learning_rate', -2e-4, '(0, inf)'),
    ('train.mmd_sigmas', (1.0, 0.0), '(0, inf)'), ('train.mmd_sigmas', (-1.0,), '(0, inf)'),
])


def test_every_traced_field_has_a_range():
  assert {'adversarial_weight', 'eta', 'feature_matching', 'gp_weight', 'r1_weight'} <= set(WEIGHTS)
  for field in terms.TRACED:
    assert field in WEIGHTS or field in terms.READ_RANGES, field


@pytest.mark.parametrize('field,value,allowed', BAD, ids=[f'{f}={v}' for f, v, _ in BAD])
def test_out_of_range_values_are_refused(field, value, allowed):
  with pytest.raises(UserError) as e:
    systems.validate(tiny_config(**{field: value}))
  message = str(e.value)
  assert field in message and str(value) in message and allowed in message, message
  assert '\n' not in message


def test_range_edges_are_accepted():
  systems.validate(tiny_config(**{'train.real_label': 1.0, 'train.eta': 0.0, 'train.clip': 0.0,
                                  'train.adversarial_weight': 0.0}))
  systems.validate(tiny_config(**{'train.real_label': 0.9, 'train.class_smoothing': 0.1,
                                  'model.num_classes': 10}))


def test_sweep_members_are_range_checked(tmp_path):
  w = tmp_path / 'w'
  with pytest.raises(UserError, match=r'train\.eta must be in \[0, inf\).*got -1\.0'):
    train.train(_config(sweep='train.eta=-1,5'), w)
  assert not w.exists()


def test_run_retried_after_divergence(tmp_path):
  """One scenario, as its two trainings cost most of this file's time: items 3, 5 and 8."""
  r = _retried(tmp_path / 'w')
  w = r.w
  # 8. The non-finite stop says no checkpoint exists; the folder takes the new config.
  assert 'no checkpoint had been written' in r.diverged, r.diverged
  assert 'this --workdir may be reused' in r.diverged and 'kept' not in r.diverged
  assert any('never wrote a checkpoint' in m and 'optim.learning_rate: 1000000.0 -> 0.0002' in m
             for m in r.warnings), r.warnings
  assert json.loads((w / 'config.json').read_text())['optim']['learning_rate'] == 2e-4
  assert wd.checkpoint_steps(w / 'checkpoints') == [4]
  # ... and once a checkpoint exists, the note says so and the config is fixed.
  note = train._checkpoint_note(_config(), w)
  assert 'last good checkpoint (step 4) is kept' in note and 'new --workdir' in note, note
  with pytest.raises(UserError, match='different config'):
    wd.check_config(w, _config(**{'optim.learning_rate': 1e-4}))

  # 3. The stale lock file blocked nothing; each run removed its own lock file; a
  # second training run while the retry trained was refused, naming the holder.
  assert 'non-finite' in r.diverged and not r.lock_after_divergence
  assert not (w / '.lock').exists()
  assert f'pid {os.getpid()} on host {socket.gethostname()}' in r.busy, r.busy
  assert 'is in use' in r.busy and 'another --workdir' in r.busy
  assert read_steps(w) == [2, 4]  # the refused run wrote nothing

  # 5. --mode=sample writes beside training's grids, leaves them, and takes no lock.
  grids = {p.name: p.read_bytes() for p in (w / 'samples').iterdir()}
  assert list(grids) == ['step_0000004.png']
  with wd.WorkdirLock(w):  # a training run holding W does not stop sampling
    train.run(_config(), w, 'sample')
  assert {p.name: p.read_bytes() for p in (w / 'samples').iterdir()} == grids
  assert (w / 'samples.png').stat().st_size > 100
  with np.load(w / 'samples.npz') as f:
    assert int(f['step']) == 4 and f['images'].shape == (16, 28, 28, 1)


def test_a_sweeps_member_checkpoints_fix_its_config(tmp_path):
  """W of a sweep holds no checkpoints/ of its own: its members' count."""
  config = tiny_config(sweep='train.eta=0,5')
  wd.save_config(tmp_path, config)
  other = tiny_config(sweep='train.eta=0,10')
  wd.check_config(tmp_path, other)  # no checkpoint anywhere: accepted
  (tmp_path / 'sweep' / 'train.eta=5' / 'checkpoints' / '4').mkdir(parents=True)
  with pytest.raises(UserError, match=r'different config \(sweep: train.eta=0,5 -> train.eta=0,10\)'):
    wd.check_config(tmp_path, other)
