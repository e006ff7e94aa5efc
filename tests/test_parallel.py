"""Data parallelism (8 CPU devices, 2 processes) and sweeps equal their single-run peers.

Tolerances. A sharded (or vmapped) step sums over the batch in another order than one
device does, so float32 results differ by rounding. Parameters are O(1): after 3 steps
on random data the largest difference measured 1e-7..1.3e-6 (WGAN-GP's penalty adds a
second derivative), so ATOL = 1e-5 leaves 10x headroom. Over more steps on real MNIST,
Adam amplifies rounding: its update is lr * m / sqrt(nu), about +-lr for *any* small
gradient, so an element whose gradient is rounding-sized can move by up to 2 lr per step
either way. Runs of several steps are therefore compared by the largest difference
(<= 2 lr per step) and the *mean* absolute difference: measured 1.4e-6 after 8 steps for a
sweep member against its solo run, and 5.7e-4 for a member with the wrong eta, so
MEAN_ATOL = 1e-5 separates rounding from a real difference by 40x either side.
"""
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.conftest import REPO, tiny_flags
from tests.test_train import assert_one_line_error, run_main

from jaxgan import sweep
from jaxgan.config_util import load_config_file
from jaxgan.errors import UserError

ATOL = 1e-5
MEAN_ATOL = 1e-5
LR = 2e-4  # configs/mmd_dcgan.py's Adam learning rate


def _params(checkpoint_dir: pathlib.Path, step: int):
  tree = ocp.StandardCheckpointer().restore(checkpoint_dir / str(step) / 'default')
  return {'gen': tree['gen']['params'], 'disc': tree['disc']['params']}


def _diff(a, b) -> tuple[float, float]:
  """(max, mean) absolute difference over every parameter of two restored states."""
  d = np.concatenate([np.abs(np.ravel(x) - np.ravel(y))
                      for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))])
  return float(d.max()), float(d.mean())


def _assert_same_run(a, b, steps: int) -> None:
  largest, mean = _diff(a, b)
  assert largest <= 2 * LR * steps and mean < MEAN_ATOL, (largest, mean)


