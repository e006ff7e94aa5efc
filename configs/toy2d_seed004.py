r"""Seed 004's 2-D toy GAN to the letter (SPEC S2): configs/toy2d.py with the seed's loop.

  python main.py --config=configs/toy2d_seed004.py --workdir=runs/ring004

The seed's PyTorch loop walks the data in minibatches of 10 and, on minibatch t, updates
G alone when t is even and D alone when t is odd; G minimises the saturating loss
E[log(1 - D(G(z)))], D minimises -E[log D(x)] - E[log(1 - D(G(z)))]. Here step t is
minibatch t (train.alternate), and an epoch has an even number of minibatches (20,000
points / 10), so the parity of the global step is the seed's parity of t.
"""
import ml_collections

from configs import toy2d


def get_config() -> ml_collections.ConfigDict:
  config = toy2d.get_config()
  config.system = 'toy2d_seed004'
  config.train.g_loss = 'minimax'                          # log(1 - D(G(z))), saturating
  config.train.alternate = True                            # G on even steps, D on odd ones
  # Each network is updated every other step: twice the steps give each the updates
  # configs/toy2d.py's 10 epochs give it.
  config.train.num_epochs = 20
  return config
