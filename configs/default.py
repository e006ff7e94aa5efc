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
  # Every model field, with its default; a network reads only its own (jaxgan/nets/__init__.py).
  config.model = dict(
      name='',                     # dcgan28 | dcgan | acgan | mlp_maxout | toy | toy_pacgan
      latent_dim=100,              # z's dimension
      noise='normal',              # z ~ N(0, I) | uniform: U[-1, 1]
      compute_dtype='float32',     # float32 | bfloat16 (mixed precision; parameters stay float32)
      num_classes=0,               # > 0: class-conditional G and a class head in D (AC-GAN)
      pack=1,                      # > 1: D judges packs of this many samples (PacGAN)
      gen_norm='batch',            # G's normalisation: batch | virtual (VBN, S9) | none (nets.GEN_NORMS)
      disc_norm='batch',           # dcgan28, dcgan: batch | layer | none (layer for gradient penalties)
      upconv_impl='subpixel',      # dcgan28, dcgan, acgan: subpixel | phases (no cropped outputs) | transpose (same function)
      conv_impl='auto',            # dcgan28, dcgan: auto | xla | matmul | matmul_autodiff | hybrid (nets/conv_ops.py)
      bn_impl='autodiff',          # dcgan28, dcgan, acgan: BatchNorm's gradient, autodiff | vjp (hand-written; nets/norm_ops.py)
      feature_dim=20,              # dcgan28: D's penultimate width ("latent dimension" of seed 000)
      gen_width=256,               # dcgan28: G 7x7xgen_width -> 14x14x(gen_width/2); acgan: G's first width
      disc_width=64,               # dcgan28: D 14x14xdisc_width -> 7x7x(2 disc_width)
      ngf=64, ndf=64,              # dcgan: G's and D's base widths
      kernel_size=4,               # dcgan: 4 (PyTorch example) | 5 (seed 003)
      disc_width_mult=1.0,         # acgan: D's widths times this
      minibatch_kernels=0,         # acgan, toy_pacgan: > 0 adds minibatch discrimination to D
      minibatch_dim=5,             # its kernel dimension
      gen_hidden=(1200, 1200),     # mlp_maxout: G's hidden widths
      maxout_units=240,            # mlp_maxout, toy_pacgan: maxout units per layer
      maxout_pieces=5,             # ... and pieces per unit
      dropout=0.5,                 # mlp_maxout: D's dropout rate on its hidden units
      input_dropout=0.2,           # mlp_maxout: ... and on its input pixels (Goodfellow's 0.8 kept)
      leaky_slope=0.2,             # acgan: LeakyReLU's negative slope (seed 001 writes 0.01)
      norm_first=True,             # acgan: BatchNorm before the activation | False: after (seed 001)
      hidden=100,                  # toy, toy_pacgan: hidden width
      gen_layers=4,                # toy_pacgan: G's hidden layers
      disc_layers=3)               # toy_pacgan: D's maxout layers
  config.optim = dict(
      name='adam',                                        # adam | rmsprop | sgd (with momentum)
      learning_rate=2e-4, b1=0.5, b2=0.999, momentum=0.0)
  # The weights of the step's loss terms, the real label and the class smoothing are
  # traced values a sweep may vary (jaxgan/terms.py TRACED); every other field shapes the program.
  config.train = dict(
      num_epochs=30,
      num_steps=config_dict.placeholder(int),             # stop at this global step (smoke runs)
      steps_per_call=0,                                   # steps per compiled call (lax.scan); 0: 1 on CPU, 16 on GPU/TPU
      n_disc=1,                                           # D updates per step (WGAN n_critic, vanilla k)
      n_gen=1,                                            # G updates per step (seed 003: 2)
      alternate=False,                                    # True: G's update on even steps only, D's on odd (seed 004)
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
      r1_weight=0.0,                                      # R1 gamma: gamma/2 E|grad D(x_real)|^2 (Mescheder 2018)
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
  config.tensorboard = True                               # event files in W/tensorboard/ (jaxgan/board.py)
  config.checkpoint = dict(max_to_keep=3)
  return config
