"""stacked_mnist: modes of 1,000 covered by DCGAN, MMD-DCGAN and PacDCGAN2 (VEEGAN setting).

Stacked MNIST (configs/stacked_mnist.py, jaxgan/data/stacked.py) has 1,000 equally
likely modes, the digit triples of its three channels. A model's score is the number
of triples among 26,000 samples, each channel read by jaxgan's MNIST classifier, and
KL(p_gen || uniform over 1,000). The VEEGAN/PacGAN table reports DCGAN 99 modes (KL
3.4), VEEGAN 150 (2.95), PacDCGAN2 1,000 (0.06) and WGAN-GP 959 (0.73). Rows:

- DCGAN: configs/stacked_mnist.py as it is (batch 64, G twice per D update);
- MMD-DCGAN: the same with eta * MMD^2 in G's loss (eta 10, seed 000's term);
- PacDCGAN2: D judges pairs; batch 128 (64 packs) and twice the epochs, so that it
  takes the same number of steps as the other rows, as in the paper.

Full scale: the paper's 50 epochs of 128,000 images (100,000 steps), 3 seeds. CPU
scale: 2 epochs of the first 12,800 images (400 steps), one seed, 2,600 monitor samples.
"""
from __future__ import annotations

import pathlib

from jaxgan.experiments import compare
from jaxgan.experiments import report as rep
from jaxgan.experiments.compare import Row
from jaxgan.experiments.runner import Experiment

CONFIG = 'configs/stacked_mnist.py'
ROWS = (Row('dcgan', 'DCGAN', CONFIG),
        Row('mmd', 'MMD-DCGAN (eta 10)', CONFIG, {'train.eta': 10.0}),
        Row('pac2', 'PacDCGAN2', CONFIG, {'model.pack': 2}))
SCALES = {
    'full': dict(seeds=(0, 1, 2), epochs=50, images=None, monitor=26_000, log_every=500),
    'cpu': dict(seeds=(0,), epochs=2, images=12_800, monitor=2_600, log_every=50),
}
# VEEGAN / PacGAN (Lin et al. 2018, table 3), as SPEC "Reference numbers" quotes it.
PUBLISHED = (('DCGAN', 99, 3.4), ('VEEGAN', 150, 2.95), ('PacDCGAN2', 1000, 0.06),
             ('WGAN-GP', 959, 0.73))


def jobs(scale: str):
  s = SCALES[scale]
  out = []
  for row in ROWS:
    m = row.overrides.get('model.pack', 1)
    # PacGAN-m keeps 64 packs a batch and the paper's step count: batch 64 m over the
    # same images takes 1/m of the steps an epoch, so it trains m times the epochs.
    budget = {'train.num_epochs': s['epochs'] * m, 'data.batch_size': 64 * m,
              'data.limit': s['images'], 'eval.monitor_num': s['monitor'],
              'log_every_steps': s['log_every']}
    out += compare.jobs((row,), ('stacked_mnist',), s['seeds'], budget)
  return out


def protocol(scale: str) -> dict:
  s = SCALES[scale]
  images = f'the first {s["images"]:,}' if s['images'] else 'all 128,000'
  return {
      'question': 'does eta * MMD^2 or packing stop DCGAN from dropping modes of Stacked MNIST?',
      'length': (f'{s["epochs"]} epochs of {images} stacked images at batch 64 '
                 '(PacDCGAN2: batch 128 = 64 packs for twice the epochs: the same steps)'),
      'seeds': list(s['seeds']), 'reduced': scale != 'full',
      'monitor': f'each epoch: modes and KL of {s["monitor"]:,} samples',
      'final': ('--mode=eval: 26,000 samples of the fixed evaluation noise, each channel '
                "classified by jaxgan's MNIST classifier; modes covered of 1,000 and "
                'KL(p_gen || uniform)'),
  }


def _plot_modes(results: dict, path: pathlib.Path) -> bool:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
  drew = False
  for i, (labels, ms) in enumerate(compare.groups(results)):
    if not ms or not ms[0]['per_epoch']:
      continue
    for ax, field in zip(axes, ('modes_covered', 'mode_kl_uniform')):
      xs, ys = rep.epoch_series(ms, field, x='step')
      ax.plot(xs, ys.mean(0), marker='o', color=f'C{i}', label=labels['label'])
      ax.set_xlabel('step')
      ax.set_title({'modes_covered': 'modes covered (of 1,000), monitor samples',
                    'mode_kl_uniform': 'KL to uniform (nats)'}[field], fontsize=9)
    drew = True
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return drew


def report(results: dict, figures: pathlib.Path) -> str:
  scale = 'full' if results['scale'] == 'full' else 'reduced'
  header = ['row', 'scale', 'steps', 'batch', 'seeds', 'modes (of 1,000)', 'KL to uniform']
  rows = []
  for job in results['jobs'].values():
    ms = compare.trained(job)
    evals = [m['eval'] for m in ms if 'eval' in m]
    rows.append([job['labels']['label'], scale, ms[0]['steps'] if ms else '-',
                 job.get('batch_size', '-'), len(ms),
                 rep.mean_std([e['modes_covered'] for e in evals], 1),
                 rep.mean_std([e['mode_kl_uniform'] for e in evals], 2)])
  rows += [[f'VEEGAN/PacGAN paper: {name}', 'published', '-', '64 packs', '-', modes, kl]
           for name, modes, kl in PUBLISHED]
  p = results['protocol']
  return compare.section(
      results, figures, table=rep.table(header, rows), loss_fields=('d_loss', 'g_loss', 'mmd2'),
      notes=(f'Length: {p["length"]}. Scores: {p["final"]}. Published rows: PacGAN (Lin et al. '
             '2018), table 3, the VEEGAN setting (the DCGAN-tensorflow networks, larger than '
             "jaxgan's 28x28 DCGAN; the authors' Keras classifier)."),
      extra=('modes', _plot_modes, f'Per epoch ({p["monitor"]}):'))


EXPERIMENT = Experiment('stacked_mnist', 'Stacked MNIST: 1,000 modes', jobs, protocol, report)
