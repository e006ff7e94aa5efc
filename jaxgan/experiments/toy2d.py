"""toy2d: modes of the ring of 8 and the grid of 25 (the PacGAN 2-D protocol, SPEC S2).

Every row trains 10 seeds as one vmapped sweep and scores 2,500 samples of each seed's
fixed evaluation noise by the PacGAN rule (a sample is high quality within 3 std of its
nearest mean; a mode is covered by one high-quality sample). All rows but the last use
configs/toy2d_pacgan.py (PacGAN's networks and schedule) for the same number of epochs;
the last two are seed 004's own small MLPs: configs/toy2d.py as it is, and
configs/toy2d_seed004.py, the seed's loop to the letter (G alone on even minibatches with
the saturating loss, D alone on odd ones).
"""
from __future__ import annotations

import pathlib

import numpy as np

from jaxgan import workdir as wd
from jaxgan.experiments import report as rep
from jaxgan.experiments.runner import Experiment, Job

SEEDS = tuple(range(10))
DATASETS = ('ring8', 'grid25')
PACGAN = 'configs/toy2d_pacgan.py'
# (job name, row label, config, overrides)
ROWS = (
    ('gan', 'GAN (non-saturating)', PACGAN, {}),
    ('minimax', 'GAN (minimax)', PACGAN, {'train.g_loss': 'minimax'}),
    # Gulrajani et al.'s optimiser and critic schedule; the maxout critic has no norm.
    ('wgan_gp', 'WGAN-GP (lambda 10, 5 critic steps)', PACGAN,
     {'train.d_loss': 'wasserstein', 'train.g_loss': 'wasserstein', 'train.gp_weight': 10.0,
      'train.n_disc': 5, 'optim.b1': 0.5, 'optim.b2': 0.9}),
    ('mmd', 'MMD-regularised (eta 10)', PACGAN, {'train.eta': 10.0}),
    ('mbd', 'minibatch discrimination (100 x 5)', PACGAN,
     {'model.minibatch_kernels': 100, 'model.minibatch_dim': 5, 'train.disc_batches': 'separate'}),
    # PacGAN's batch is 100 packs of m samples with 1,000 steps an epoch whatever m
    # (configs/toy2d_pacgan.py): batch 100 m and m times the epochs give the same steps.
    ('pac2', 'PacGAN2', PACGAN, {'model.pack': 2, 'data.batch_size': 200}),
    ('pac4', 'PacGAN4', PACGAN, {'model.pack': 4, 'data.batch_size': 400}),
    ('seed004', 'seed 004 config as it is', 'configs/toy2d.py', {}),
    ('seed004_letter', "seed 004's loop to the letter", 'configs/toy2d_seed004.py', {}),
)
# Rows whose steps update G on every other step only (train.alternate).
ALTERNATING = ('seed004_letter',)
# PacGAN (Lin et al. 2018), table 2, as SPEC "Reference numbers" quotes it.
PUBLISHED = {'gan': ((6.3, 98.2), (17.3, 94.8)), 'pac2': ((7.9, 95.6), (23.8, 91.3)),
             'pac4': ((7.8, 95.9), (24.8, 93.6))}
PACKS = {'pac2': 2, 'pac4': 4}
EPOCHS = {'full': 400, 'cpu': 1}  # of 1,000 steps at batch 100 (PacGAN's epochs)


def jobs(scale: str) -> list[Job]:
  sweep = f'seed={",".join(str(s) for s in SEEDS)}'
  out = []
  for data in DATASETS:
    for key, label, config, overrides in ROWS:
      ov = {'data.name': data, **overrides}
      if config == PACGAN:
        ov['train.num_epochs'] = EPOCHS[scale] * overrides.get('model.pack', 1)
      out.append(Job(f'{data}_{key}', config, ov, sweep=sweep,
                     labels={'row': key, 'label': label, 'data': data}))
  return out


def protocol(scale: str) -> dict:
  return {
      'question': 'how many modes of the ring of 8 / grid of 25 does each GAN variant cover?',
      'seeds': len(SEEDS), 'samples_scored': 2500,
      'pacgan_config': {'config': PACGAN, 'epochs': EPOCHS[scale], 'batch_size': 100,
                        'training_points': 100_000},
      'seed004_config': 'configs/toy2d.py as it is (10 epochs of 20,000 points, batch 10)',
      'seed004_letter_config': 'configs/toy2d_seed004.py (20 epochs of 20,000 points, batch '
                               '10: G on the 20,000 even minibatches, D on the odd ones)',
      'high_quality': 'within 3 std of the nearest mean; a mode is covered by >= 1 such sample',
      'mode_kl': 'KL(p || uniform), nats, of the high-quality samples over the modes',
      'reduced': scale != 'full',
  }


