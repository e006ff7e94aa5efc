r"""Fields shared by every jaxgan config; each configs/<system>.py starts from this.

Not a runnable experiment by itself (it has no model): see configs/mmd_dcgan.py.
"""
import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.system = ''                                      # name shown in logs
  config.seed = 0                                         # init, noise and data order
  config.data = dict(
      name='mnist',                # mnist | fashion_mnist | cifar10 | image_folder | celeba | mnist64 | ring8 | grid25
      dir=config_dict.placeholder(str),                   # else $JAXGAN_DATA_DIR/<name>/
      batch_size=100,                                     # global batch
      limit=config_dict.placeholder(int),                 # use only the first N training images
      image_size=config_dict.placeholder(int),            # resize to this (default: the dataset's own; folders 64)
      channels=config_dict.placeholder(int),              # 1 grey | 3 RGB (default: the dataset's own)
      crop_size=config_dict.placeholder(int),             # image folders: centred square crop side before resizing
      pad_to=0,                                           # > 0: pad images (with black, -1) to this side
      toy_size=100_000,                                   # ring8 / grid25: points drawn once from the mixture
      backend='files')                                    # celeba: files | tfds
  config.model = dict(name='', latent_dim=100, noise='normal', compute_dtype='float32')
  config.optim = dict(
      name='adam',                                        # adam | rmsprop | sgd (with momentum)
      learning_rate=2e-4, b1=0.5, b2=0.999, momentum=0.0)
  config.train = dict(
      num_epochs=30,
      num_steps=config_dict.placeholder(int),             # stop at this global step (smoke runs)
      n_disc=1,                                           # D updates per step (WGAN n_critic, vanilla k)
      n_gen=1,                                            # G updates per step (seed 003: 2)
      d_loss='bce',                                       # bce | wasserstein
      g_loss='non_saturating',                            # non_saturating | minimax | wasserstein
      real_label=1.0,                                     # < 1: one-sided label smoothing (S9)
      eta=0.0,                                            # weight of MMD^2 on D features (S4)
      mmd_sigmas=(1.0, 2.0, 4.0, 8.0, 16.0),
      mmd_estimator='unbiased',                           # unbiased | biased | seed000 (the seed's formula)
      mmd_fake='g_step',                                  # MMD^2 on G's fake batch | d_step: the D step's (seed 000)
      noise_period=0,                                     # > 0: reuse the noise of step s mod this (seed 000: 600)
      feature_matching=0.0,                               # weight of feature matching in G's loss (S9)
      adversarial_weight=1.0,                             # weight of G's adversarial loss
      gp_weight=0.0,                                      # WGAN-GP lambda (S6)
      clip=0.0,                                           # WGAN weight clipping c (S5)
      class_smoothing=0.0,                                # AC-GAN class-label smoothing eps (S8)
      disc_batches='grouped')                             # grouped | separate (real, then fake)
  config.sample = dict(num=100, bn='batch')               # fixed-noise grid; bn: batch | running
  config.eval = dict(                                     # --mode=eval and the collapse monitor
      num_samples=10_000,                                 # generated samples scored by --mode=eval
      reference_split='test',                             # real images FID/KID compare against
      reference_num=10_000,
      splits=10,                                          # Inception-style score: mean/std over splits
      kid_subsets=100, kid_subset_size=1000,              # KID: Binkowski et al.'s protocol
      classifier_dir=config_dict.placeholder(str),        # 1-channel data; else $JAXGAN_CLASSIFIER_DIR/<data>/, cache
      inception_path=config_dict.placeholder(str),        # RGB data: FID Inception weights (docs/inception.md)
      monitor=True,                                       # classify fixed-noise samples every epoch
      monitor_num=1000,                                   # samples the monitor classifies
      held_out_batches=0)                                 # > 0: losses on this many train and test batches each epoch (jaxgan/held_out.py)
  config.parallel = dict(num_devices=0)                   # data parallel over this many devices (0: all)
  config.sweep = ''                                       # e.g. 'train.eta=0,5,10,15; seed=0,1' (jaxgan/sweep.py)
  config.log_every_steps = 100
  config.checkpoint = dict(max_to_keep=3)
  return config
