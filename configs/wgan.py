r"""WGAN with weight clipping on MNIST (SPEC S5; Arjovsky et al. 2017, seeds 002 and 003).

  python main.py --config=configs/wgan.py --workdir=runs/wgan
  python main.py --config=configs/wgan.py --workdir=runs/wgan003 --config.train.clip=0.0015 \
      --config.optim.learning_rate=0.0015                  # seed 003's setting
  python main.py --config=configs/wgan.py --workdir=runs/wgan5x5 --config.model.name=dcgan \
      --config.model.kernel_size=5 --config.train.n_gen=2 --config.data.pad_to=32  # seed 003's 5x5 DCGAN

Every config declares every model field (configs/default.py), so --config.model.name
switches the network of any config; the same flags run WGAN-GP (configs/wgan_gp.py) on
the 5x5 DCGAN, with --config.model.disc_norm=layer kept for the penalty.

Critic without sigmoid, loss E[f(fake)] - E[f(real)], every critic weight clipped to
[-c, c] after each critic update, RMSProp 5e-5, n_critic 5, batch 64. The five critic
updates and the generator update run inside one compiled step (lax.scan).
"""
import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.system = 'wgan'
  config.model.name = 'dcgan28'                          # the MNIST DCGAN of configs/mmd_dcgan.py
  config.data.batch_size = 64
  config.optim.update(name='rmsprop', learning_rate=5e-5)
  config.train.update(d_loss='wasserstein', g_loss='wasserstein', clip=0.01, n_disc=5,
                      num_epochs=50)
  return config
