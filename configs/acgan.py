r"""AC-GAN on MNIST (SPEC S7; Odena et al. 2017, seed 001): class-conditional G, D with a
source head and a class head.

  python main.py --config=configs/acgan.py --workdir=runs/acgan
  python main.py --config=configs/acgan.py --workdir=runs/acgan_f --config.data.name=fashion_mnist

D maximises L_S + L_C and G maximises L_C - L_S (both as cross-entropies here). The
networks are seed 001's tables (nets/acgan.py), for 32x32 inputs: MNIST is padded to 32.
"""
import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.system = 'acgan'
  config.data.pad_to = 32
  config.data.batch_size = 100
  config.model = dict(name='acgan', latent_dim=100, noise='normal', compute_dtype='float32',
                      num_classes=10, gen_width=512, disc_width_mult=1.0,
                      minibatch_kernels=0, minibatch_dim=5, upconv_impl='subpixel',
                      gen_norm='batch')                   # batch | virtual (VBN, S9)
  config.train.num_epochs = 30
  return config
