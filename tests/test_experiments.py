"""The experiment runner (jaxgan/experiments): resume, results.json, reports."""
import json
import pathlib

import numpy as np
import pytest

from jaxgan import experiments
from jaxgan.data import toy
from jaxgan.errors import UserError
from jaxgan.experiments import __main__ as cli
from jaxgan.experiments import (compare, report, runner, seed000, seed001, seed002, seed003,
                                stacked_mnist, toy2d)

# configs/toy2d.py shrunk: 2 seeds vmapped, 20 steps an epoch of 200 points.
TINY = {'data.toy_size': 200, 'train.num_epochs': 1, 'log_every_steps': 10}


def _experiment(epochs=1):
  def jobs(scale):
    del scale
    ov = {**TINY, 'train.num_epochs': epochs}
    return [runner.Job('a', 'configs/toy2d.py', ov, sweep='seed=0,1', labels={'row': 'a'}),
            runner.Job('b', 'configs/toy2d.py', {**ov, 'train.g_loss': 'minimax'},
                       labels={'row': 'b'})]
  return runner.Experiment('tiny', 'tiny', jobs, lambda s: {'scale': s}, lambda r, f: '')


def _read(out):
  return json.loads((out / 'results.json').read_text())


def test_results_json_holds_every_member_with_protocol_commit_machine(tmp_path):
  runner.run(_experiment(), 'cpu', tmp_path)
  r = _read(tmp_path)
  assert r['schema'] == 1 and r['experiment'] == 'tiny' and r['scale'] == 'cpu'
  assert r['protocol'] == {'scale': 'cpu'} and not r['smoke']
  assert len(r['commit']) == 40 and isinstance(r['dirty'], bool)
  assert {'host', 'cpu_count', 'cpu_model', 'jax', 'backend', 'device_kind'} <= set(r['machine'])
  assert r['wall_s'] > 0 and set(r['jobs']) == {'a', 'b'}
  for job in r['jobs'].values():  # each job records where it was trained
    assert job['commit'] == r['commit'] and job['machine'] == r['machine']
  a = r['jobs']['a']
  assert a['config'] == 'configs/toy2d.py' and a['sweep'] == 'seed=0,1'
  assert [m['name'] for m in a['members']] == ['seed=0', 'seed=1']
  assert [m['overrides'] for m in a['members']] == [{'seed': 0}, {'seed': 1}]
  for m in a['members'] + r['jobs']['b']['members']:
    assert m['steps'] == 20 and len(m['per_epoch']) == 1
    final = m['final']
    assert final == m['per_epoch'][-1] and final['step'] == 20
    assert 0 <= final['modes_covered'] <= 8 and 0 <= final['high_quality'] <= 1
    assert sum(final['mode_counts']) == round(2500 * final['high_quality'])
    assert (tmp_path / m['folder'] / 'metrics.jsonl').is_file()
  # The two seeds are different runs; the solo job has one member named ''.
  assert a['members'][0]['final'] != a['members'][1]['final']
  assert [m['name'] for m in r['jobs']['b']['members']] == ['']


