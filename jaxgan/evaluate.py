"""Scoring a trained GAN: `--mode=eval` and the per-epoch collapse monitor.

  python main.py --config=configs/mmd_dcgan.py --workdir=W --mode=eval

loads W's last checkpoint, generates `eval.num_samples` images from the run's fixed
evaluation noise and writes W/eval/metrics.json: the Inception-style score (classifier
or Inception, `eval.splits` splits), FID and KID against `eval.reference_num` real
images of `eval.reference_split`, the class histogram (its KL to uniform, classes
covered) and, for 2-D mixtures, the PacGAN mode counts -- each number beside the
protocol that produced it (feature network, the SHA-256 of its weights, N, splits).
Stacked MNIST gets the VEEGAN / PacGAN mode counts instead of the score and FID: each
channel classified by the MNIST classifier, modes_covered of 1,000, mode_kl_uniform =
KL(p_gen || uniform) and the 1,000-bin mode_counts (per epoch too, on eval.monitor_num
samples).

The feature network (SPEC "Measuring GANs"):
  one-channel data (MNIST, Fashion-MNIST, mnist64) and each channel of stacked_mnist:
    jaxgan's classifier trained on that dataset (configs/mnist_classifier.py; MNIST's for
    mnist64 and stacked_mnist): the one a user names with `eval.classifier_dir` or
    $JAXGAN_CLASSIFIER_DIR/<dataset>/, else the one jaxgan ships for MNIST and
    Fashion-MNIST (metrics/classifier.py, SHA-256 pinned), else
    $XDG_CACHE_HOME/jaxgan/classifiers/<dataset>/. The protocol records the weights'
    SHA-256 and whether they are the pinned ones;
  RGB data: the FID InceptionV3 whose weights file `eval.inception_path` names
    (docs/inception.md); nothing is downloaded.
"""
from __future__ import annotations

import copy
import json
import os
import pathlib
import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np
from absl import logging

from jaxgan import metrics, pipeline, systems
from jaxgan import workdir as wd
from jaxgan.data import idx, toy
from jaxgan.errors import UserError

CLASSIFIER_SIDE = 28
# Datasets whose classifier is trained on another dataset's name.
_CLASSIFIER_DATASET = {'mnist64': 'mnist', 'stacked_mnist': 'mnist'}
STACKED = 'stacked_mnist'


class FeatureNet(NamedTuple):
  """A feature network and what identifies it in a protocol."""
  name: str                       # 'classifier' | 'inception_v3_fid'
  apply_fn: Callable              # apply_fn(params, x [-1, 1]) -> (logits, feats)
  params: Any
  prepare: Callable               # generated/real float images [-1, 1] -> the net's input
  protocol: dict                  # name, path, weights sha256, ...
  batch_size: int = 1000          # images per compiled call


def classifier_dataset(config: Any) -> str:
  """The dataset whose classifier scores samples of `config.data.name`."""
  return _CLASSIFIER_DATASET.get(config.data.name, config.data.name)


def classifier_dir(config: Any) -> pathlib.Path | None:
  """Where the run's classifier lives; None: the one jaxgan ships (module docstring)."""
  if config.eval.classifier_dir:
    return pathlib.Path(config.eval.classifier_dir).expanduser()
  name = classifier_dataset(config)
  env = os.environ.get('JAXGAN_CLASSIFIER_DIR')
  if env:
    return pathlib.Path(env).expanduser() / name
  if name in metrics.classifier.SHIPPED_SHA256:
    return None
  return idx.cache_dir('classifiers') / name


def to_classifier_input(images: np.ndarray, pad_to: int = 0) -> np.ndarray:
  """float [N, H, W, 1] in [-1, 1] -> [N, 28, 28, 1]: padding (data.pad_to) cropped off
  centrally, any other side resized (antialiased bilinear)."""
  x = np.asarray(images, np.float32)
  side = x.shape[1]
  if pad_to and side == pad_to and side > CLASSIFIER_SIDE:
    p0 = (side - CLASSIFIER_SIDE) // 2
    x = x[:, p0:p0 + CLASSIFIER_SIDE, p0:p0 + CLASSIFIER_SIDE]
  if x.shape[1:3] != (CLASSIFIER_SIDE, CLASSIFIER_SIDE):
    x = np.asarray(jax.image.resize(x, (x.shape[0], CLASSIFIER_SIDE, CLASSIFIER_SIDE, x.shape[3]),
                                    'linear', antialias=True))
  return x


