r"""Goodfellow et al.'s GAN on MNIST (SPEC S1; seeds 002, 004): MLP G, maxout MLP D.

  python main.py --config=configs/vanilla_gan.py --workdir=runs/vanilla
  python main.py --config=configs/vanilla_gan.py --workdir=runs/minimax --config.train.g_loss=minimax
  python main.py --config=configs/vanilla_gan.py --workdir=runs/k5 --config.train.n_disc=5

G: z(100) -> 1200 ReLU -> 1200 ReLU -> 784 tanh. D: 2 x maxout(240 units x 5 pieces)
-> logit, with dropout before each layer: 0.2 on the input pixels, 0.5 on the hidden
units (Goodfellow et al.'s pylearn2 model keeps 0.8 and 0.5). train.n_disc is
Goodfellow's k (D steps per G step).
"""
import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.system = 'vanilla_gan'
  config.model.update(name='mlp_maxout', gen_hidden=(1200, 1200), maxout_units=240,
                      maxout_pieces=5, dropout=0.5, input_dropout=0.2,
                      gen_norm='none')                    # none | batch | virtual (VBN, S9)
  # Goodfellow used SGD with momentum; Adam(2e-4, 0.5) trains this pair more reliably.
  # SGD: --config.optim.name=sgd --config.optim.learning_rate=0.1 --config.optim.momentum=0.5
  config.optim.learning_rate = 2e-4
  config.train.num_epochs = 50
  config.train.g_loss = 'non_saturating'                  # or minimax (log(1 - D(G(z))))
  return config
