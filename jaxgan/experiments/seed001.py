"""seed001: AC-GAN against VT-GAN on MNIST and Fashion-MNIST (seed 001).

Seed 001 claims that VT-GAN (AC-GAN with minibatch discrimination and class-label
smoothing) beats AC-GAN: an Inception Score of 4.14 ± 0.20 against 4.02 ± 0.18 on
CIFAR-10, after 500 epochs, best of two runs each, on 1,507 samples. It also plots the
per-epoch G and D losses and the auxiliary class losses on the training data and on the
test split (section 4.3). jaxgan has no CIFAR-10 offline, so it asks the same question
on MNIST and Fashion-MNIST, padded to 32x32 for seed 001's networks:

- label accuracy: how often jaxgan's classifier for the dataset agrees with the label G
  was given, over 10,000 samples (1,000 per class);
- score, FID and KID of the same samples in that classifier's features;
- each epoch, the loss terms on fixed train and test batches, with the same
  parameters and noise for both (jaxgan/held_out.py).

Full scale: 30 epochs of the full training set, 3 seeds. CPU scale: 5 epochs of the
first 6,000 training images, one seed.
"""
from __future__ import annotations

import pathlib

from jaxgan.experiments import compare
from jaxgan.experiments import report as rep
from jaxgan.experiments.compare import Row
from jaxgan.experiments.runner import Experiment

ROWS = (Row('acgan', 'AC-GAN', 'configs/acgan.py'),
        Row('vtgan', 'VT-GAN', 'configs/vtgan.py'))
DATASETS = ('mnist', 'fashion_mnist')
SCALES = {
    'full': dict(seeds=(0, 1, 2), epochs=30, limit=None, log_every=100),
    'cpu': dict(seeds=(0,), epochs=5, limit=6000, log_every=20),
}
HELD_OUT_BATCHES = 10
# The per-epoch held-out terms the report plots, as (train key, test key, title).
HELD_OUT_PANELS = (('d_adv', "D's adversarial loss"), ('g_adv', "G's adversarial loss"),
                   ('d_class', "D's class loss (real + fake)"), ('g_class', "G's class loss"),
                   ('d_class_acc', "D's class accuracy on real images"))


def jobs(scale: str):
  s = SCALES[scale]
  budget = {'train.num_epochs': s['epochs'], 'data.limit': s['limit'],
            'log_every_steps': s['log_every'], 'eval.held_out_batches': HELD_OUT_BATCHES}
  return compare.jobs(ROWS, DATASETS, s['seeds'], budget)


def protocol(scale: str) -> dict:
  s = SCALES[scale]
  return {
      'question': 'does VT-GAN beat AC-GAN? (seed 001; CIFAR-10 there, MNIST and Fashion-MNIST here)',
      'length': (f'{s["epochs"]} epochs of ' + (f'the first {s["limit"]:,} training images'
                                                if s['limit'] else 'the full training set')),
      'seeds': list(s['seeds']), 'batch_size': 100, 'reduced': scale != 'full',
      'held_out': (f'each epoch: the loss terms on the first {HELD_OUT_BATCHES} batches of the '
                   'train and the test split, same parameters and fake noise for both, '
                   'one-hot class targets (jaxgan/held_out.py)'),
      'final': ("--mode=eval: 10,000 samples (1,000 per class); label accuracy, score, FID and "
                "KID in jaxgan's classifier for the dataset"),
  }


def _plot_held_out(results: dict, path: pathlib.Path) -> bool:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  jobs_ = [(l, ms) for l, ms in compare.groups(results)
           if ms and any('test_d_adv' in e for e in ms[0].get('per_epoch', []))]
  if not jobs_:
    return False
  datasets = sorted({l['dataset'] for l, _ in jobs_}, key=DATASETS.index)
  fig, axes = plt.subplots(len(datasets), len(HELD_OUT_PANELS),
                           figsize=(3.3 * len(HELD_OUT_PANELS), 2.8 * len(datasets)), squeeze=False)
  for labels, ms in jobs_:
    r = datasets.index(labels['dataset'])
    color = f'C{[row.key for row in ROWS].index(labels["row"])}'
    for c, (term, title) in enumerate(HELD_OUT_PANELS):
      ax = axes[r, c]
      for split, style in (('train', '-'), ('test', '--')):
        xs, ys = rep.epoch_series(ms, f'{split}_{term}')
        ax.plot(xs, ys.mean(0), style, marker='o', markersize=3, color=color,
                label=f'{labels["label"]} {split}')
      ax.set_title(f'{compare.DATA_NAMES[labels["dataset"]]}: {title}', fontsize=8)
      ax.set_xlabel('epoch')
  axes[0, 0].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return True


def report(results: dict, figures: pathlib.Path) -> str:
  p = results['protocol']
  return compare.section(
      results, figures, table=compare.score_table(results, label_accuracy=True),
      loss_fields=('d_adv', 'g_adv', 'd_class', 'g_class'),
      notes=(f'Length: {p["length"]}, batch {p["batch_size"]}. Scores: {p["final"]}. '
             'Published (seed 001, CIFAR-10, 500 epochs, best of two runs, 1,507 samples): '
             'Inception Score VT-GAN 4.14 ± 0.20, AC-GAN 4.02 ± 0.18 (the other runs 4.13 and '
             '4.01); the original AC-GAN 8.25 ± 0.07 on 50,000 samples. The seed gives no '
             'MNIST or Fashion-MNIST numbers.'),
      extra=('held_out', _plot_held_out,
             f'Per epoch, on fixed train (solid) and test (dashed) batches: {p["held_out"]}.'))


EXPERIMENT = Experiment('seed001', 'Seed 001: AC-GAN against VT-GAN', jobs, protocol, report)
