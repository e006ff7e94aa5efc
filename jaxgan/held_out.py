"""The losses of a trained state on fixed train and test batches, without updating it.

Seed 001 (section 4.3) plots G's and D's losses and the auxiliary class losses per
epoch on the training data and on the held-out test split. A loss logged during
training is the mean over the steps of an interval, each at different parameters,
so it cannot be set beside a test loss. At the end of each epoch jaxgan evaluates
the loss terms on `eval.held_out_batches` fixed batches of each split, with the same
parameters, the same fake noise and the same function for both. That function is the
training loss as the step computes it: D and G in training mode (batch statistics,
dropout with a fixed key), class targets one-hot (no smoothing, so that VT-GAN and
AC-GAN are measured alike). The gap between the two splits measures how far D, and
its class head, fit the training images rather than the data.

Record keys: train_<metric> and test_<metric> for every metric of the step's terms
(jaxgan/terms.py): d_adv, d_real, d_fake, g_adv, and mmd2, gp, feature_matching, ...
as the config uses them; for class-conditional systems *_d_class (D's class loss on the
real batch and the fake batch), *_g_class and *_d_class_acc (D's class accuracy on the
real batch).
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import pipeline, steps, systems, terms
from jaxgan.errors import UserError

SPLITS = ('train', 'test')


def loss_terms(config: Any, models: steps.Models) -> Callable:
  """jit-compiled (state, images uint8 [N, ...], labels [N], key, run_key) -> dict of
  scalars: the metrics of every term of D's and G's losses (jaxgan/terms.py) on one real
  batch and one fake batch, with class smoothing off; run_key is the run's training
  key (virtual batch norm's reference batch)."""
  schedule = systems.schedule_of(config)
  d_terms, g_terms = terms.active([config], 'disc'), terms.active([config], 'gen')
  weights = dict(terms.weights(config), class_smoothing=jnp.float32(0))
  gen, disc = models.gen, models.disc

  def fn(state, images, labels, key, run_key):
    real = steps.to_unit_range(images)
    n = real.shape[0]
    k_in, k_pen, k_drop = jax.random.split(key, 3)
    inputs = steps.draw_inputs(k_in, n, schedule)
    ref = (steps.vbn_reference(run_key, n, schedule.latent_dim, schedule.noise,
                               schedule.num_classes) if steps.uses_vbn(gen) else None)
    fake, _ = steps.generate(gen, state.gen.params, state.gen.batch_stats, *inputs, ref=ref)
    rngs = {'dropout': k_drop}
    dvars = {'params': state.disc.params, 'batch_stats': state.disc.batch_stats}
    ro, fo, _ = steps.disc_pair(disc, dvars['params'], dvars['batch_stats'], real, fake,
                                mode=schedule.disc_batches, rngs=rngs)
    # One fake batch serves as G's and as the D step's.
    out = {'real': ro, 'fake': fo, 'fake_d_step': fo, 'real_x': real, 'fake_x': fake,
           'real_y': labels, 'fake_y': inputs[1] if len(inputs) > 1 else None, 'key': k_pen,
           'critic': lambda x: disc.apply(dvars, x, train=True, rngs=rngs)[0]}
    metrics = {**terms.total(d_terms, out, weights)[1], **terms.total(g_terms, out, weights)[1]}
    if schedule.num_classes:
      metrics['d_class_acc'] = jnp.mean(jnp.argmax(ro['class_logits'], -1) == labels)
    return metrics

  return jax.jit(fn)


class HeldOutLosses:
  """Evaluates `loss_terms` on the first `eval.held_out_batches` batches of each split."""

  def __init__(self, config: Any, models: steps.Models, train_ds: Any):
    self.batches = int(config.eval.get('held_out_batches', 0))
    if self.batches < 0:
      raise UserError(f'eval.held_out_batches must be >= 0 (0: off), got {self.batches}')
    if not self.batches:
      return
    if config.data.name in pipeline.TOY_DATASETS:
      raise UserError('eval.held_out_batches needs an image dataset with a test split; '
                      f'{config.data.name} has none: set --config.eval.held_out_batches=0')
    test_config = copy.deepcopy(config)
    test_config.data.limit = None
    test_ds = pipeline.load_train_data(test_config, 'test')
    n = self.batches * config.data.batch_size
    self.data = {}
    for split, ds in zip(SPLITS, (train_ds, test_ds)):
      if len(ds) < n:
        raise UserError(f'eval.held_out_batches={self.batches} needs {n} {split} images, '
                        f'{config.data.name} has {len(ds)}: lower it')
      labels = ds.labels if ds.labels is not None else np.zeros(len(ds), np.int32)
      self.data[split] = (ds.images[:n], labels[:n].astype(np.int32))
    self.batch_size = config.data.batch_size
    self.fn = loss_terms(config, models)
    # The same fake noise at every epoch and on both splits.
    self.key = jax.random.fold_in(systems.train_key(config), 0x4E1D)

  @property
  def active(self) -> bool:
    return self.batches > 0

  def __call__(self, state: Any, config: Any) -> dict:
    """The terms of `state`, the run (or sweep member) that `config` describes."""
    run_key = systems.train_key(config)
    out = {}
    for split, (images, labels) in self.data.items():
      terms = [self.fn(state, images[i:i + self.batch_size], labels[i:i + self.batch_size],
                       jax.random.fold_in(self.key, b), run_key)
               for b, i in enumerate(range(0, len(images), self.batch_size))]
      for name, values in jax.device_get(jax.tree.map(lambda *v: jnp.stack(v), *terms)).items():
        out[f'{split}_{name}'] = float(np.mean(values))
    return out
