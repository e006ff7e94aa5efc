"""The benchmark machinery (benchmarks/run.py, step_speed.py, flops.py) end to end on a
shrunken case, without torch. No timing assertions: only that every number is produced
and lands in the JSON and the markdown table."""
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / 'benchmarks'
sys.path.insert(0, str(BENCH))

import flops  # pylint: disable=g-import-not-at-top,wrong-import-position
import run  # pylint: disable=g-import-not-at-top,wrong-import-position
import step_speed  # pylint: disable=g-import-not-at-top,wrong-import-position

# The MNIST MMD case shrunk through the --set hook (the same code path, milliseconds a step).
TINY = ['--set', 'model.gen_width=16', '--set', 'model.disc_width=8',
        '--set', 'model.feature_dim=4', '--set', 'data.batch_size=8']
RESULT_KEYS = {
    'case', 'jaxgan_img_s', 'jaxgan_ms_step', 'compile_s', 'step_gflop', 'flops_source',
    'gflop_s', 'matmul_peak_gflop_s', 'matmul_peak', 'pct_peak', 'torch_eager_img_s',
    'torch_compile_img_s', 'torch_eager_note', 'torch_compile_note', 'ratio',
    'ratio_vs_best_torch', 'device', 'jax', 'dtype', 'images_per_step', 'rounds'}


def test_run_writes_json_and_markdown_and_skips_what_cannot_run(tmp_path, capsys):
  report = run.main(['--cases', 'mnist_mmd_b100,no_such_case,sweep8', '--no-torch',
                     '--steps', '1', '--rounds', '1', '--peak-size', '128',
                     '--out', str(tmp_path), '--tag', 'test'] + TINY)
  files = sorted(p.name for p in tmp_path.iterdir())
  assert len(files) == 2 and files[0].endswith('-test.json') and files[1].endswith('-test.md')
  saved = json.loads((tmp_path / files[0]).read_text())
  assert saved['cases'].keys() == {'mnist_mmd_b100', 'sweep8'} == report['cases'].keys()
  res = saved['cases']['mnist_mmd_b100']
  assert RESULT_KEYS <= res.keys()
  assert res['images_per_step'] == 8 and res['dtype'] == 'float32'
  assert res['overrides']['model.gen_width'] == 16
  for key in ('jaxgan_img_s', 'jaxgan_ms_step', 'compile_s', 'step_gflop', 'gflop_s',
              'matmul_peak_gflop_s', 'pct_peak'):
    assert res[key] > 0, key
  assert res['torch_eager_img_s'] is None and 'no-torch' in res['torch_eager_note']
  assert set(saved['skipped']) == {'no_such_case'}
  # The sweep's img/s is the aggregate over its 8 members, each with the same batch.
  assert saved['cases']['sweep8']['images_per_step'] == 8 * 8
  assert saved['cases']['sweep8']['jaxgan_img_s'] > 0

  table = (tmp_path / files[1]).read_text()
  assert '| ' + ' | '.join(run.COLUMNS) + ' |' in table
  row = [l for l in table.splitlines() if l.startswith('| mnist_mmd_b100 |')]
  assert len(row) == 1 and row[0].count('|') == len(run.COLUMNS) + 1
  assert 'no_such_case: skipped' in table
  assert table in capsys.readouterr().out


def test_a_second_report_of_the_day_keeps_the_first(tmp_path, capsys):
  # A profile with --set and one without, same case and day: both must survive.
  step_speed.publish_report(str(tmp_path), 'cpu-2core', 'profile', 'mnist', {'run': 1}, 'one')
  step_speed.publish_report(str(tmp_path), 'cpu-2core', 'profile', 'mnist', {'run': 2}, 'two')
  step_speed.publish_report(str(tmp_path), 'cpu-2core', 'profile', 'mnist', {'run': 3}, 'three')
  runs = {p.name: json.loads(p.read_text())['run'] for p in tmp_path.glob('*.json')}
  stem = min(runs, key=len)[:-len('.json')]
  assert stem.endswith('-cpu-2core-profile-mnist')
  assert runs == {f'{stem}.json': 1, f'{stem}-2.json': 2, f'{stem}-3.json': 3}
  assert (tmp_path / f'{stem}-2.md').read_text() == 'two'
  assert step_speed.unused_stem(tmp_path, 'other') == 'other'


