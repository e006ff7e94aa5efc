r"""MMD-regularised DCGAN on MNIST (seed 000; docs/spec.md system S4): the main job.

  python main.py --config=configs/mmd_dcgan.py --workdir=runs/mmd --config.train.eta=10

D is updated by BCE; G by BCE_G + eta * MMD^2 between D's penultimate (feature_dim-wide)
features of a fresh fake batch and the real batch. eta=0 is plain DCGAN; the seed
tried eta in {5, 10, 15} (10 best) and feature_dim in {10, 20, 30}.
"""
import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.system = 'mmd_dcgan'
  config.model = dict(
      name='dcgan28',
      latent_dim=100,                                     # z ~ N(0, I)
      noise='normal',
      feature_dim=20,                                     # D's penultimate width ("latent dimension")
      gen_width=256,                                      # G: 7x7xgen_width -> 14x14x(gen_width/2)
      disc_width=64,                                      # D: 14x14xdisc_width -> 7x7x(2 disc_width)
      disc_norm='batch',                                  # batch | layer | none
      upconv_impl='subpixel',                             # subpixel | transpose (same function)
      conv_impl='auto',                                   # auto | xla | matmul | matmul_autodiff | hybrid (nets/conv_ops.py)
      gen_norm='batch',                                   # batch | virtual (VBN, S9)
      compute_dtype='float32',
      pack=1)                                             # > 1: D judges packs of this many (PacGAN)
  config.train.eta = 10.0
  return config