def feature_net(config: Any, channels: int) -> FeatureNet:
  """The feature network that scores this config's samples (UserError if unavailable)."""
  if channels == 1:
    path = classifier_dir(config)
    name = classifier_dataset(config)
    if path is None:
      apply_fn, params, info = metrics.classifier.load_shipped(name)
      return _classifier_net(config, apply_fn, params, info,
                             f'shipped with jaxgan (jaxgan/metrics/classifiers/{name}.npz)')
    if not (path / 'classifier.json').is_file():
      raise UserError(
          f'no {name} classifier at {path} (needed to score {config.data.name} samples); train '
          f'one with: python main.py --config=configs/{name}_classifier.py --workdir={path}'
          ' (or point --config.eval.classifier_dir at one)')
    apply_fn, params, info = metrics.load_classifier(path)
    if info.get('dataset') != name:
      raise UserError(f'the classifier at {path} was trained on {info.get("dataset")}, but '
                      f'{config.data.name} samples need a {name} classifier; point '
                      '--config.eval.classifier_dir at one')
    return _classifier_net(config, apply_fn, params, info, str(path))
  if not config.eval.inception_path:
    raise UserError(f'{config.data.name} is RGB: its samples are scored with the FID InceptionV3, '
                    'whose weights jaxgan does not ship; convert them as docs/inception.md says '
                    'and pass --config.eval.inception_path=FILE.npz')
  from jaxgan.metrics import inception  # pylint: disable=g-import-not-at-top
  net_fn, variables, info = metrics.load_inception(config.eval.inception_path)

  def apply_fn(v, x):
    # The score uses pool_3 @ fc without the bias, as the Improved-GAN code whose Inception
    # Scores papers quote (inception.score_logits); FID/KID use pool_3.
    _, pool = net_fn(v, x)
    return inception.score_logits(v, pool), pool
  protocol = {'feature_network': info['feature_network'], 'path': str(config.eval.inception_path),
              'weights_sha256': info['weights_sha256'], 'params_sha256': info.get('params_sha256'),
              'features': 'pool_3 (2048)', 'score_logits': 'pool_3 @ fc kernel, no bias',
              'input': 'RGB in [-1, 1], resized (bilinear) to 299x299'}
  # 299x299 activations: 200 images per call keep a CPU's memory in bounds.
  return FeatureNet('inception_v3_fid', apply_fn, variables,
                    lambda x: np.asarray(x, np.float32), protocol, batch_size=200)


def _classifier_net(config: Any, apply_fn: Callable, params: Any, info: dict,
                    source: str) -> FeatureNet:
  pinned = metrics.classifier.SHIPPED_SHA256.get(info['dataset'])
  protocol = {'feature_network': 'classifier', 'path': source, 'dataset': info['dataset'],
              'params_sha256': info['params_sha256'], 'pinned_sha256': pinned,
              'is_pinned_classifier': info['params_sha256'] == pinned,
              'test_accuracy': info['test_accuracy'],
              'features': 'penultimate dense layer', 'input': '28x28x1 in [-1, 1]'}
  if not protocol['is_pinned_classifier']:
    logging.warning('scoring with a classifier other than the pinned one (sha256 %s, pinned %s): '
                    'these numbers do not compare with other jaxgan runs',
                    info['params_sha256'][:12], (pinned or 'none')[:12])
  pad_to = config.data.pad_to
  return FeatureNet('classifier', apply_fn, params,
                    lambda x: to_classifier_input(x, pad_to), protocol)


def draw_samples(config: Any, state: Any, sample_fn: Callable, n: int) -> np.ndarray:
  """n samples of the run's fixed evaluation noise, generated in training-size batches
  (so batch-statistics BatchNorm sees batches as in training)."""
  inputs = systems.eval_inputs(config, n)
  b = config.data.batch_size
  outs = [sample_fn(state, tuple(a[i:i + b] for a in inputs)) for i in range(0, n, b)]
  return np.concatenate(jax.device_get(outs))


def _histogram(probs: np.ndarray) -> dict:
  stats = metrics.class_histogram_stats(probs.argmax(axis=1), probs.shape[1])
  return {'class_histogram': stats['histogram'], 'class_kl_uniform': stats['kl_to_uniform'],
          'classes_covered': stats['classes_covered']}