def test_step_speed_reports_an_unavailable_case(capsys, monkeypatch):
  # The 2-D toy GAN's MLPs have no convolutions, so a conv_impl override cannot apply.
  monkeypatch.setitem(step_speed.CASES, 'toy', dict(
      config='configs/toy2d.py', overrides={}, shape=(2,), torch_case=None))
  with pytest.raises(SystemExit) as exit_info:
    step_speed.main(['--case', 'toy', '--json', '--no-torch', '--conv-impl', 'matmul'])
  assert exit_info.value.code == 3
  assert 'skipped' in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_flops_counts_every_scan_iteration():
  """XLA's cost analysis counts a loop body once; xla_flops unrolls scans first."""
  def chain(a, b, n):
    return jax.lax.scan(lambda c, _: (c @ b, None), a, None, length=n)[0]
  args = (jnp.ones((16, 16)), jnp.ones((16, 16)))
  counts = {}
  for n in (1, 5):
    fn = jax.jit(lambda a, b, n=n: chain(a, b, n))
    counts[n], source = flops.xla_flops(fn, fn.lower(*args).compile(), args)
    assert ('unrolled' in source) == (n > 1)
  assert counts[1] == pytest.approx(2 * 16 ** 3, rel=0.01)
  assert counts[5] == pytest.approx(5 * counts[1], rel=0.01)


def test_run_records_a_failing_case_and_still_measures_the_rest(tmp_path, monkeypatch):
  real_measure = step_speed.measure

  def measure(name, opts):
    if name == 'sweep8':
      raise RuntimeError('compiler exploded\nsecond line')
    return real_measure(name, opts)
  monkeypatch.setattr(step_speed, 'measure', measure)
  report = run.main(['--cases', 'sweep8,mnist_mmd_b100', '--no-torch', '--steps', '1',
                     '--rounds', '1', '--peak-size', '128', '--out', str(tmp_path)] + TINY)
  assert list(report['cases']) == ['mnist_mmd_b100']
  assert report['skipped'] == {'sweep8': 'failed: RuntimeError: compiler exploded'}
  saved = json.loads(next(tmp_path.glob('*.json')).read_text())
  assert saved['skipped'] == report['skipped'] and 'mnist_mmd_b100' in saved['cases']


def test_flops_keeps_the_lower_bound_when_unrolling_fails(monkeypatch):
  def chain(a, b):
    return jax.lax.scan(lambda c, _: (c @ b, None), a, None, length=3)[0]
  args = (jnp.ones((16, 16)), jnp.ones((16, 16)))
  fn = jax.jit(chain)
  monkeypatch.setattr(flops, '_unrolled', lambda jaxpr: 1 / 0)
  count, source = flops.xla_flops(fn, fn.lower(*args).compile(), args)
  assert count == pytest.approx(2 * 16 ** 3, rel=0.01)  # the body counted once
  assert 'ZeroDivisionError' in source and 'lower bound' in source


def test_torch_variants_time_every_variant(capsys):
  pytest.importorskip('torch', reason='torch is not installed (pip install torch==2.13.0)')
  if not step_speed.DEFAULT_TORCH_REF.is_file():
    pytest.skip(f'{step_speed.DEFAULT_TORCH_REF} not found (../shared beside the repo)')
  import torch_variants  # pylint: disable=g-import-not-at-top
  out = torch_variants.main(['--cases', 'mnist_mmd_b100', '--steps', '1', '--threads', '2'])
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
  for variant in torch_variants.VARIANTS:
    assert out[variant]['mnist_mmd_b100']['img_s'] > 0, out[variant]
  with pytest.raises(SystemExit, match='unknown variant'):
    torch_variants.main(['--variants', 'fp8'])


def test_profile_step_accounts_for_the_whole_step_by_layer(tmp_path, capsys):
  import profile_step  # pylint: disable=g-import-not-at-top
  report = profile_step.main(['--case', 'mnist_mmd_b100', '--steps', '2', '--out',
                              str(tmp_path)] + TINY)
  jx = report['jaxgan']
  assert report['torch'] is None and '--set' in report['torch_note']
  # Every profiled op lands in one category; together they are the measured step time.
  assert set(jx['categories']) == set(profile_step.CATEGORIES)
  assert sum(jx['categories'].values()) == pytest.approx(jx['wall_ms_per_step'], rel=0.01)
  assert sum(op['ms'] for op in jx['ops']) == pytest.approx(jx['wall_ms_per_step'], rel=0.01)
  assert jx['categories']['convolution'] > 0 and jx['categories']['batchnorm'] > 0
  # Both networks' layers, forward and backward, are attributed from the HLO metadata.
  for layer in ('G UpConv_0 fwd', 'G UpConv_0 bwd', 'D Conv_1 fwd', 'D Conv_1 bwd'):
    assert jx['layers'].get(layer, 0) > 0, (layer, jx['layers'])
  files = sorted(p.name for p in tmp_path.iterdir())
  assert [f.rsplit('.', 1)[1] for f in files] == ['json', 'md']
  assert json.loads((tmp_path / files[0]).read_text())['jaxgan']['categories'] == jx['categories']
  table = (tmp_path / files[1]).read_text()
  assert '| convolution |' in table and '| G UpConv_0 bwd |' in table
  assert table in capsys.readouterr().out


