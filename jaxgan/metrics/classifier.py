"""The feature network for MNIST-like scores: a small CNN that jaxgan trains itself.

For 28x28 grey data an ImageNet Inception network is the wrong judge, so, like TF-GAN's
mnist_score and Binkowski et al. 2018 (LeNet features), jaxgan scores samples with a small
classifier trained on the real data: its softmax gives the Inception-style score and the class
histogram, its penultimate (dense, ReLU) layer the features for FID and KID.

A trained classifier lives in a workdir W:

  W/config.json        the training config
  W/metrics.jsonl      one JSON line per epoch (train loss/accuracy, test loss/accuracy, time)
  W/classifier/<step>/ the parameters (orbax)
  W/classifier.json    {dataset, test_accuracy, epochs, params_sha256, model, ...}

`params_sha256` names the exact network, so a reported score can state which one produced it;
`load_classifier` checks it.

Images: uint8 in [0, 255] or float in [-1, 1] (the range of `jaxgan.data.to_float` and of the
generators' tanh output), shape [N, 28, 28, 1] (or [N, 28, 28]).
"""
from __future__ import annotations

import functools
import hashlib
import json
import pathlib
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import struct

from jaxgan import data as jdata
from jaxgan import workdir as wd
from jaxgan.checkpoint import Checkpointer
from jaxgan.errors import DataError, UserError

INFO_FILE = 'classifier.json'
PARAMS_DIR = 'classifier'


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max pooling, stride 2, on [N, H, W, C] with even H, W -> [N, H/2, W/2, C].

  Equal to nn.max_pool(x, (2, 2), (2, 2)), written as reshape + max because XLA:CPU
  differentiates reduce_window-max with select-and-scatter, which made the whole training step
  about 2x slower on the 2-core CPU; the reshape form's gradient is elementwise.
  """
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class ClassifierCNN(nn.Module):
  """LeNet-like CNN: [conv3x3-ReLU-maxpool] x len(widths), dropout, dense-ReLU, dropout, dense.

  After LeCun et al. 1998 ("Gradient-based learning applied to document recognition"), with
  ReLU, max pooling and dropout. The defaults train to about 99.2% MNIST test accuracy in 8
  epochs (about 3.5 minutes on a shared 2-core CPU); wider convs cost ~3x per epoch.

  Attributes:
    widths: channels of the conv blocks.
    features: width of the penultimate dense layer (the FID / KID features).
    num_classes: outputs.
    conv_dropout, dense_dropout: dropout rates after the conv stack and the feature layer.
  """
  widths: Sequence[int] = (16, 32)
  features: int = 128
  num_classes: int = 10
  conv_dropout: float = 0.1
  dense_dropout: float = 0.25

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """x [N, 28, 28, C] float in [-1, 1] -> (logits [N, num_classes], feats [N, features])."""
    for width in self.widths:
      x = max_pool_2x2(nn.relu(nn.Conv(width, (3, 3))(x)))
    x = nn.Dropout(self.conv_dropout, deterministic=not train)(x)
    feats = nn.relu(nn.Dense(self.features)(x.reshape(x.shape[0], -1)))
    h = nn.Dropout(self.dense_dropout, deterministic=not train)(feats)
    return nn.Dense(self.num_classes)(h), feats


def model_from_config(model_config: Any) -> ClassifierCNN:
  """Builds the network from config.model (or the 'model' dict of classifier.json)."""
  return ClassifierCNN(widths=tuple(model_config['widths']), features=model_config['features'],
                       conv_dropout=model_config['conv_dropout'],
                       dense_dropout=model_config['dense_dropout'])


def make_apply_fn(model: ClassifierCNN) -> Callable:
  """apply_fn(params, x float [N, 28, 28, C] in [-1, 1]) -> (logits, feats), eval mode."""
  def apply_fn(params, x):
    return model.apply({'params': params}, x, train=False)
  return apply_fn


def params_sha256(params: Any) -> str:
  """SHA-256 of the float32 little-endian bytes of the leaves, concatenated in tree order.

  Tree order is jax.tree.leaves order (dict keys sorted), so equal parameters hash equally no
  matter how they were produced or restored.
  """
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(params)):
    digest.update(np.ascontiguousarray(leaf, dtype='<f4').tobytes())
  return digest.hexdigest()


# --- Inference.


def _prepare(x: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1] (as data.to_float); float passes through as float32."""
  if x.dtype == jnp.uint8:
    return x.astype(jnp.float32) / jnp.float32(127.5) - jnp.float32(1.0)
  return x.astype(jnp.float32)


@functools.lru_cache(maxsize=16)
def _compiled_forward(apply_fn: Callable) -> Callable:
  """jit(images -> (softmax probs, feats)) for one apply_fn, compiled once per batch shape."""
  @jax.jit
  def forward(params, x):
    logits, feats = apply_fn(params, _prepare(x))
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1), feats.astype(jnp.float32)
  return forward


