"""Soak: a run killed (SIGKILL) at 20 random moments and stopped (SIGTERM) 5 times, resumed
after each, ends bit for bit where an uninterrupted run does, with every step's metrics
record exactly once. Minutes of wall time, so only on request:

  JAXGAN_SOAK=1 python -m pytest -q tests/test_soak.py
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import chex
import pytest

from jaxgan import systems
from jaxgan.checkpoint import Checkpointer
from tests.conftest import REPO, tiny_config, tiny_flags

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get('JAXGAN_SOAK') != '1',
                       reason='soak test (minutes): run it with JAXGAN_SOAK=1 python -m pytest -q '
                              'tests/test_soak.py'),
]

SHAPE = (28, 28, 1)
STEPS = 160
# 128 images of 16: 8 steps an epoch (a checkpoint each), a metrics record every step.
FIELDS = {'data.limit': 128, 'log_every_steps': 1, 'eval.monitor': False,
          'train.num_steps': STEPS}
KILLS, STOPS = 20, 5


def _start(workdir, log):
  cmd = [sys.executable, str(REPO / 'main.py'), f'--config={REPO / "configs" / "mmd_dcgan.py"}',
         f'--workdir={workdir}', *tiny_flags(**FIELDS)]
  # Without the suite's compilation cache: every run compiles as long as the first, which
  # the signal delays are measured on. With it, a resumed run compiled in a moment and
  # finished all 160 steps before most signals arrived.
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(('JAX_COMPILATION_CACHE', 'JAX_PERSISTENT_CACHE'))}
  return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, cwd=REPO, env=env)


def _run(workdir, log_path, sig=None, delay=None, after_start=False):
  """Runs main.py; with `sig`, sends it `delay` seconds after the process starts (or after
  it logs that training starts). Returns (returncode, stderr, seconds to the training
  line, seconds to the first step's line, total seconds); None where never logged."""
  with open(log_path, 'w') as log:
    t0 = time.monotonic()
    proc = _start(workdir, log)
    started = first_step = None
    try:
      while proc.poll() is None:
        text = log_path.read_text() if started is None or first_step is None else ''
        if started is None and '] training ' in text:
          started = time.monotonic() - t0
        if first_step is None and '] step ' in text:
          first_step = time.monotonic() - t0
        ref = started if after_start else 0.0
        if sig is not None and ref is not None and time.monotonic() - t0 >= ref + delay:
          proc.send_signal(sig)
          sig = None
        time.sleep(0.02)
    finally:
      if proc.poll() is None:
        proc.kill()
      proc.wait()
  return proc.returncode, log_path.read_text(), started, first_step, time.monotonic() - t0


def _final(workdir):
  config = tiny_config(**FIELDS)
  models = systems.build_models(config, SHAPE)
  ckpt = Checkpointer(workdir / 'checkpoints')
  try:
    return ckpt.restore(systems.create_state(config, models, SHAPE))
  finally:
    ckpt.close()


def _steps(workdir):
  path = workdir / 'metrics.jsonl'
  return [json.loads(l)['step'] for l in path.read_text().splitlines()] if path.exists() else []


def test_killed_and_stopped_runs_end_like_an_uninterrupted_one(tmp_path, data_dir):
  rc, err, startup, first_step, total = _run(tmp_path / 'straight', tmp_path / 'straight.log')
  assert rc == 0, err[-3000:]
  compile_s, steps_s = first_step - startup, total - first_step
  rng = random.Random(17)
  w, history = tmp_path / 'soak', []
  for i in range(KILLS):
    # A quarter in start-up (imports, data, restore), the rest from halfway through the
    # first compile to 1/15 of the steps' time past it: in a compile, a step, a save, a
    # metrics write.
    in_startup = i % 4 == 0
    delay = (rng.uniform(0.3, 1.0) * startup if in_startup
             else rng.uniform(0.5 * compile_s, compile_s + steps_s / 15))
    rc, err, *_ = _run(w, tmp_path / f'kill{i}.log', signal.SIGKILL, delay,
                       after_start=not in_startup)
    assert rc in (-signal.SIGKILL, 0), (i, rc, err[-3000:])
    history.append(('KILL' + ' at start-up' * in_startup, round(delay, 2), rc, max(_steps(w), default=0)))
  for i in range(STOPS):
    delay = rng.uniform(0.5 * compile_s, compile_s + steps_s / 8)
    rc, err, *_ = _run(w, tmp_path / f'term{i}.log', signal.SIGTERM, delay, after_start=True)
    assert rc in (128 + signal.SIGTERM, 0), (i, rc, err[-3000:])
    assert 'Traceback' not in err, err[-3000:]
    if rc:
      assert err.strip().splitlines()[-1].startswith('stopped at step '), err[-3000:]
    history.append(('TERM', round(delay, 2), rc, max(_steps(w), default=0)))
  rc, err, *_ = _run(w, tmp_path / 'last.log')
  assert rc == 0, err[-3000:]
  print(f'start-up {startup:.1f} s, first compile {compile_s:.1f} s, steps {steps_s:.1f} s; '
        f'(signal, delay s, rc, last record): {history}')
  # A signal that arrives after the run has finished tests nothing: most must interrupt.
  interrupted = sum(rc != 0 for _, _, rc, _ in history)
  assert interrupted >= 0.8 * len(history), (interrupted, history)
  assert _steps(w) == list(range(1, STEPS + 1)) == _steps(tmp_path / 'straight')
  chex.assert_trees_all_equal(_final(w), _final(tmp_path / 'straight'))
  assert int(_final(w).step) == STEPS