def test_profile_step_names_layers_and_torch_ops():
  import profile_step  # pylint: disable=g-import-not-at-top
  layer = profile_step.jax_layer
  assert layer('jit(s)/while/body/transpose(jvp(Generator28))/UpConv_0/dot_general') == 'G UpConv_0 bwd'
  assert layer('jit(s)/jvp(Discriminator28)/Conv_1/conv_general_dilated') == 'D Conv_1 fwd'
  assert layer('jit(s)/Generator64/BatchNorm_2/mul') == 'G BatchNorm_2 fwd'
  assert layer('jit(s)/transpose(jvp())/dot_general') == ''
  cat = profile_step.torch_category
  assert cat('aten::convolution_backward') == cat('aten::mkldnn_convolution') == 'convolution'
  assert cat('aten::mm') == cat('aten::addmm') == 'matmul'
  assert cat('aten::native_batch_norm_backward') == 'batchnorm'
  assert cat('aten::sqrt') == cat('aten::leaky_relu') == 'element-wise'
  assert cat('aten::copy_') == 'data movement' and cat('aten::sum') == 'reduction'
  assert cat('Optimizer.step#Adam.step') == 'optimizer'


def test_profile_step_gives_untraced_time_to_the_asynchronous_ops_in_flight():
  import profile_step  # pylint: disable=g-import-not-at-top
  # Times in ns. "conv" hands its work to the pool in 1 ns and is marked ended at 40 and
  # (its second run) at 80; "add" runs 30-45 beside it, marked ended at 45; "copy" has no
  # marker; "loop" is a while whose marker must not claim anything.
  spans = [(0, 1, 'conv'), (50, 51, 'conv'), (30, 45, 'add'), (90, 100, 'copy'),
           (0, 1, 'loop')]
  marks = [(40, 'conv'), (80, 'conv'), (45, 'add'), (100, 'loop')]
  pending = sorted(profile_step.pending_spans(spans, marks, frozenset({'loop'})))
  assert pending == [(1, 40, 'conv'), (51, 80, 'conv')]
  per_op = profile_step.wall_time_per_op(spans, pending)
  # conv: its traced 0-1 (shared with loop's) and 50-51, the untraced 1-30 and 51-80;
  # add keeps all of 30-45, where it is traced.
  assert per_op['conv'] == pytest.approx((0.5 + 29 + 1 + 29) * 1e-6)
  assert per_op['loop'] == pytest.approx(0.5e-6)
  assert per_op['add'] == pytest.approx(15e-6) and per_op['copy'] == pytest.approx(10e-6)
  # Idle is only the stretches with nothing traced and nothing in flight: 45-50, 80-90.
  assert per_op[profile_step.IDLE] == pytest.approx(15e-6)
  assert sum(per_op.values()) == pytest.approx(100e-6)
  # A marker before a run's start, or after the same op's next start, closes no run.
  assert profile_step.pending_spans([(10, 12, 'x'), (20, 22, 'x')], [(5, 'x'), (30, 'x')]) == [
      (22, 30, 'x')]


def test_profile_step_profiles_the_torch_reference():
  pytest.importorskip('torch', reason='torch is not installed (pip install torch==2.13.0)')
  if not step_speed.DEFAULT_TORCH_REF.is_file():
    pytest.skip(f'{step_speed.DEFAULT_TORCH_REF} not found (../shared beside the repo)')
  import profile_step  # pylint: disable=g-import-not-at-top
  res = profile_step.profile_torch(step_speed.DEFAULT_TORCH_REF, 'mnist_mmd_b100', 1, 2)
  assert res['categories']['convolution'] > 0 and res['categories']['batchnorm'] > 0
  assert sum(res['categories'].values()) == pytest.approx(res['wall_ms_per_step'], rel=0.01)
  assert any(op['op'] == 'aten::convolution_backward' for op in res['ops'])