def test_run_resumes_finished_jobs_without_training_and_continues_longer_ones(tmp_path):
  runner.run(_experiment(), 'cpu', tmp_path, only=['b'])
  first = _read(tmp_path)
  assert set(first['jobs']) == {'b'}
  runner.run(_experiment(), 'cpu', tmp_path)          # b: already trained; a: trained now
  second = _read(tmp_path)
  assert list(second['jobs']) == ['a', 'b']            # the experiment's order, not the runs'
  assert second['jobs']['b']['wall_s'] == first['jobs']['b']['wall_s']
  assert second['jobs']['b']['members'] == first['jobs']['b']['members']
  runner.run(_experiment(epochs=2), 'cpu', tmp_path)  # resumes from step 20's checkpoint
  third = _read(tmp_path)
  steps = [json.loads(l)['step'] for l in
           (tmp_path / 'runs' / 'a' / 'sweep' / 'seed=0' / 'metrics.jsonl').read_text().splitlines()]
  assert steps == sorted(set(steps)) and steps[-1] == 40     # no step trained twice
  assert [e['step'] for e in third['jobs']['a']['members'][0]['per_epoch']] == [20, 40]
  assert third['jobs']['b']['wall_s'] > first['jobs']['b']['wall_s']
  # Each job's first member's last grid is kept beside results.json, so the report's
  # sample figure survives without runs/ (which holds checkpoints and is not committed).
  kept = tmp_path / runner.LAST_GRIDS / 'a.png'
  assert kept.read_bytes() == (
      tmp_path / 'runs' / 'a' / 'sweep' / 'seed=0' / 'samples' / 'step_0000040.png').read_bytes()
  (tmp_path / 'runs').rename(tmp_path / 'elsewhere')
  third['_dir'] = str(tmp_path)
  assert compare.last_grids(third, tmp_path / 'grids.png')
  kept.unlink()
  assert not compare.last_grids(third, tmp_path / 'grids2.png')


def test_run_refuses_another_experiments_folder_and_unknown_jobs(tmp_path):
  (tmp_path / 'results.json').write_text(json.dumps({'schema': 1, 'experiment': 'toy2d',
                                                     'scale': 'cpu', 'jobs': {}}))
  with pytest.raises(UserError, match='use another --out'):
    runner.run(_experiment(), 'cpu', tmp_path)
  with pytest.raises(UserError, match='has no job c'):
    runner.run(_experiment(), 'cpu', tmp_path / 'new', only=['c'])
  with pytest.raises(UserError, match='--scale'):
    runner.run(_experiment(), 'gpu', tmp_path / 'new')


def test_dry_run_validates_every_job_and_trains_nothing(tmp_path, capsys):
  for name in experiments.EXPERIMENTS:
    for scale in ('cpu', 'full'):
      assert cli.main(['run', name, f'--scale={scale}', f'--out={tmp_path / name}',
                       '--dry-run']) == 0
  out = capsys.readouterr().out
  assert 'seed000 at scale full: 6 jobs, 72 members' in out
  assert 'toy2d at scale cpu: 18 jobs, 180 members' in out
  assert 'seed001 at scale full: 4 jobs, 12 members' in out
  assert 'stacked_mnist at scale full: 3 jobs, 9 members' in out
  assert not any(tmp_path.iterdir())


def test_experiments_cover_the_issues_grid():
  full = seed000.jobs('full')
  assert {j.labels['protocol'] for j in full} == {'spec', 'literal'}
  assert {j.labels['feature_dim'] for j in full} == {10, 20, 30}
  assert all(j.sweep == 'train.eta=0,5,10,15; seed=0,1,2' and j.evaluate for j in full)
  assert all(j.overrides['train.num_epochs'] == 30 for j in full)
  rows = {j.labels['row'] for j in toy2d.jobs('full')}
  assert rows == {'gan', 'minimax', 'wgan_gp', 'mmd', 'mbd', 'pac2', 'pac4', 'seed004',
                  'seed004_letter'}
  pac4 = next(j for j in toy2d.jobs('full') if j.name == 'ring8_pac4')
  assert pac4.overrides['train.num_epochs'] == 1600 and pac4.overrides['data.batch_size'] == 400


def _member(folder, per_epoch, **extra):
  return {'name': '', 'folder': folder, 'overrides': {}, 'steps': per_epoch[-1]['step'],
          'per_epoch': per_epoch, 'final': per_epoch[-1], **extra}


def _results(name, jobs, scale='cpu'):
  return {'schema': 1, 'experiment': name, 'title': name, 'scale': scale, 'smoke': False,
          'commit': 'a' * 40, 'dirty': False, 'updated': '2026-11-30T00:00:00+00:00',
          'wall_s': 120.0, 'protocol': {'collapse_event': 'KL > 0.25'},
          'machine': {'device_kind': 'cpu', 'devices': 1, 'cpu_count': 2, 'jax': '0.10.2'},
          'jobs': jobs}