def classify(apply_fn: Callable, params: Any, images, batch_size: int = 1000
             ) -> tuple[np.ndarray, np.ndarray]:
  """Class probabilities and features of many images, in fixed-size jit-compiled batches.

  The last batch is zero-padded to `batch_size`, so any N compiles one shape only.

  Args:
    apply_fn: apply_fn(params, x) -> (logits [B, K], feats [B, F]); see `make_apply_fn`.
    params: the network's parameters.
    images: [N, 28, 28, C] or [N, 28, 28], uint8 in [0, 255] or float in [-1, 1].
    batch_size: images per compiled call.

  Returns:
    (probs float32 [N, K], feats float32 [N, F]) as numpy arrays.
  """
  x = np.asarray(images)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[0] == 0:
    raise UserError(f'classify expects images [N, H, W, C] with N > 0, got {x.shape}')
  if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
    raise UserError(f'classify expects uint8 or float images, got {x.dtype}')
  forward = _compiled_forward(apply_fn)
  n = x.shape[0]
  outs = []
  for start in range(0, n, batch_size):
    batch = x[start:start + batch_size]
    if len(batch) < batch_size:
      pad = np.zeros((batch_size - len(batch),) + x.shape[1:], x.dtype)
      batch = np.concatenate([batch, pad])
    outs.append(forward(params, batch))  # dispatched asynchronously; fetched once below
  outs = jax.device_get(outs)
  probs = np.concatenate([o[0] for o in outs])[:n]
  feats = np.concatenate([o[1] for o in outs])[:n]
  return probs, feats


# --- Training.


class ClassifierState(struct.PyTreeNode):
  """Step counter, parameters and optimiser state (no RNG: dropout keys are fold_in(key, step))."""
  step: jax.Array
  params: Any
  opt_state: Any


def _make_optimizer(optim: Any, total_steps: int) -> optax.GradientTransformation:
  if optim.schedule == 'cosine':
    # Decaying to 0 over the run buys the last few tenths of a percent of accuracy that a
    # constant rate leaves in noise, at no cost in steps.
    lr = optax.cosine_decay_schedule(optim.learning_rate, max(total_steps, 1))
  elif optim.schedule == 'constant':
    lr = optim.learning_rate
  else:
    raise UserError(f'unknown optim.schedule {optim.schedule!r}; use cosine or constant')
  return optax.adam(lr, b1=optim.b1, b2=optim.b2)


def _make_train_step(model: ClassifierCNN, tx: optax.GradientTransformation, dropout_key):
  """jit(state, images uint8 [B, 28, 28, 1], labels [B]) -> (state, metrics)."""
  def train_step(state: ClassifierState, images, labels):
    key = jax.random.fold_in(dropout_key, state.step)

    def loss_fn(params):
      logits, _ = model.apply({'params': params}, _prepare(images), train=True,
                              rngs={'dropout': key})
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return loss, jnp.mean(jnp.argmax(logits, -1) == labels)

    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                          opt_state=opt_state)
    return state, {'loss': loss, 'accuracy': acc}
  return jax.jit(train_step, donate_argnums=(0,))


def evaluate(apply_fn: Callable, params: Any, images: np.ndarray, labels: np.ndarray) -> dict:
  """Accuracy and mean NLL of the classifier on labelled images."""
  probs, _ = classify(apply_fn, params, images)
  p_true = probs[np.arange(len(labels)), labels].astype(np.float64)
  # Floor at the smallest normal float32 so a confidently wrong, underflowed 0 stays finite.
  nll = -np.log(np.maximum(p_true, np.finfo(np.float32).tiny))
  return {'accuracy': float(np.mean(probs.argmax(-1) == labels)), 'loss': float(nll.mean())}