def test_xla_options_runs_each_option_and_records_a_rejected_flag(tmp_path, monkeypatch):
  import xla_options  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(xla_options.OPTIONS, 'bogus', (
      'a flag no XLA knows', '--xla_cpu_no_such_flag_for_the_test=true', None))
  report = xla_options.main(['--options', 'conv_matmul,bogus', '--steps', '1', '--rounds', '2',
                             '--out', str(tmp_path)] + TINY)
  assert report['options']['default']['ratio'] == 1.0
  for name in ('default', 'conv_matmul'):
    assert report['options'][name]['img_s'] > 0 and len(report['options'][name]['s_per_step']) == 2
  assert report['options']['conv_matmul']['conv_impl'] == 'matmul'
  assert 'error' in report['options']['bogus'] and 'img_s' not in report['options']['bogus']
  md = next(tmp_path.glob('*.md')).read_text()
  assert '| bogus |' in md and 'failed' in md
  with pytest.raises(SystemExit, match='unknown option'):
    xla_options.main(['--options', 'turbo'])


def test_upconv_grads_times_every_piece(capsys):
  import upconv_grads  # pylint: disable=g-import-not-at-top
  out = upconv_grads.main(['--batch', '2', '--reps', '1'])
  assert len(out['jaxgan_ms']) == 5 and all(ms > 0 for ms in out['jaxgan_ms'].values())
  if step_speed.torch_available():
    assert set(out['torch_ms']) == {'forward', 'forward + dx + dw'}
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out


@pytest.mark.parametrize('padding,taps', [('VALID', 6 * 3), ('SAME', 8 * 3 - 2)])
def test_program_flops_of_one_convolution_by_hand(padding, taps):
  """A 3x3 convolution of [2, 8, 8, 3] images into 4 channels. Per spatial axis, VALID
  has 6 outputs x 3 taps; SAME has 8 outputs x 3 taps, less the 2 that fall on padding.
  FLOPs = 2 x batch x out channels x in channels x taps(H) x taps(W)."""
  x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
  fn = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
  count, source = flops.program_flops(fn, (x, w))
  assert count == 2 * 2 * 4 * 3 * taps * taps and source == 'jaxpr'
  assert count == flops.xla_flops(fn, fn.lower(x, w).compile(), (x, w))[0]


def test_program_flops_count_each_scan_iteration_and_the_backward_pass():
  def loss(w, x):
    return jax.lax.scan(lambda c, _: (c @ w, None), x, None, length=5)[0].sum()
  w, x = jnp.ones((16, 16)), jnp.ones((4, 16))
  forward, _ = flops.program_flops(loss, (w, x))
  assert forward == 5 * 2 * 4 * 16 * 16 + 4 * 16   # five matmuls and the sum's 64 inputs
  both, _ = flops.program_flops(jax.grad(loss), (w, x))
  # The gradient: forward, dx and dw matmuls each step, the 5 accumulations of dw, the sum.
  assert both == 3 * 5 * 2 * 4 * 16 * 16 + 5 * 16 * 16 + 4 * 16


@pytest.mark.parametrize('config_name,shape', [('mmd_dcgan', (28, 28, 1)), ('dcgan', (64, 64, 3)),
                                               ('wgan_gp', (28, 28, 1))])
def test_program_flops_of_a_step_agree_with_xla_on_cpu(config_name, shape):
  """The jaxpr count of a whole train step (batch 8, the model's form: XLA convolutions)
  against XLA's CPU cost analysis of the same program (scans unrolled for WGAN-GP's 5
  critic updates): within 2%."""
  from jaxgan import sweep, systems  # pylint: disable=g-import-not-at-top
  from jaxgan.config_util import load_config_file, set_field  # pylint: disable=g-import-not-at-top
  config = load_config_file(step_speed.REPO / 'configs' / f'{config_name}.py')
  config.data.batch_size = 8
  for field, value in flops.CANONICAL_OVERRIDES.items():
    set_field(config, field, value)
  models = systems.build_models(config, shape)
  step = systems.compile_step(config, models)
  args = (sweep.stack([systems.create_state(config, models, shape)]),
          {'images': np.zeros((config.train.n_disc, 8) + shape, np.uint8)})
  counted, _ = flops.program_flops(step.fn, args)
  xla, source = flops.xla_flops(step.fn, step.fn.lower(*args).compile(), args)
  assert 'lower bound' not in source
  assert counted == pytest.approx(xla, rel=0.02)