def stacked_modes(net: FeatureNet, images: np.ndarray) -> dict:
  """Stacked MNIST mode statistics of float [N, H, W, 3] images in [-1, 1], each channel
  classified by `net` (the MNIST classifier)."""
  preds = metrics.channel_predictions(net.apply_fn, net.params, net.prepare(images),
                                      net.batch_size)
  stats = metrics.stacked_mnist_metric(preds)
  return {'modes_covered': stats['modes'], 'mode_kl_uniform': stats['kl_to_uniform'],
          'mode_counts': stats['histogram']}


class CollapseMonitor:
  """Classifies the fixed-noise samples each epoch: histogram, KL to uniform, classes hit
  and the Inception-style score of those samples (`monitor_score`, one split); for
  stacked_mnist the mode statistics of `stacked_modes` instead.

  Active for one-channel image data and stacked_mnist when a classifier is found (see
  `classifier_dir`); otherwise `active` is False and the reason is logged once.
  """

  def __init__(self, config: Any, image_shape: tuple):
    self.config = config
    self.net: Optional[FeatureNet] = None
    self.num = int(config.eval.monitor_num)
    self.stacked = config.data.name == STACKED
    if not config.eval.monitor or self.num <= 0:
      return
    if config.data.name in pipeline.TOY_DATASETS or (image_shape[-1] != 1 and not self.stacked):
      return  # 2-D data logs its own mode counts; RGB would need Inception every epoch
    try:
      self.net = feature_net(config, 1)
    except UserError as e:
      logging.warning('collapse monitor off: %s', e)

  @property
  def active(self) -> bool:
    return self.net is not None

  def __call__(self, state: Any, sample_fn: Callable, config: Any = None) -> dict:
    """Class statistics of G's samples of the fixed noise of `config` (a sweep member's;
    default the monitor's own config)."""
    images = draw_samples(config or self.config, state, sample_fn, self.num)
    if self.stacked:
      return stacked_modes(self.net, images)
    probs, _ = metrics.classify(self.net.apply_fn, self.net.params, self.net.prepare(images))
    # One split: the per-epoch curve tracks the trend; --mode=eval gives the 10-split score.
    score, _ = metrics.inception_score(probs, splits=1)
    return {**_histogram(probs), 'monitor_score': float(score)}


def restore_run(config: Any, workdir: pathlib.Path, free: tuple[str, ...] = ()):
  """(models, state, dataset) of the last checkpoint of the run in `workdir`; `free` as
  in workdir.check_config."""
  from jaxgan.checkpoint import Checkpointer, warn_failures  # pylint: disable=g-import-not-at-top
  ckpt_dir = workdir / 'checkpoints'
  if not (workdir / 'config.json').exists() or not ckpt_dir.exists():
    raise UserError(f'{workdir} holds no trained run; train first with --mode=train')
  wd.check_config(workdir, config, free)
  ds = pipeline.load_train_data(config)
  models = systems.build_models(config, ds.image_shape, ds.num_classes)
  ckpt = Checkpointer(ckpt_dir, config.checkpoint.max_to_keep)
  try:
    # A damaged newest checkpoint is reported and skipped, not moved: this mode only reads
    # (the next --mode=train moves it aside).
    state, failures = ckpt.restore_newest(systems.create_state(config, models, ds.image_shape))
    if state is None:
      raise UserError(f'{ckpt_dir} holds no complete checkpoint; train first with --mode=train')
    warn_failures(ckpt_dir, failures, int(state.step))
  finally:
    ckpt.close()
  return models, state, ds


