r"""PacGAN's 2-D experiment: a ring of 8 or a grid of 25 Gaussians, with or without packing.

  python main.py --config=configs/toy2d_pacgan.py --workdir=runs/pac_ring
  python main.py --config=configs/toy2d_pacgan.py --workdir=runs/pac_grid --config.data.name=grid25
  python main.py --config=configs/toy2d_pacgan.py --workdir=runs/pac2_ring \
      --config.model.pack=2 --config.data.batch_size=200 --config.train.num_epochs=800

Lin, Khetan, Fanti, Oh, "PacGAN: The power of two samples in generative adversarial
networks", NeurIPS 2018, and their code (github.com/fjxmlzn/PacGAN,
synthetic_data_experiments/2DRing_GAN&PacGAN and 2DGrid_GAN&PacGAN):
  G: z ~ N(0, I_2) -> 4 x [Linear(400, no bias) -> BatchNorm -> ReLU] -> Linear(2)
  D: 3 x maxout(200 units, 5 pieces) -> Linear(1) (logit); dropout off, as in their code
  weights N(0, 0.02), biases 0; Adam lr 1e-4, b1 0.8, b2 0.999; batch 100; 100,000
  training points; 400 epochs (1,000 steps each at batch 100).
Their batch is 100 *packs*, each of m fresh samples, and an epoch is 1,000 steps
whatever m; here data.batch_size counts samples, so PacGAN-m is pack=m with
batch_size=100*m and num_epochs=400*m (the last command above). One difference: their
G draws each of a pack's m samples in its own BatchNorm batch of 100, ours draws the
100*m samples as one batch.
model.minibatch_kernels > 0 adds minibatch discrimination (Salimans et al. 2016) to D;
it needs --config.train.disc_batches=separate.
"""
import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.system = 'toy2d_pacgan'
  config.data.name = 'ring8'                               # ring8 | grid25
  config.data.batch_size = 100
  config.data.toy_size = 100_000                           # 1,000 steps per epoch
  config.model.update(
      name='toy_pacgan', latent_dim=2,
      hidden=400, gen_layers=4,                           # G: 4 x (Linear, BatchNorm, ReLU)
      maxout_units=200, maxout_pieces=5, disc_layers=3)   # D: 3 maxout layers
  config.optim.update(learning_rate=1e-4, b1=0.8)
  config.train.num_epochs = 400
  config.train.g_loss = 'non_saturating'
  config.log_every_steps = 1000
  return config
