r"""The MNIST feature network for Inception-style scores, FID and KID (jaxgan/metrics).

  python main.py --config=configs/mnist_classifier.py --workdir=runs/mnist_classifier

A LeNet-like CNN (conv16-pool-conv32-pool-dense128-dense10), trained with Adam and a cosine
learning-rate decay; no data augmentation (it reaches >= 99% test accuracy without). The
dense-128 layer gives the features, the softmax the class probabilities.
"""
import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.system = 'classifier'
  config.seed = 0                                         # init, dropout and data order
  config.data = dict(
      name='mnist',                                       # mnist | fashion_mnist
      dir=config_dict.placeholder(str),                   # else $JAXGAN_DATA_DIR/<name>/
      batch_size=128,
      limit=config_dict.placeholder(int))                 # use only the first N training images
  config.model = dict(
      widths=(16, 32),                                    # conv3x3 + ReLU + 2x2 max pool blocks
      features=128,                                       # penultimate width: the FID/KID features
      conv_dropout=0.1,                                   # light: 8 epochs underfit with 0.25 / 0.5
      dense_dropout=0.25)
  config.optim = dict(learning_rate=1e-3, b1=0.9, b2=0.999,
                      schedule='cosine')                  # cosine (decay to 0) | constant
  config.train = dict(
      num_epochs=8,
      num_steps=config_dict.placeholder(int))             # stop at this step (smoke runs)
  config.log_every_steps = 100
  return config
