"""Image GANs side by side at one budget: the shape shared by seed001, seed002 and seed003.

A `Row` is one system (a config and its overrides). Each row trains on each dataset as
one job, its seeds vmapped into one program, for the experiment's budget (the same
overrides for every row: steps, batch, logging). `--mode=eval` scores every seed. The
report gives one table row per (dataset, row), mean ± std over the seeds of the final
scores, a figure of the loss curves, and the last sample grid of the first seed of
every row.
"""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from jaxgan import workdir as wd
from jaxgan.experiments import report as rep
from jaxgan.experiments.runner import LAST_GRIDS, Job

DATA_NAMES = {'mnist': 'MNIST', 'fashion_mnist': 'Fashion-MNIST', 'mnist64': 'MNIST 64x64'}


@dataclasses.dataclass(frozen=True)
class Row:
  key: str          # job name (prefixed by the dataset when there are several)
  label: str        # what the table calls it
  config: str       # configs/<file>.py
  overrides: dict = dataclasses.field(default_factory=dict)


def jobs(rows: tuple[Row, ...], datasets: tuple[str, ...], seeds: tuple[int, ...],
         budget: dict) -> list[Job]:
  """One evaluated job per (dataset, row); the budget overrides every row's own fields."""
  out = []
  sweep = f'seed={",".join(str(s) for s in seeds)}' if len(seeds) > 1 else ''
  for data in datasets:
    for row in rows:
      overrides = {'data.name': data, **row.overrides, **budget, 'seed': seeds[0]}
      name = f'{data}_{row.key}' if len(datasets) > 1 else row.key
      out.append(Job(name, row.config, overrides, sweep=sweep, evaluate=True,
                     labels={'row': row.key, 'label': row.label, 'dataset': data}))
  return out


def trained(job: dict) -> list[dict]:
  """The members of a results.json job that trained at least one step."""
  return [m for m in job['members'] if m.get('steps')]


def groups(results: dict) -> list[tuple[dict, list[dict]]]:
  """(labels, trained members) per job, in the experiment's job order."""
  return [(j['labels'], trained(j)) for j in results['jobs'].values()]


def score_table(results: dict, *, label_accuracy: bool = False) -> str:
  """The final scores per (dataset, row): mean ± std over the seeds."""
  scale = 'full' if results['scale'] == 'full' else 'reduced'
  header = ['row', 'data', 'scale', 'steps', 'batch', 'seeds']
  if label_accuracy:
    header.append('label accuracy (%)')
  header += ['score (10k)', 'FID (10k)', 'KID (10k)', 'classes covered', 'class KL']
  rows = []
  for job in results['jobs'].values():
    labels, ms = job['labels'], trained(job)
    evals = [m['eval'] for m in ms if 'eval' in m]
    row = [labels['label'], DATA_NAMES.get(labels['dataset'], labels['dataset']), scale,
           ms[0]['steps'] if ms else '-', job.get('batch_size', '-'), len(ms)]
    if label_accuracy:
      row.append(rep.mean_std([100 * e['label_accuracy'] for e in evals
                               if 'label_accuracy' in e], 1))
    row += [rep.mean_std([e['score'] for e in evals], 2),
            rep.mean_std([e['fid'] for e in evals], 2),
            rep.mean_std([e['kid'] for e in evals], 2),
            rep.mean_std([e['classes_covered'] for e in evals], 1),
            rep.mean_std([e['class_kl_uniform'] for e in evals], 3)]
    rows.append(row)
  return rep.table(header, rows)


def _mean_curve(ms: list[dict], field: str, source: str = 'curve'):
  """(x, mean over the seeds) of `field` at the steps every seed logged."""
  n = min(len(m.get(source, [])) for m in ms)
  pts = [[r.get(field, np.nan) for r in m[source][:n]] for m in ms]
  if not n or np.all(np.isnan(np.asarray(pts, float))):
    return None
  return [r['step'] for r in ms[0][source][:n]], np.nanmean(np.asarray(pts, float), axis=0)


