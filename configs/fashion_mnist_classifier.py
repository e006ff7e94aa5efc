r"""The Fashion-MNIST feature network (see configs/mnist_classifier.py).

  python main.py --config=configs/fashion_mnist_classifier.py --workdir=runs/fashion_classifier
"""
import ml_collections

from configs import mnist_classifier


def get_config() -> ml_collections.ConfigDict:
  config = mnist_classifier.get_config()
  config.data.name = 'fashion_mnist'
  return config