def _toy_final(step, modes, hq, kl):
  return {'step': step, 'modes_covered': modes, 'high_quality': hq, 'mode_kl_uniform': kl}


def test_the_header_names_jobs_trained_at_another_commit_or_machine():
  where = {'commit': 'a' * 40, 'dirty': False,
           'machine': {'device_kind': 'cpu', 'devices': 1, 'cpu_count': 2, 'jax': '0.10.2',
                       'cpu_model': 'AMD EPYC'}}
  results = _results('toy2d', {'old': {}, 'same': dict(where),
                               'rerun': {**where, 'commit': 'b' * 40, 'dirty': True}})
  results['machine'] = where['machine']
  head = report.header(results)
  assert 'cpu x1 (2 CPU cores, AMD EPYC), jax 0.10.2; commit `aaaaaaaaaa`;' in head
  assert ' Jobs rerun: cpu x1 (2 CPU cores, AMD EPYC), jax 0.10.2; commit `bbbbbbbbbb` ' \
         '(uncommitted changes).' in head
  assert ' Jobs old: trained by an earlier invocation' in head and 'same' not in head
  # Results from before per-job records: the header is the one line it always was.
  assert 'Jobs' not in report.header(_results('toy2d', {'x': {}, 'y': {}}))


def test_toy2d_report_from_a_fixed_results_json(tmp_path):
  jobs = {}
  for data in ('ring8', 'grid25'):
    members = [_member('x', [_toy_final(1000, m, hq, kl)])
               for m, hq, kl in ((6, 0.9, 0.1), (8, 0.5, 0.3))]
    jobs[f'{data}_gan'] = {'labels': {'row': 'gan', 'label': 'GAN', 'data': data},
                           'members': members, 'batch_size': 100}
  results = _results('toy2d', jobs)
  path = tmp_path / 'r' / 'results.json'
  path.parent.mkdir()
  path.write_text(json.dumps(results))
  md = report.render(report.load(path), tmp_path / 'fig', experiments.EXPERIMENTS)
  assert '**reduced scale (`--scale=cpu`)**' in md and 'commit `aaaaaaaaaa`' in md
  assert f'--out={path.parent}' in md
  row = next(l for l in md.splitlines() if l.startswith('| GAN (non-saturating) |'))
  # modes 7 +- 1, HQ 70 +- 20 %, KL 0.20 +- 0.10.
  assert row == ('| GAN (non-saturating) | reduced | 1000 | 100 | 2 | 7.0 ± 1.0 | 70.0 ± 20.0 | '
                 '0.20 ± 0.10 | 7.0 ± 1.0 | 70.0 ± 20.0 | 0.20 ± 0.10 |')
  # The published numbers have rows of their own.
  assert '| PacGAN paper: GAN (non-saturating) | published | 400,000 | 100 | - | 6.3 | 98.2 | - |' in md
  assert '| PacGAN paper: PacGAN4 | published | 400,000 | 400 |' in md


def test_seed000_report_counts_collapse_events_and_draws_curves(tmp_path):
  def epochs(kls, classes):
    return [{'step': 600 * (i + 1), 'epoch': i + 1, 'class_kl_uniform': k, 'classes_covered': c,
             'monitor_score': 9.0} for i, (k, c) in enumerate(zip(kls, classes))]
  ev = {'score': 9.0, 'fid': 2.0, 'kid': 7.1,
        'protocol': {'feature_network': 'classifier', 'params_sha256': 'd3831574' + '0' * 56,
                     'num_samples': 10000, 'reference_num': 10000, 'reference_split': 'test',
                     'score_splits': 10, 'kid': {'subsets': 100, 'subset_size': 1000}}}
  jobs = {'spec_fd20': {'labels': {'protocol': 'spec', 'feature_dim': 20},
                        'overrides': {'seed': 0}, 'members': [
      {**_member('m0', epochs([0.1, 0.5, 0.05], [10, 10, 9]), eval=ev), 'overrides': {'train.eta': 0.0}},
      {**_member('m1', epochs([0.1, 0.1, 0.1], [10, 10, 10]), eval=ev), 'overrides': {'train.eta': 10.0}}]}}
  results = {**_results('seed000', jobs), '_dir': str(tmp_path)}
  md = seed000.report(results, tmp_path / 'fig')
  rows = [l for l in md.splitlines() if l.startswith('| spec |')]
  # eta 0: epoch 2 (KL 0.5) and epoch 3 (9 classes) collapse; eta 10: none.
  assert rows[0].startswith('| spec | reduced | 20 | 0 | 1 | 3 | 2 of 3 | 9 | 0.050 | 9.00 | 2.00 | 7.10 |')
  assert rows[1].startswith('| spec | reduced | 20 | 10 | 1 | 3 | 0 of 3 | 10 |')
  assert '`d38315740000...`' in md and '10000 samples' in md
  assert (tmp_path / 'fig' / 'seed000_cpu_monitor.png').stat().st_size > 1000


