r"""The MMD-regularised DCGAN under seed 000's literal protocol (sections 4.2-4.4).

  python main.py --config=configs/mmd_dcgan_seed000.py --workdir=runs/seed000 --config.train.eta=10

configs/mmd_dcgan.py is the SPEC's reading of seed 000 (non-saturating G loss, MMD^2 on
G's own fake batch, fresh noise every step, the U-statistic). This config follows the
seed's text where it says otherwise:

  * G minimises the saturating minimax loss log(1 - D(G(z))) plus eta * MMD^2
    (section 4.2's algorithm);
  * MMD^2 compares D's penultimate features of the D step's fake batch with those of the
    real batch (the algorithm extracts them right after D's update, before G draws its
    own noise); G regenerates that batch from the same noise, so the term has a gradient;
  * the 600 minibatches of an epoch each have their own noise seed, and the same 600
    seeds are used again every epoch (section 4.4): train.noise_period = 600 steps, one
    MNIST epoch at batch 100 (set it to the steps per epoch if you change the batch or
    data.limit);
  * MMD^2 is the estimator printed in section 4.1: sums over i != j, divided by C(n, 2)
    (about twice the U-statistic).

The kernel stays the mixture of Gaussians exp(-d^2 / (2 sigma^2)), sigma in
{1, 2, 4, 8, 16}: the seed writes exp(-d^2) and "sigma = [1, 2, 4, 8, 16]" without saying
where sigma enters.
"""
import ml_collections

from configs import mmd_dcgan


def get_config() -> ml_collections.ConfigDict:
  config = mmd_dcgan.get_config()
  config.system = 'mmd_dcgan_seed000'
  config.train.g_loss = 'minimax'
  config.train.mmd_fake = 'd_step'
  config.train.noise_period = 600
  config.train.mmd_estimator = 'seed000'
  return config