def report(results: dict, figures: pathlib.Path) -> str:
  jobs = {(j['labels']['row'], j['labels']['data']): j for j in results['jobs'].values()}
  scale = 'full' if results['scale'] == 'full' else 'reduced'
  header = ['row', 'scale', 'G steps', 'batch', 'seeds', 'ring: modes (of 8)', 'ring: % HQ',
            'ring: mode KL', 'grid: modes (of 25)', 'grid: % HQ', 'grid: mode KL']
  rows = []
  for key, label, _, _ in ROWS:
    trained = [jobs[(key, d)] for d in DATASETS if (key, d) in jobs]
    if not trained:
      continue
    first = trained[0]
    g_steps = first['members'][0]['steps'] // (2 if key in ALTERNATING else 1)
    cells = [label, scale, g_steps, first.get('batch_size', '-'),
             max(len(j['members']) for j in trained)]
    for data in DATASETS:
      finals = [m['final'] for m in jobs[(key, data)]['members']] if (key, data) in jobs else []
      cells += [rep.mean_std([f['modes_covered'] for f in finals], 1),
                rep.mean_std([100 * f['high_quality'] for f in finals], 1),
                rep.mean_std([f['mode_kl_uniform'] for f in finals], 2)]
    rows.append(cells)
  for key, label, _, _ in ROWS:
    if key in PUBLISHED:
      (rm, rh), (gm, gh) = PUBLISHED[key]
      rows.append([f'PacGAN paper: {label}', 'published', '400,000', 100 * PACKS.get(key, 1), '-',
                   rm, rh, '-', gm, gh, '-'])
  epochs = results['protocol'].get('pacgan_config', {}).get('epochs', '?')
  lines = [rep.table(header, rows), '',
           f'Length: {epochs} PacGAN epoch(s) of 1,000 G steps per PacGAN-network row (the '
           'paper trains 400). Mean ± std over the seeds (every seed, not the best). 2,500 samples of each seed\'s '
           'fixed evaluation noise, scored by the PacGAN rule (high quality: within 3 std of the '
           'nearest mean; a mode is covered by one high-quality sample); mode KL: KL(p || uniform) '
           'in nats of the high-quality samples over the modes. Budget: every PacGAN-network row '
           'runs the same G steps on 100,000 training points; PacGAN-m draws m samples per pack '
           '(batch 100 m) as the paper does, WGAN-GP makes 5 critic steps per G step (so 5x the '
           'data per G step), the seed 004 row is configs/toy2d.py with its own schedule, and the '
           "row of seed 004's loop to the letter updates G on even minibatches and D on odd "
           'ones (its G steps: half its minibatches). '
           'Published rows: PacGAN (Lin et al. 2018), table 2 (400 epochs, the same networks); '
           'the paper gives no KL for these.']
  figures.mkdir(parents=True, exist_ok=True)
  path = figures / f'toy2d_{results["scale"]}_seed0.png'
  if _scatter_grid(results, path):
    lines += ['', 'Seed 0 of each row at the end of training (rows in table order; ring left, '
              'grid right):', '', f'![toy2d samples]({rep.rel(path)})']
  return '\n'.join(lines)


def _scatter_grid(results: dict, path: pathlib.Path) -> bool:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  base = pathlib.Path(results['_dir'])
  tiles = []
  for key, *_ in ROWS:
    row = []
    for data in DATASETS:
      job = results['jobs'].get(f'{data}_{key}')
      if not job or not job['members'][0]['per_epoch']:
        return False
      m = job['members'][0]
      png = wd.grid_path(base / m['folder'], m['per_epoch'][-1]['step'])
      if not png.is_file():
        return False
      row.append(np.asarray(Image.open(png).convert('RGB').resize((240, 240))))
    tiles.append(np.concatenate(row, axis=1))
  Image.fromarray(np.concatenate(tiles, axis=0)).save(path)
  return True


EXPERIMENT = Experiment('toy2d', 'Toy 2-D: modes of the ring and the grid', jobs, protocol, report)