def plot_losses(results: dict, path: pathlib.Path, fields: tuple[str, ...]) -> bool:
  """One panel per job: each of `fields` against the step (mean over the seeds)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  panels = [(labels, ms) for labels, ms in groups(results) if ms and ms[0].get('curve')]
  if not panels:
    return False
  cols = min(3, len(panels))
  rows_ = -(-len(panels) // cols)
  fig, axes = plt.subplots(rows_, cols, figsize=(4.4 * cols, 3.0 * rows_), squeeze=False)
  for ax, (labels, ms) in zip(axes.flat, panels):
    for i, field in enumerate(fields):
      curve = _mean_curve(ms, field)
      if curve is not None:
        ax.plot(*curve, color=f'C{i}', label=field, linewidth=1)
    ax.set_title(f'{labels["label"]}, {DATA_NAMES.get(labels["dataset"], labels["dataset"])}'
                 f' ({len(ms)} seed{"s" * (len(ms) > 1)})', fontsize=8)
    ax.set_xlabel('step')
    if ax.lines:
      ax.legend(fontsize=6)
  for ax in list(axes.flat)[len(panels):]:
    ax.axis('off')
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return True


def last_grids(results: dict, path: pathlib.Path) -> bool:
  """The last sample grid of each job's first seed, side by side in job order: from its
  run folder, else from the copy kept beside results.json (runner.keep_last_grid)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  run_dir = pathlib.Path(results['_dir'])
  imgs = []
  for name, job in results['jobs'].items():
    ms = trained(job)
    if not ms:
      continue
    grid = wd.grid_path(run_dir / ms[0]['folder'], ms[0]['steps'])
    if not grid.is_file():
      grid = run_dir / LAST_GRIDS / f'{name}.png'
    if not grid.is_file():
      return False
    imgs.append(np.asarray(Image.open(grid).convert('RGB')))
  if not imgs:
    return False
  gap, h = 6, max(i.shape[0] for i in imgs)
  canvas = np.full((h, sum(i.shape[1] + gap for i in imgs) - gap, 3), 255, np.uint8)
  x = 0
  for img in imgs:
    canvas[:img.shape[0], x:x + img.shape[1]] = img
    x += img.shape[1] + gap
  Image.fromarray(canvas).save(path)
  return True


def section(results: dict, figures: pathlib.Path, *, table: str, notes: str,
            loss_fields: tuple[str, ...], extra: tuple | None = None) -> str:
  """An experiment's report: its table, a paragraph of notes (protocol, published claim),
  its own figure if any (extra = (suffix, plot(results, path) -> drawn, caption)), the
  loss curves and the last sample grids."""
  figures.mkdir(parents=True, exist_ok=True)
  name = f'{results["experiment"]}_{results["scale"]}'
  lines = [table, '', notes]
  if extra is not None:
    suffix, plot, caption = extra
    path = figures / f'{name}_{suffix}.png'
    if plot(results, path):
      lines += ['', caption, '', f'![{suffix}]({rep.rel(path)})']
  curves = figures / f'{name}_losses.png'
  if plot_losses(results, curves, loss_fields):
    lines += ['', 'Training losses (the logged means between log points, mean over the seeds):',
              '', f'![loss curves]({rep.rel(curves)})']
  grids = figures / f'{name}_samples.png'
  if last_grids(results, grids):
    seed = next(iter(results['jobs'].values()))['overrides'].get('seed', 0)
    order = ', '.join(f'{l["label"]} ({DATA_NAMES.get(l["dataset"], l["dataset"])})'
                      for l, ms in groups(results) if ms)
    lines += ['', f'The last sample grid of seed {seed} of each row, left to right: {order}.',
              '', f'![samples]({rep.rel(grids)})']
  return '\n'.join(lines)