def test_report_refuses_smoke_runs_and_update_doc_keeps_the_prose(tmp_path):
  path = tmp_path / 'results.json'
  path.write_text(json.dumps({**_results('toy2d', {}), 'smoke': True}))
  with pytest.raises(UserError, match='smoke'):
    report.load(tmp_path)
  doc = tmp_path / 'results.md'
  results = _results('toy2d', {})
  report.update_doc(doc, [(results, 'first')])
  text = doc.read_text().replace('first', 'first') + '\nHand-written reading.\n'
  doc.write_text(text)
  report.update_doc(doc, [(results, 'second')])
  text = doc.read_text()
  assert 'second' in text and 'first' not in text and 'Hand-written reading.' in text
  assert text.count('<!-- results:toy2d:cpu -->') == 1


def test_mode_kl_of_the_high_quality_histogram():
  means = toy.mixture_means('ring')
  even = toy.mode_stats(np.repeat(means, 5, axis=0), 'ring')
  assert even['mode_kl_uniform'] == pytest.approx(0.0, abs=1e-12)
  one = toy.mode_stats(np.repeat(means[:1], 5, axis=0), 'ring')
  assert one['mode_kl_uniform'] == pytest.approx(np.log(8))
  half = toy.mode_stats(np.repeat(means[:4], 5, axis=0), 'ring')
  assert half['mode_kl_uniform'] == pytest.approx(np.log(2))
  assert np.isnan(toy.mode_stats(np.zeros((3, 2)), 'ring')['mode_kl_uniform'])


def test_runs_made_before_a_field_existed_resume_at_its_neutral_value(tmp_path):
  """check_config accepts a field absent from an old config.json only at the value that
  trains as before (workdir.ADDED_FIELDS); any other value is a different run."""
  from jaxgan import workdir as wd  # pylint: disable=g-import-not-at-top
  from tests.conftest import tiny_config  # pylint: disable=g-import-not-at-top
  config = tiny_config()
  old = wd.config_to_dict(config)
  del old['model']['pack'], old['train']['mmd_fake'], old['train']['noise_period']
  (tmp_path / 'config.json').write_text(json.dumps(old))
  (tmp_path / 'checkpoints' / '1').mkdir(parents=True)  # else any config may replace it
  wd.check_config(tmp_path, config)
  config.model.pack = 2
  with pytest.raises(UserError, match='model.pack: <absent> -> 2'):
    wd.check_config(tmp_path, config)


