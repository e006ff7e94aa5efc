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
  config.model.update(name='dcgan28', feature_dim=20, gen_width=256, disc_width=64)
  config.train.eta = 10.0
  return config
