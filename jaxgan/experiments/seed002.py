"""seed002: the maxout GAN plain, then with each of three Improved-GAN tricks (seed 002).

Seed 002 trains Goodfellow et al.'s MLP GAN on MNIST and finds its training unstable.
It then adds feature matching, one-sided label smoothing (D's real target 0.9) and
virtual batch norm (with WGAN's critic, clipping and RMSProp), and reports the training
"stable". It shows loss curves and samples, and no score. jaxgan adds one trick at a
time to the same network and schedule (configs/vanilla_gan.py: G 1200-1200 ReLU, D two
maxout layers of 240 x 5), so each row differs from the plain GAN in one thing:

- feature matching: G minimises |E f(real) - E f(fake)|^2 on D's last hidden layer
  instead of its adversarial loss (Salimans et al. 2016, section 3.1);
- one-sided label smoothing: D's target for real images is 0.9;
- virtual batch norm: G's hidden layers are normalised with the statistics of a fixed
  reference batch (and the example itself).

Full scale: 50 epochs, 3 seeds. CPU scale: 5 epochs, 2 seeds.
"""
from __future__ import annotations

import pathlib

from jaxgan.experiments import compare
from jaxgan.experiments.compare import Row
from jaxgan.experiments.runner import Experiment

CONFIG = 'configs/vanilla_gan.py'
ROWS = (
    Row('plain', 'maxout GAN', CONFIG),
    Row('fm', '+ feature matching', CONFIG,
        {'train.feature_matching': 1.0, 'train.adversarial_weight': 0.0}),
    Row('smooth', '+ one-sided label smoothing (0.9)', CONFIG, {'train.real_label': 0.9}),
    Row('vbn', '+ virtual batch norm', CONFIG, {'model.gen_norm': 'virtual'}),
)
SCALES = {
    'full': dict(seeds=(0, 1, 2), epochs=50, log_every=100),
    'cpu': dict(seeds=(0, 1), epochs=5, log_every=50),
}


def jobs(scale: str):
  s = SCALES[scale]
  budget = {'train.num_epochs': s['epochs'], 'log_every_steps': s['log_every']}
  return compare.jobs(ROWS, ('mnist',), s['seeds'], budget)


def protocol(scale: str) -> dict:
  s = SCALES[scale]
  return {
      'question': ('what does each Improved-GAN trick (feature matching, one-sided label '
                   'smoothing, virtual batch norm) change in the maxout GAN? (seed 002)'),
      'length': f'{s["epochs"]} epochs of MNIST (60,000 images), batch 100',
      'seeds': list(s['seeds']), 'reduced': scale != 'full',
      'final': "--mode=eval: 10,000 samples; score, FID and KID in jaxgan's MNIST classifier",
  }


def report(results: dict, figures: pathlib.Path) -> str:
  p = results['protocol']
  return compare.section(
      results, figures, table=compare.score_table(results),
      loss_fields=('d_loss', 'g_loss', 'feature_matching'),
      notes=(f'Length: {p["length"]}; every row the same schedule. Scores: {p["final"]}. '
             'Published (seed 002, qualitative): the plain GAN trains unstably; with feature '
             'matching, label smoothing and VBN (and a WGAN critic) training is "stable". '
             'Salimans et al. (2016) report these tricks on MNIST only as semi-supervised '
             'error rates, not as sample scores.'))


EXPERIMENT = Experiment('seed002', 'Seed 002: the maxout GAN and three Improved-GAN tricks',
                        jobs, protocol, report)