def _score_images(config: Any, fake: np.ndarray, labels: Optional[np.ndarray],
                  image_shape: tuple) -> tuple[dict, dict]:
  """(numbers, protocol) of generated images against the reference split."""
  e = config.eval
  net = feature_net(config, image_shape[-1])
  t0 = time.perf_counter()
  probs, feats = metrics.classify(net.apply_fn, net.params, net.prepare(fake), net.batch_size)
  extract_s = time.perf_counter() - t0
  # The reference set ignores data.limit (a training-set cap): its first reference_num images.
  ref_config = copy.deepcopy(config)
  ref_config.data.limit = int(e.reference_num)
  ref = pipeline.load_train_data(ref_config, e.reference_split)
  n_ref = min(int(e.reference_num), len(ref))
  real = ref.images[:n_ref].astype(np.float32) / 127.5 - 1.0
  _, real_feats = metrics.classify(net.apply_fn, net.params, net.prepare(real), net.batch_size)
  score, score_std = metrics.inception_score(probs, splits=e.splits)
  mu_f, s_f = metrics.feature_stats(feats)
  mu_r, s_r = metrics.feature_stats(real_feats)
  kid_mean, kid_std = metrics.kid(feats, real_feats, num_subsets=e.kid_subsets,
                                  subset_size=e.kid_subset_size, seed=config.seed)
  out = {'score': score, 'score_std': score_std,
         'fid': metrics.frechet_distance(mu_f, s_f, mu_r, s_r),
         'kid': kid_mean, 'kid_std': kid_std, **_histogram(probs),
         'feature_img_s': len(fake) / max(extract_s, 1e-9)}
  if labels is not None and probs.shape[1] == config.model.num_classes:
    out['label_accuracy'] = float((probs.argmax(axis=1) == labels).mean())
  protocol = {**net.protocol, 'num_samples': len(fake), 'reference_split': e.reference_split,
              'reference_num': n_ref, 'score_splits': e.splits,
              'kid': {'kernel': 'cubic polynomial (a.b/d + 1)^3', 'estimator': 'unbiased',
                      'subsets': e.kid_subsets, 'subset_size': min(e.kid_subset_size, len(fake), n_ref)},
              'class_histogram': 'argmax of the feature network over the generated samples'}
  return out, protocol


def evaluate(config: Any, workdir: str) -> dict:
  """Scores the last checkpoint of the run in `workdir`; writes W/eval/metrics.json."""
  workdir = pathlib.Path(workdir)
  systems.validate(config)
  models, state, ds = restore_run(config, workdir)
  step = int(state.step)
  is_toy = config.data.name in pipeline.TOY_DATASETS
  n = 2500 if is_toy else int(config.eval.num_samples)  # PacGAN scores 2,500 2-D samples
  if n <= 0:
    raise UserError(f'eval.num_samples must be positive, got {n}')
  sample_fn = systems.make_sampler(config, models)
  t0 = time.perf_counter()
  fake = draw_samples(config, state, sample_fn, n)
  gen_s = time.perf_counter() - t0
  common = {'noise': f'fixed evaluation noise of seed {config.seed}',
            'sample_bn': config.sample.bn, 'generation_batch': config.data.batch_size}
  if is_toy:
    stats = toy.mode_stats(fake, config.data.name)
    numbers = {'modes_covered': int(stats['modes_covered']),
               'high_quality': float(stats['high_quality_fraction']),
               'mode_kl_uniform': stats['mode_kl_uniform'],
               'mode_counts': stats['per_mode_counts'].tolist()}
    protocol = {'metric': 'PacGAN mode counts', 'num_samples': n, **common}
  elif config.data.name == STACKED:
    net = feature_net(config, 1)
    numbers = stacked_modes(net, fake)
    protocol = {**net.protocol, 'metric': 'Stacked MNIST modes (VEEGAN / PacGAN)',
                'num_samples': n, 'num_modes': metrics.stacked_mnist.NUM_MODES,
                'published_num_samples': metrics.stacked_mnist.PROTOCOL_SAMPLES,
                'mode': '100 d_R + 10 d_G + d_B, each channel classified on its own (argmax)',
                'kl_direction': 'mode_kl_uniform = KL(p_gen || uniform over 1000 modes), nats',
                **common}
  else:
    labels = np.asarray(systems.eval_inputs(config, n)[1]) if systems.is_conditional(config) else None
    numbers, protocol = _score_images(config, fake, labels, ds.image_shape)
    protocol.update(common)
  result = {'step': step, 'system': config.system, 'dataset': config.data.name,
            **numbers, 'generate_s': gen_s, 'protocol': protocol}
  out_dir = workdir / 'eval'
  out_dir.mkdir(exist_ok=True)
  wd.atomic_write_text(out_dir / 'metrics.json', json.dumps(result, indent=2) + '\n')
  shown = ' '.join(f'{k}={numbers[k]:.4g}' for k in
                   ('score', 'fid', 'kid', 'class_kl_uniform', 'classes_covered', 'modes_covered',
                    'mode_kl_uniform', 'high_quality') if k in numbers)
  logging.info('eval of step %d: %s -> %s', step, shown, out_dir / 'metrics.json')
  return result
