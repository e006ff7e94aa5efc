r"""The 64x64 DCGAN (SPEC S3a; Radford et al. 2015, as in the PyTorch examples).

  python main.py --config=configs/dcgan.py --workdir=runs/dcgan                     # MNIST at 64x64 RGB
  python main.py --config=configs/dcgan.py --workdir=runs/celeba --config.data.name=celeba \
      --config.data.dir=/path/to/celeba --config.data.crop_size=108
  python main.py --config=configs/dcgan.py --workdir=runs/cufs --config.data.name=image_folder \
      --config.data.dir=/path/to/sketches

nz 100, ngf = ndf = 64, 4x4 kernels, BN, ReLU / LeakyReLU(0.2), weights N(0, 0.02),
Adam 2e-4 beta1 0.5, BCE with the -log D trick. The default data, `mnist64`, is MNIST
resized to 64x64 RGB: the offline fallback when no CelebA or sketch folder is at hand.
"""
import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.system = 'dcgan'
  config.data.name = 'mnist64'
  config.data.batch_size = 64
  config.model.update(name='dcgan', ngf=64, ndf=64, kernel_size=4)
  config.train.num_epochs = 5
  config.sample.num = 64
  return config