def test_issue13_experiments_share_a_budget_per_row():
  # seed003: every row the same iterations and batch; WGAN rows 5 critic steps.
  for scale in ('cpu', 'full'):
    js = seed003.jobs(scale)
    assert {(j.overrides['train.num_steps'], j.overrides['data.batch_size']) for j in js} == {
        (seed003.SCALES[scale]['steps'], 64)}
  full = {j.name: j for j in seed003.jobs('full')}
  assert {j.config for j in full.values()} == {'configs/dcgan_5x5.py'}
  assert full['wgan_gp'].overrides['model.disc_norm'] == 'layer'
  # seed001: both systems on both datasets, held-out losses on.
  assert {(j.labels['row'], j.labels['dataset']) for j in seed001.jobs('cpu')} == {
      (r, d) for r in ('acgan', 'vtgan') for d in ('mnist', 'fashion_mnist')}
  assert all(j.overrides['eval.held_out_batches'] > 0 for j in seed001.jobs('full'))
  # seed002: each trick is one change from the plain row.
  plain, *tricks = seed002.jobs('cpu')
  for j in tricks:
    assert set(j.overrides) - set(plain.overrides) == set(seed002.ROWS[tricks.index(j) + 1].overrides)
  # stacked_mnist: PacDCGAN2 takes the steps of the other rows (64 packs a batch).
  steps = {}
  for j in stacked_mnist.jobs('full'):
    per_epoch = 128_000 // j.overrides['data.batch_size']
    steps[j.name] = per_epoch * j.overrides['train.num_epochs']
  assert steps == {'dcgan': 100_000, 'mmd': 100_000, 'pac2': 100_000}


def _scored(step, **eval_numbers):
  ev = {'score': 8.0, 'fid': 10.0, 'kid': 1.0, 'classes_covered': 10, 'class_kl_uniform': 0.01,
        **eval_numbers}
  curve = [{'step': s, 'd_loss': 1.0 + s / 100, 'g_loss': 2.0} for s in (step // 2, step)]
  return {**_member('x', [{'step': step, 'epoch': 1}], eval=ev), 'curve': curve}


def test_compare_table_is_mean_and_std_over_seeds_with_label_accuracy(tmp_path):
  jobs = {'mnist_acgan': {'labels': {'row': 'acgan', 'label': 'AC-GAN', 'dataset': 'mnist'},
                          'batch_size': 100, 'overrides': {'seed': 0},
                          'members': [_scored(300, label_accuracy=0.8, fid=10.0),
                                      _scored(300, label_accuracy=0.6, fid=14.0)]}}
  results = {**_results('seed001', jobs), '_dir': str(tmp_path)}
  table = compare.score_table(results, label_accuracy=True)
  assert ('| AC-GAN | MNIST | reduced | 300 | 100 | 2 | 70.0 ± 10.0 | 8.00 ± 0.00 | '
          '12.00 ± 2.00 |') in table
  assert compare.plot_losses(results, tmp_path / 'l.png', ('d_loss', 'g_loss'))
  assert (tmp_path / 'l.png').stat().st_size > 1000
  # seed001's own figure: the held-out terms of each epoch line, train beside test.
  for m in jobs['mnist_acgan']['members']:
    m['per_epoch'] = [{'step': 60 * e, 'epoch': e, **{f'{split}_{term}': 1.0 + e
                       for split in ('train', 'test') for term, _ in seed001.HELD_OUT_PANELS}}
                      for e in (1, 2)]
  results['protocol'] = seed001.protocol('cpu')
  md = seed001.report(results, tmp_path / 'fig')
  assert '![held_out](' in md and (tmp_path / 'fig' / 'seed001_cpu_held_out.png').is_file()


def test_stacked_mnist_report_sets_published_rows_beside_ours(tmp_path):
  jobs = {'dcgan': {'labels': {'row': 'dcgan', 'label': 'DCGAN', 'dataset': 'stacked_mnist'},
                    'batch_size': 64, 'overrides': {'seed': 0},
                    'members': [{**_member('x', [{'step': 400, 'epoch': 2, 'modes_covered': 300,
                                                  'mode_kl_uniform': 1.5}]),
                                 'eval': {'modes_covered': 412, 'mode_kl_uniform': 1.25}}]}}
  results = {**_results('stacked_mnist', jobs), '_dir': str(tmp_path)}
  results['protocol'] = stacked_mnist.protocol('cpu')
  md = stacked_mnist.report(results, tmp_path / 'fig')
  assert '| DCGAN | reduced | 400 | 64 | 1 | 412.0 | 1.25 |' in md
  assert '| VEEGAN/PacGAN paper: PacDCGAN2 | published | - | 64 packs | - | 1000 | 0.06 |' in md
