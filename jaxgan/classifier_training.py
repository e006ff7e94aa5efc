"""Training jaxgan's MNIST-like classifier, the feature network of `jaxgan.metrics`.

  python main.py --config=configs/mnist_classifier.py --workdir=W

trains the network of `jaxgan.metrics.classifier` on config.data.name and saves it in W in the
layout that `jaxgan.metrics.classifier.load_classifier` reads (see that module's docstring).
It lives here, beside train.py, and not in `jaxgan.metrics` because `metrics` is a library of
scores that takes a trained network as input: a training loop (optimiser, data batches,
checkpoints, metrics.jsonl) belongs with the other entry points of main.py. This module
imports from `metrics`, never the reverse.
"""
from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import struct

from jaxgan import data as jdata
from jaxgan import workdir as wd
from jaxgan.checkpoint import Checkpointer
from jaxgan.errors import UserError
from jaxgan.metrics import classifier


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


def _make_train_step(model: classifier.ClassifierCNN, tx: optax.GradientTransformation,
                     dropout_key):
  """jit(state, images uint8 [B, 28, 28, 1], labels [B]) -> (state, metrics)."""
  def train_step(state: ClassifierState, images, labels):
    key = jax.random.fold_in(dropout_key, state.step)

    def loss_fn(params):
      logits, _ = model.apply({'params': params}, classifier.as_float_images(images), train=True,
                              rngs={'dropout': key})
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return loss, jnp.mean(jnp.argmax(logits, -1) == labels)

    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                          opt_state=opt_state)
    return state, {'loss': loss, 'accuracy': acc}
  return jax.jit(train_step, donate_argnums=(0,))


def train_classifier(config: Any, workdir: str | pathlib.Path) -> dict:
  """Trains the classifier of config.data.name, saves it to workdir, returns classifier.json.

  Args:
    config: a configs/*_classifier.py config (system 'classifier').
    workdir: the run folder (created); it must not already hold a trained classifier.

  Returns:
    The dict written to W/classifier.json.
  """
  workdir = pathlib.Path(workdir)
  if (workdir / classifier.INFO_FILE).exists():
    raise UserError(f'{workdir} already holds a trained classifier ({classifier.INFO_FILE}); '
                    'load it with jaxgan.metrics.load_classifier, or use another --workdir')
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

  model = classifier.model_from_config(config.model)
  apply_fn = classifier.make_apply_fn(model)
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
    test = classifier.accuracy_and_nll(apply_fn, state.params, test_x, test_y)
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
  ckpt = Checkpointer(workdir / classifier.PARAMS_DIR, max_to_keep=1)
  ckpt.save(total, params)
  ckpt.close()
  info = {
      'dataset': name,
      'test_accuracy': record['test/accuracy'],
      'epochs': total / spe,
      'steps': total,
      'params_sha256': classifier.params_sha256(params),
      'num_params': int(sum(x.size for x in jax.tree.leaves(params))),
      'model': wd.config_to_dict(config)['model'],
      'train_time_s': train_time,
      'total_time_s': time.perf_counter() - t_start,
      'input': 'uint8 [0, 255] or float [-1, 1], [N, 28, 28, 1]',
  }
  wd.atomic_write_text(workdir / classifier.INFO_FILE, json.dumps(info, indent=2) + '\n')
  logging.info('classifier: test accuracy %.4f, sha256 %s, saved in %s', info['test_accuracy'],
               info['params_sha256'], workdir)
  return info

