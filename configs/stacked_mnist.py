r"""DCGAN on Stacked MNIST (1,000 modes), in the VEEGAN / PacGAN setting.

  python main.py --config=configs/stacked_mnist.py --workdir=runs/stk              # DCGAN
  python main.py --config=configs/stacked_mnist.py --workdir=runs/stk_mmd \
      --config.train.eta=10                                                        # MMD-DCGAN
  python main.py --config=configs/stacked_mnist.py --workdir=runs/stk_pac2 \
      --config.model.pack=2 --config.data.batch_size=128                           # PacDCGAN2
  python main.py --config=configs/stacked_mnist.py --workdir=runs/stk --mode=eval

Each training image is three MNIST digits stacked as R, G, B (jaxgan/data/stacked.py), so
the data has 1,000 equally likely modes (digit triples). The score is the mode count:
each channel of 26,000 generated images is classified by the MNIST classifier jaxgan
ships (jaxgan/metrics/classifier.py), and eval/metrics.json reports
modes_covered (of 1,000), mode_kl_uniform = KL(p_gen || uniform over 1,000) and the
mode_counts histogram; each epoch's metrics.jsonl line has the same on eval.monitor_num
samples (26,000 here, as the paper's per-epoch log; lower it for quick runs).

The paper setting, from the PacGAN authors' code for the VEEGAN experiment
(github.com/fjxmlzn/PacGAN, stacked_MNIST_experiments/VEEGAN_experiment: config.py and
model.py): 128,000 stacked training images whose three digits are drawn uniformly with
replacement; batch 64; Adam 2e-4, beta1 0.5; z ~ U[-1, 1]^100; G updated twice per D
update (the DCGAN-tensorflow code it builds on); 50 epochs; samples drawn with G's
BatchNorm running averages; 26,000 samples scored after every epoch, KL(p_gen || uniform).
PacDCGAN-m stacks m images along the channels (3m input channels for D) with the batch
still 64 packs, hence data.batch_size=128 for m=2 (model.pack packs the same way); its
epochs stay 2,000 steps (128,000 packs), so --config.train.num_epochs=100 gives m=2 the
paper's number of steps. Those values are the defaults here, MMD off (train.eta=0).

How this differs from the papers:
  * the network is the MNIST DCGAN of configs/mmd_dcgan.py (jaxgan/nets/dcgan28.py) with 3
    output channels: G z -> 7x7x256 -> 14x14x128 -> 28x28x3 (4x4 transposed convs),
    D two 4x4 stride-2 convs (64, 128) -> dense 20 features -> dense 1. The papers used
    DCGAN-tensorflow's bigger DCGAN: G z -> 2x2x512 and four 5x5 stride-2 transposed
    convs (256, 128, 64, 3), D four 5x5 stride-2 convs (64, 128, 256, 512) -> dense 1;
  * the digits come from the 60,000 MNIST training images (the authors drew from all
    70,000, train + test), and the set is a fixed function of data.stacked_seed;
  * the classifier is jaxgan's (configs/mnist_classifier.py), not the authors' Keras CNN.
"""
import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.system = 'stacked_mnist_dcgan'
  config.model.name = 'dcgan28'
  config.data.name = 'stacked_mnist'
  config.data.batch_size = 64
  config.data.stacked_size = 128_000                     # stacked training images (PacGAN's code)
  config.data.stacked_seed = 0                           # the digits stacked; not config.seed, so
                                                         # runs of every seed share one training set
  config.model.noise = 'uniform'
  config.train.eta = 0.0                                 # 10: the MMD-regularised DCGAN
  config.train.n_gen = 2
  config.train.num_epochs = 50
  config.sample.bn = 'running'
  config.eval.num_samples = 26_000
  config.eval.monitor_num = 26_000
  return config
