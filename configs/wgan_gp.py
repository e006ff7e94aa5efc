r"""WGAN-GP on MNIST (SPEC S6; Gulrajani et al. 2017, seed 003).

  python main.py --config=configs/wgan_gp.py --workdir=runs/wgan_gp

Gradient penalty lambda * E[(|grad_x D(x_hat)|_2 - 1)^2] at x_hat = a x + (1 - a) G(z),
a ~ U[0, 1] per example, lambda 10; n_critic 5; Adam 2e-4 (beta1 0.5, beta2 0.9 as in
Gulrajani et al.); LayerNorm instead of BatchNorm in the critic, because the penalty
differentiates the critic one example at a time.
"""
import ml_collections

from configs import wgan


def get_config() -> ml_collections.ConfigDict:
  config = wgan.get_config()
  config.system = 'wgan_gp'
  config.model.disc_norm = 'layer'
  config.optim.update(name='adam', learning_rate=2e-4, b2=0.9)
  config.train.update(clip=0.0, gp_weight=10.0)
  return config
