r"""Seed 003's DCGAN variant (SPEC S3b): 5x5 kernels, D once and G twice per iteration.

  python main.py --config=configs/dcgan_5x5.py --workdir=runs/dcgan5

G: dense 4x4x512 + BN + ReLU, then four 5x5 stride-2 transposed convs (256, 128, 64, C)
with tanh; D: four 5x5 stride-2 convs (64, 128, 256, 512), BN on all but the first,
LeakyReLU, dense 1. Batch 64, Adam 2e-4. Both G updates run inside one compiled step.
"""
import ml_collections

from configs import dcgan


def get_config() -> ml_collections.ConfigDict:
  config = dcgan.get_config()
  config.system = 'dcgan_5x5'
  config.model.kernel_size = 5
  config.train.n_gen = 2
  return config
