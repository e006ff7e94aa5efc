"""Damaged checkpoints heal; SIGTERM and SIGINT stop training with a checkpoint (issue 17)."""
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys

import chex
import pytest

from jaxgan import evaluate, systems, train
from jaxgan.checkpoint import Checkpointer
from jaxgan.errors import UserError
from tests.conftest import REPO, tiny_config, tiny_flags
from tests.test_train import read_steps, run_main

SHAPE = (28, 28, 1)
# The per-epoch collapse monitor (eval.*: no part of training) would double each run's time.
FAST = {'eval.monitor': False}


def _data(data_dir):
  return {**FAST, 'data.dir': str(data_dir)}


def _state(workdir, config, step=None):
  models = systems.build_models(config, SHAPE)
  ckpt = Checkpointer(workdir / 'checkpoints')
  try:
    return ckpt.restore(systems.create_state(config, models, SHAPE), step)
  finally:
    ckpt.close()


def _damage(workdir, step, how):
  d = workdir / 'checkpoints' / str(step) / 'default'
  if how == 'truncate':  # the largest array file, cut short
    big = max((d / 'ocdbt.process_0' / 'd').iterdir(), key=lambda p: p.stat().st_size)
    os.truncate(big, big.stat().st_size // 3)
  else:
    (d / '_METADATA').unlink()


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A tiny 12-step run: checkpoints at 4, 8 and 12 (4 steps an epoch, a log line every 2)."""
  path = os.environ.get('JAXGAN_DATA_DIR')
  if not path or not os.path.isdir(os.path.join(path, 'mnist')):
    pytest.skip('needs real MNIST: set JAXGAN_DATA_DIR to a folder holding mnist/')
  w = tmp_path_factory.mktemp('reliability') / 'run'
  train.train(tiny_config(**FAST, **{'data.dir': path, 'train.num_steps': 12}), w)
  return w


@pytest.fixture
def copy_of(trained, tmp_path):
  dest = tmp_path / 'run'
  shutil.copytree(trained, dest)
  return dest


@pytest.mark.slow
def test_truncated_latest_checkpoint_training_falls_back_and_sets_it_aside(trained, copy_of, data_dir):
  _damage(copy_of, 12, 'truncate')
  proc = run_main(copy_of, *tiny_flags(**FAST), '--config.train.num_steps=12', data_dir=data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr
  warned = [l for l in proc.stderr.splitlines() if 'does not restore' in l]
  assert len(warned) == 1, proc.stderr[-3000:]
  assert re.search(r'checkpoints/12 does not restore \(ValueError: .*local file .*\); moved to '
                   r'.*checkpoints_damaged/12-\d{8}T\d{6}; using step 8$', warned[0]), warned[0]
  assert 'from step 8 to 12' in proc.stderr
  # Retrained over steps 9..12: a new, good checkpoint 12; the damaged one kept aside.
  assert Checkpointer(copy_of / 'checkpoints').all_steps() == [4, 8, 12]
  (aside,) = (copy_of / 'checkpoints_damaged').iterdir()
  assert (aside / 'default' / '_METADATA').exists()
  assert read_steps(copy_of) == [2, 4, 6, 8, 10, 12]
  config = tiny_config(**_data(data_dir))
  chex.assert_trees_all_equal(_state(copy_of, config), _state(trained, config))


def test_missing_metadata_falls_back_in_every_mode(trained, copy_of, data_dir, caplog):
  _damage(copy_of, 12, 'metadata')
  config = tiny_config(**_data(data_dir), **{'train.num_steps': 12})
  # eval and sample read through restore_run: step 8, the damaged 12 left in place.
  with caplog.at_level(logging.WARNING):
    _, state, _ = evaluate.restore_run(config, copy_of)
  assert int(state.step) == 8
  warned = [r.getMessage() for r in caplog.records if 'does not restore' in r.getMessage()]
  assert len(warned) == 1 and 'left in place' in warned[0] and 'pytree' in warned[0], warned
  assert Checkpointer(copy_of / 'checkpoints').all_steps() == [4, 8, 12]
  # Training resumes from 8 and ends where the undamaged run did.
  train.train(config, copy_of)
  assert [p.name.split('-')[0] for p in (copy_of / 'checkpoints_damaged').iterdir()] == ['12']
  chex.assert_trees_all_equal(_state(copy_of, config), _state(trained, config))


@pytest.mark.slow
def test_all_checkpoints_damaged_is_one_line_exit_2(copy_of, data_dir):
  for step, how in ((4, 'truncate'), (8, 'metadata'), (12, 'truncate')):
    _damage(copy_of, step, how)
  proc = run_main(copy_of, *tiny_flags(**FAST), '--config.train.num_steps=12', '--mode=sample',
                  data_dir=data_dir)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error: ')]
  assert len(errors) == 1 and 'none of the 3 checkpoint(s)' in errors[0], proc.stderr[-3000:]
  # Training refuses too, and moves nothing: the folder may still be recovered.
  with pytest.raises(UserError, match='none of the 3 checkpoint'):
    train.train(tiny_config(**_data(data_dir), **{'train.num_steps': 12}), copy_of)
  assert Checkpointer(copy_of / 'checkpoints').all_steps() == [4, 8, 12]
  assert not (copy_of / 'checkpoints_damaged').exists()


def signal_main(workdir, sig, *flags):
  """Runs main.py and sends it `sig` as soon as it logs that training starts (the handlers
  are in place by then; the signal lands while the first call compiles or runs, so the
  loop stops after that call). Returns (returncode, stderr)."""
  cmd = [sys.executable, str(REPO / 'main.py'), f'--config={REPO / "configs" / "mmd_dcgan.py"}',
         f'--workdir={workdir}', *flags]
  proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=REPO)
  lines = []
  try:
    for line in proc.stderr:
      lines.append(line)
      if '] training ' in line:
        proc.send_signal(sig)
        break
    lines.extend(proc.stderr)
    proc.wait(timeout=300)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  return proc.returncode, ''.join(lines)


@pytest.mark.slow
@pytest.mark.parametrize('sig,flags,stop,logged', [
    # One step a call, a log line every 2: stops after step 1, mid-epoch, between log lines.
    (signal.SIGTERM, {}, 1, [1, 2, 4, 6, 8, 10, 12]),
    # Calls of 3 steps, log lines every 5: the first call is steps 1-3. Resumed, the calls
    # are 4 (epoch end), 5 (log line), 6-8 (epoch end), then one step each (too few left).
    (signal.SIGINT, {'train.steps_per_call': 3, 'log_every_steps': 5}, 3, [3, 4, 5, 8, 10, 12]),
], ids=['SIGTERM', 'SIGINT'])
def test_signal_stops_with_a_checkpoint_and_resumes_exactly(trained, tmp_path, data_dir, sig,
                                                            flags, stop, logged):
  fields = {**FAST, **flags, 'data.dir': str(data_dir), 'train.num_steps': 12}
  w = tmp_path / 'run'
  rc, err = signal_main(w, sig, *tiny_flags(**fields))
  assert rc == 128 + sig, err[-3000:]
  assert 'Traceback' not in err and 'KeyboardInterrupt' not in err, err[-3000:]
  assert err.strip().splitlines()[-1] == (
      f'stopped at step {stop} on {sig.name}; rerun the same command to resume'), err[-3000:]
  assert Checkpointer(w / 'checkpoints').all_steps() == [stop]
  # The steps since the last log line, flushed as a record of the stopped step.
  (record,) = [json.loads(l) for l in (w / 'metrics.jsonl').read_text().splitlines()]
  assert record['step'] == stop and record['stopped'] == sig.name
  # Resumed in-process: the run's end is the uninterrupted run's, bit for bit, and the
  # previous signal handlers are back afterwards.
  before = signal.getsignal(sig)
  train.train(tiny_config(**fields), w)
  assert signal.getsignal(sig) is before
  config = tiny_config(**fields)
  chex.assert_trees_all_equal(_state(w, config), _state(trained, config))
  assert read_steps(w) == logged
