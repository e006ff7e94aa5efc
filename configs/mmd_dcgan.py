r"""MMD-regularised DCGAN on MNIST (seed 000; SPEC.md system S4): the main job.

  python main.py --config=configs/mmd_dcgan.py --workdir=runs/mmd --config.train.eta=10

D is updated by BCE; G by BCE_G + eta * MMD^2 between D's penultimate (feature_dim-wide)
features of a fresh fake batch and the real batch. eta=0 is plain DCGAN; the seed
tried eta in {5, 10, 15} (10 best) and feature_dim in {10, 20, 30}.
"""
import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.system = 'mmd_dcgan'
  config.seed = 0                                         # init, noise and data order
  config.data = dict(
      name='mnist',                                       # mnist | fashion_mnist
      dir=config_dict.placeholder(str),                   # else $JAXGAN_DATA_DIR/<name>/
      batch_size=100,                                     # global batch
      limit=config_dict.placeholder(int))                 # use only the first N training images
  config.model = dict(
      name='dcgan28',
      latent_dim=100,                                     # z ~ N(0, I)
      feature_dim=20,                                     # D's penultimate width ("latent dimension")
      gen_width=256,                                      # G: 7x7xgen_width -> 14x14x(gen_width/2)
      disc_width=64,                                      # D: 14x14xdisc_width -> 7x7x(2 disc_width)
      upconv_impl='subpixel',                             # subpixel | transpose (same function)
      compute_dtype='float32')
  config.optim = dict(learning_rate=2e-4, b1=0.5, b2=0.999)  # Adam, both networks
  config.train = dict(
      num_epochs=30,
      num_steps=config_dict.placeholder(int),             # stop at this global step (smoke runs)
      eta=10.0,
      mmd_sigmas=(1.0, 2.0, 4.0, 8.0, 16.0),
      mmd_estimator='unbiased',                           # unbiased | biased
      gen_loss='non_saturating',                          # non_saturating | minimax
      real_label=1.0)                                     # < 1: one-sided label smoothing
  config.sample = dict(num=100, bn='batch')               # grid of fixed-noise samples; bn: batch | running
  config.log_every_steps = 100
  config.checkpoint = dict(max_to_keep=3)
  return config
