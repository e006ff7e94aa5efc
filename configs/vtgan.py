r"""VT-GAN on MNIST (SPEC S8; seed 001): AC-GAN + minibatch discrimination + class-label
smoothing, uniform noise, real and fake batches fed to D separately.

  python main.py --config=configs/vtgan.py --workdir=runs/vtgan
  python main.py --config=configs/vtgan.py --workdir=runs/vtgan_c --config.data.name=cifar10

Seed 001's "MINIBATCH 1D CONVOLUTION 30" is read as 30 minibatch kernels of dimension 5
(Salimans et al.'s T tensor; see BUILD_NOTES.md). Class targets are smoothed to eps/k and
1 - (k-1) eps / k with eps = 0.1.
"""
import ml_collections

from configs import acgan


def get_config() -> ml_collections.ConfigDict:
  config = acgan.get_config()
  config.system = 'vtgan'
  config.model.noise = 'uniform'
  config.model.minibatch_kernels = 30
  config.model.minibatch_dim = 5
  config.train.class_smoothing = 0.1
  config.train.disc_batches = 'separate'
  return config
