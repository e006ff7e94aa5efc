r"""The 2-D toy GAN of seed 004 (SPEC S2) on a ring of 8 or a grid of 25 Gaussians.

  python main.py --config=configs/toy2d.py --workdir=runs/ring
  python main.py --config=configs/toy2d.py --workdir=runs/grid --config.data.name=grid25

G: Linear(8, 100) -> ReLU -> Linear(100, 2); D: Linear(2, 100) -> ReLU -> Linear(100, 1);
Adam 1e-3, batch 10. Each epoch writes a scatter plot of 2,500 samples over the true
means and logs the PacGAN mode statistics (modes covered, fraction high quality).

Two departures from the seed's loop, kept because they are the common practice this
config is compared under: G minimises the non-saturating -E[log D(G(z))] (the seed:
E[log(1 - D(G(z)))]), and both networks update on every minibatch (the seed: G on even
minibatches, D on odd ones). configs/toy2d_seed004.py is the seed's letter.
"""
import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.system = 'toy2d'
  config.data.name = 'ring8'                               # ring8 | grid25
  config.data.batch_size = 10
  config.data.toy_size = 20_000                            # 2,000 steps per epoch
  config.model.update(name='toy', latent_dim=8, hidden=100, gen_norm='none')
  config.optim.update(learning_rate=1e-3, b1=0.9)
  config.train.num_epochs = 10
  config.train.g_loss = 'non_saturating'
  config.log_every_steps = 500
  return config