@pytest.mark.slow
def test_sharded_step_equals_one_device_step_on_8_cpu_devices():
  env = dict(os.environ, JAX_NUM_CPU_DEVICES='8')
  proc = subprocess.run([sys.executable, str(REPO / 'tests' / 'sharded_check.py')],
                        capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads(proc.stdout.strip().splitlines()[-1])
  assert set(results) == {'mmd_dcgan', 'vtgan'}
  for name, r in results.items():
    assert r['max_abs_diff'] < ATOL, (name, r)
    for k, v in r['metrics_one'].items():
      assert abs(v - r['metrics_sharded'][k]) <= 1e-4 * max(1.0, abs(v)), (name, k, r)


SMALL = [*tiny_flags(), '--config.data.limit=640', '--config.sample.num=4',
         '--config.eval.monitor=False', '--config.log_every_steps=10']


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path, data_dir):
  steps = ['--config.train.num_steps=20']
  port = 20000 + os.getpid() % 20000
  procs = [subprocess.Popen(
      [sys.executable, str(REPO / 'main.py'), f'--config={REPO / "configs" / "mmd_dcgan.py"}',
       f'--workdir={tmp_path / "two"}', *SMALL, *steps, f'--coordinator=localhost:{port}',
       '--num_processes=2', f'--process_id={i}'],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
      env=dict(os.environ, JAXGAN_DATA_DIR=str(data_dir))) for i in range(2)]
  outs = [p.communicate(timeout=900) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert 'process 1 of 2' in outs[1][1] and '2 device(s)' in outs[0][1]
  one = run_main(tmp_path / 'one', *SMALL, *steps, data_dir=data_dir)
  assert one.returncode == 0, one.stderr[-3000:]
  _assert_same_run(_params(tmp_path / 'two' / 'checkpoints', 20),
                   _params(tmp_path / 'one' / 'checkpoints', 20), 20)
  lines = (tmp_path / 'two' / 'metrics.jsonl').read_text().splitlines()
  assert [json.loads(l)['step'] for l in lines] == [10, 20]   # written once, by process 0


def test_sweep_parsing_and_members():
  config = load_config_file(REPO / 'configs' / 'mmd_dcgan.py')
  config.sweep = 'train.eta=0,10; seed=0,1'
  members = sweep.members(config)
  assert [m.name for m in members] == ['train.eta=0,seed=0', 'train.eta=0,seed=1',
                                       'train.eta=10,seed=0', 'train.eta=10,seed=1']
  assert members[3].config.train.eta == 10.0 and members[3].config.seed == 1
  assert isinstance(members[3].config.seed, int) and members[3].config.sweep == ''
  assert sweep.per_member_data(members)
  config.sweep = 'train.eta=0,5'
  assert not sweep.per_member_data(sweep.members(config))
  for bad, needle in [('model.gen_width=8,16', 'cannot be swept'), ('train.eta', 'field=v1,v2'),
                      ('train.eta=0,0', 'repeats'), ('seed=a,b', 'is not a valid int'),
                      ('train.eta=1;train.eta=2', 'twice')]:
    config.sweep = bad
    with pytest.raises(UserError, match=needle):
      sweep.members(config)


@pytest.mark.slow
def test_sweep_member_equals_solo_run_and_sweep_resumes(tmp_path, data_dir):
  w = tmp_path / 'sweep'
  flags = [*SMALL, '--config.log_every_steps=4', "--config.sweep=train.eta=0,10;seed=0,1"]
  first = run_main(w, *flags, '--config.train.num_steps=4', data_dir=data_dir)
  assert first.returncode == 0, first.stderr[-3000:]
  resumed = run_main(w, *flags, '--config.train.num_steps=8', data_dir=data_dir)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert 'from step 4 to 8' in resumed.stderr
  summary = json.loads((w / 'sweep' / 'summary.json').read_text())
  assert [m['member'] for m in summary['members']] == [
      'train.eta=0,seed=0', 'train.eta=0,seed=1', 'train.eta=10,seed=0', 'train.eta=10,seed=1']
  member = w / 'sweep' / 'train.eta=10,seed=1'
  steps = [json.loads(l)['step'] for l in (member / 'metrics.jsonl').read_text().splitlines()]
  assert steps == [4, 8]                                 # resumed lines start after step 4
  # TensorBoard overlays the members: one run folder each.
  assert sorted(p.name for p in (w / 'tensorboard').iterdir()) == [
      m['member'] for m in summary['members']]
  assert list((w / 'tensorboard' / 'train.eta=10,seed=1').glob('events.out.tfevents.*'))

  solo = run_main(tmp_path / 'solo', *SMALL, '--config.log_every_steps=4', '--config.train.eta=10',
                  '--config.seed=1', '--config.train.num_steps=8', data_dir=data_dir)
  assert solo.returncode == 0, solo.stderr[-3000:]
  # vmap batches the members' convolutions and matmuls together: same maths, other
  # summation order, as for sharding (module docstring).
  _assert_same_run(_params(member / 'checkpoints', 8), _params(tmp_path / 'solo' / 'checkpoints', 8), 8)
  solo_records = [json.loads(l) for l in (tmp_path / 'solo' / 'metrics.jsonl').read_text().splitlines()]
  member_records = [json.loads(l) for l in (member / 'metrics.jsonl').read_text().splitlines()]
  for m, r in zip(member_records, solo_records):  # steps 1-4, then 5-8 (after the resume)
    assert m['step'] == r['step']
    np.testing.assert_allclose([m[k] for k in ('d_loss', 'g_loss', 'mmd2')],
                               [r[k] for k in ('d_loss', 'g_loss', 'mmd2')], rtol=1e-4)


def test_bad_sweep_is_a_one_line_error(tmp_path, data_dir):
  proc = run_main(tmp_path / 'w', *SMALL, '--config.sweep=model.gen_width=8,16',
                  '--config.train.num_steps=2', data_dir=data_dir)
  assert_one_line_error(proc, 'model.gen_width cannot be swept')
  assert not (tmp_path / 'w').exists()


def test_batch_that_does_not_split_over_devices_is_a_one_line_error(tmp_path, data_dir):
  proc = run_main(tmp_path / 'w', *SMALL, '--config.data.batch_size=15',
                  '--config.train.num_steps=2', data_dir=data_dir,
                  env={'JAX_NUM_CPU_DEVICES': '2'})
  assert_one_line_error(proc, 'does not split over 2 devices')
  assert not (tmp_path / 'w').exists()