def train_classifier(config: Any, workdir: str | pathlib.Path) -> dict:
  """Trains the classifier of config.data.name, saves it to workdir, returns classifier.json.

  Args:
    config: a configs/*_classifier.py config (system 'classifier').
    workdir: the run folder (created); it must not already hold a trained classifier.

  Returns:
    The dict written to W/classifier.json.
  """
  workdir = pathlib.Path(workdir)
  if (workdir / INFO_FILE).exists():
    raise UserError(f'{workdir} already holds a trained classifier ({INFO_FILE}); load it with '
                    'jaxgan.metrics.load_classifier, or use another --workdir')
  name = config.data.name
  if name not in jdata.DATASETS:
    raise UserError(f'the classifier trains on MNIST-like data ({", ".join(jdata.DATASETS)}), '
                    f'got data.name={name!r}')
  workdir.mkdir(parents=True, exist_ok=True)
  wd.save_config(workdir, config)

  train_x, train_y = jdata.load_dataset(name, 'train', config.data.dir)
  test_x, test_y = jdata.load_dataset(name, 'test', config.data.dir)
  if config.data.limit:
    train_x, train_y = train_x[:config.data.limit], train_y[:config.data.limit]
  batcher = jdata.EpochBatcher(train_x, train_y, config.data.batch_size, config.seed)
  spe = batcher.steps_per_epoch
  total = config.train.num_epochs * spe
  if config.train.num_steps is not None:
    total = min(total, config.train.num_steps)

  model = model_from_config(config.model)
  apply_fn = make_apply_fn(model)
  tx = _make_optimizer(config.optim, total)
  k_init, k_drop = jax.random.split(jax.random.key(config.seed))
  params = model.init(k_init, jnp.zeros((1,) + train_x.shape[1:], jnp.float32))['params']
  state = ClassifierState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
  train_step = _make_train_step(model, tx, k_drop)

  metrics_path = workdir / 'metrics.jsonl'
  metrics_path.write_text('')  # a fresh run: the classifier is never resumed
  log = wd.MetricsLog(metrics_path, 0)
  logging.info('training classifier on %s (%d examples, %d steps/epoch, %d steps) in %s',
               name, batcher.n, spe, total, workdir)
  t_start = time.perf_counter()
  train_time = 0.0
  step, record = 0, {}
  while step < total:
    end = min((step // spe + 1) * spe, total)  # the end of this epoch, or of a short run
    t_epoch = time.perf_counter()
    epoch_metrics = []
    for s in range(step, end):
      state, m = train_step(state, *batcher.get(s))
      epoch_metrics.append(m)  # stays on the device: no host sync per step
      if (s + 1) % config.log_every_steps == 0:
        logging.info('step %d/%d loss %.4f', s + 1, total, float(m['loss']))
    step = end
    host = jax.device_get(epoch_metrics)
    epoch_time = time.perf_counter() - t_epoch
    train_time += epoch_time
    test = evaluate(apply_fn, state.params, test_x, test_y)
    record = {
        'step': step, 'epoch': step / spe,
        'train/loss': float(np.mean([h['loss'] for h in host])),
        'train/accuracy': float(np.mean([h['accuracy'] for h in host])),
        'test/loss': test['loss'], 'test/accuracy': test['accuracy'],
        'epoch_time_s': epoch_time, 'img_s': len(host) * batcher.batch_size / epoch_time,
    }
    if not np.isfinite(record['train/loss']):
      raise UserError(f'non-finite classifier loss at step {step}: lower optim.learning_rate')
    log.write(record)
    logging.info('epoch %.2f: train loss %.4f acc %.4f, test acc %.4f (%.1f s)', record['epoch'],
                 record['train/loss'], record['train/accuracy'], record['test/accuracy'],
                 epoch_time)

  params = jax.device_get(state.params)
  ckpt = Checkpointer(workdir / PARAMS_DIR, max_to_keep=1)
  ckpt.save(total, params)
  ckpt.close()
  info = {
      'dataset': name,
      'test_accuracy': record['test/accuracy'],
      'epochs': total / spe,
      'steps': total,
      'params_sha256': params_sha256(params),
      'num_params': int(sum(x.size for x in jax.tree.leaves(params))),
      'model': wd.config_to_dict(config)['model'],
      'train_time_s': train_time,
      'total_time_s': time.perf_counter() - t_start,
      'input': 'uint8 [0, 255] or float [-1, 1], [N, 28, 28, 1]',
  }
  wd.atomic_write_text(workdir / INFO_FILE, json.dumps(info, indent=2) + '\n')
  logging.info('classifier: test accuracy %.4f, sha256 %s, saved in %s', info['test_accuracy'],
               info['params_sha256'], workdir)
  return info


def load_classifier(path: str | pathlib.Path) -> tuple[Callable, Any, dict]:
  """Loads a classifier trained by `train_classifier`.

  Args:
    path: its workdir, or the workdir's classifier.json.

  Returns:
    (apply_fn, params, info): apply_fn(params, x float [N, 28, 28, 1] in [-1, 1]) -> (logits,
    feats), for `classify`; info is classifier.json.

  Raises:
    UserError: no trained classifier at `path`.
    DataError: the restored parameters do not match the recorded params_sha256.
  """
  path = pathlib.Path(path)
  info_path = path if path.name == INFO_FILE else path / INFO_FILE
  if not info_path.is_file():
    raise UserError(f'no trained classifier at {path} ({info_path} missing); train one with '
                    'python main.py --config=configs/mnist_classifier.py --workdir=DIR')
  info = json.loads(info_path.read_text())
  model = model_from_config(info['model'])
  ckpt = Checkpointer(info_path.parent / PARAMS_DIR, max_to_keep=1)
  try:
    target = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1), jnp.float32))['params'])
    params = ckpt.restore(target, info['steps'])
  finally:
    ckpt.close()
  sha = params_sha256(params)
  if sha != info['params_sha256']:
    raise DataError(f'classifier parameters in {info_path.parent / PARAMS_DIR} have sha256 {sha}, '
                    f'but {info_path} records {info["params_sha256"]}: the files do not belong '
                    'together; retrain the classifier')
  return make_apply_fn(model), params, info
