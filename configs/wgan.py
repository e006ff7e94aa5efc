r"""WGAN with weight clipping on MNIST (SPEC S5; Arjovsky et al. 2017, seeds 002 and 003).

  python main.py --config=configs/wgan.py --workdir=runs/wgan
  python main.py --config=configs/wgan.py --workdir=runs/wgan003 --config.train.clip=0.0015 \
      --config.optim.learning_rate=0.0015                  # seed 003's setting

Critic without sigmoid, loss E[f(fake)] - E[f(real)], every critic weight clipped to
[-c, c] after each critic update, RMSProp 5e-5, n_critic 5, batch 64. The five critic
updates and the generator update run inside one compiled step (lax.scan).
"""
import ml_collections

from configs import mmd_dcgan


def get_config() -> ml_collections.ConfigDict:
  config = mmd_dcgan.get_config()
  config.system = 'wgan'
  config.data.batch_size = 64
  config.optim = dict(name='rmsprop', learning_rate=5e-5, b1=0.5, b2=0.999, momentum=0.0)
  config.train.update(eta=0.0, d_loss='wasserstein', g_loss='wasserstein', clip=0.01, n_disc=5,
                      num_epochs=50)
  return config
