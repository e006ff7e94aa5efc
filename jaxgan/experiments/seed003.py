"""seed003: DCGAN (D once, G twice), WGAN and WGAN-GP on MNIST at one budget (seed 003).

Seed 003 trains the three with batch 64 for the same number of iterations (5,000 on
CUFS, 10,000 on CelebA). One iteration is one D update and two G updates for DCGAN,
and five critic updates and one G update for WGAN and WGAN-GP. Its settings: Adam 2e-4
for DCGAN; RMSProp 0.0015 with clipping at 0.0015 for WGAN; 2e-4 with LayerNorm in the
critic for WGAN-GP. The seed shows loss curves and samples. It claims that WGAN-GP
trains more stably and gives clearer samples than DCGAN, and that WGAN does worse.

Full scale: the seed's 5x5 networks (configs/dcgan_5x5.py, 64x64) on MNIST resized to
64x64 grey, 10,000 iterations, 3 seeds. CPU scale: jaxgan's 28x28 MNIST networks (the
S4 nets of configs/mmd_dcgan.py at eta 0), 500 iterations, one seed, because one
iteration of the 64x64 networks costs seconds on a 2-core CPU.
"""
from __future__ import annotations

import pathlib

from jaxgan.experiments import compare
from jaxgan.experiments.compare import Row
from jaxgan.experiments.runner import Experiment

_WGAN = {'train.d_loss': 'wasserstein', 'train.g_loss': 'wasserstein', 'train.n_disc': 5,
         'train.n_gen': 1}
_WGAN_003 = {'train.clip': 0.0015, 'optim.name': 'rmsprop', 'optim.learning_rate': 0.0015}
_GP = {'train.gp_weight': 10.0, 'train.clip': 0.0, 'model.disc_norm': 'layer',
       'optim.name': 'adam', 'optim.learning_rate': 2e-4, 'optim.b1': 0.5, 'optim.b2': 0.9}
ROWS = {
    'full': (
        Row('dcgan', 'DCGAN 5x5 (D1:G2)', 'configs/dcgan_5x5.py', {'data.channels': 1}),
        Row('wgan', 'WGAN (clip 0.0015)', 'configs/dcgan_5x5.py',
            {'system': 'wgan', 'data.channels': 1, **_WGAN, **_WGAN_003}),
        Row('wgan_gp', 'WGAN-GP (lambda 10)', 'configs/dcgan_5x5.py',
            {'system': 'wgan_gp', 'data.channels': 1, **_WGAN, **_GP}),
    ),
    'cpu': (
        Row('dcgan', 'DCGAN (D1:G2)', 'configs/mmd_dcgan.py',
            {'system': 'dcgan_d1g2', 'train.eta': 0.0, 'train.n_gen': 2}),
        Row('wgan', 'WGAN (clip 0.0015)', 'configs/wgan.py', _WGAN_003),
        Row('wgan_gp', 'WGAN-GP (lambda 10)', 'configs/wgan_gp.py', {}),
    ),
}
SCALES = {
    'full': dict(data='mnist64', seeds=(0, 1, 2), steps=10_000, log_every=100),
    'cpu': dict(data='mnist', seeds=(0,), steps=500, log_every=25),
}


def jobs(scale: str):
  s = SCALES[scale]
  budget = {'train.num_steps': s['steps'], 'data.batch_size': 64,
            'log_every_steps': s['log_every']}
  return compare.jobs(ROWS[scale], (s['data'],), s['seeds'], budget)


def protocol(scale: str) -> dict:
  s = SCALES[scale]
  return {
      'question': ('do WGAN-GP and WGAN train more stably than DCGAN (D1:G2) at one budget, '
                   'and which gives the better samples? (seed 003)'),
      'budget': f'{s["steps"]} iterations of batch 64 for every row (one iteration: D1:G2 '
                'for DCGAN, 5 critic updates and 1 G update for WGAN and WGAN-GP)',
      'data': s['data'], 'seeds': list(s['seeds']), 'reduced': scale != 'full',
      'networks': ('the 5x5 64x64 DCGAN of seed 003' if scale == 'full'
                   else "jaxgan's 28x28 MNIST DCGAN (S4 nets)"),
      'final': '--mode=eval: 10,000 samples; score, FID and KID in the MNIST classifier',
  }


def report(results: dict, figures: pathlib.Path) -> str:
  p = results['protocol']
  return compare.section(
      results, figures, table=compare.score_table(results), loss_fields=('d_loss', 'g_loss', 'gp'),
      notes=(f'Budget: {p["budget"]}. Networks: {p["networks"]}. Scores: {p["final"]}. '
             'Published (seed 003, on CUFS and CelebA, qualitative): WGAN-GP gives clearer '
             'samples and steadier losses than DCGAN; WGAN with clipping does worse than both '
             'on CelebA. The seed reports no score and did not train on MNIST.'))


EXPERIMENT = Experiment('seed003', 'Seed 003: DCGAN, WGAN and WGAN-GP at one budget',
                        jobs, protocol, report)
