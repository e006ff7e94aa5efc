r"""AC-GAN on MNIST (SPEC S7; Odena et al. 2017, seed 001): class-conditional G, D with a
source head and a class head.

  python main.py --config=configs/acgan.py --workdir=runs/acgan
  python main.py --config=configs/acgan.py --workdir=runs/acgan_f --config.data.name=fashion_mnist

D maximises L_S + L_C and G maximises L_C - L_S (both as cross-entropies here). The
networks are seed 001's tables (nets/acgan.py), for 32x32 inputs: MNIST is padded to 32.

Seed 001's text writes LeakyReLU(0.01) with Batch Normalization after the activation;
these nets keep DCGAN's LeakyReLU(0.2) with BatchNorm before it, the convention of
Radford et al.'s DCGAN that the seed says its nets follow and of Odena et al.'s AC-GAN
(and the numbers in docs/results.md were measured with it). The seed's letter:
  --config.model.leaky_slope=0.01 --config.model.norm_first=False
"""
import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.system = 'acgan'
  config.data.pad_to = 32
  config.data.batch_size = 100
  config.model.update(name='acgan', num_classes=10, gen_width=512, disc_width_mult=1.0)
  config.train.num_epochs = 30
  return config
