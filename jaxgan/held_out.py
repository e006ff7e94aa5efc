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

Record keys: train_d_adv, test_d_adv, train_g_adv, ... and, for class-conditional
systems, *_d_class (D's class loss on the real batch and the fake batch), *_g_class,
and *_d_class_acc (D's class accuracy on the real batch).
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import losses, pipeline, steps, systems
from jaxgan.errors import UserError

SPLITS = ('train', 'test')


def loss_terms(config: Any, models: steps.Models) -> Callable:
  """jit-compiled (state, images uint8 [N, ...], labels [N], key, run_key) -> dict of
  scalars; run_key is the run's training key (virtual batch norm's reference batch)."""
  spec = systems.step_spec(config)
  gen, disc = models.gen, models.disc
  cond = spec.num_classes > 0

  def fn(state, images, labels, key, run_key):
    real = steps.to_unit_range(images)
    n = real.shape[0]
    k_z, k_y, k_drop = jax.random.split(key, 3)
    z = steps.latent(k_z, n, spec.latent_dim, spec.noise)
    inputs = (z, jax.random.randint(k_y, (n,), 0, spec.num_classes)) if cond else (z,)
    ref = (steps.vbn_reference(run_key, n, spec.latent_dim, spec.noise, spec.num_classes)
           if steps.uses_vbn(gen) else None)
    fake, _ = steps.generate(gen, state.gen.params, state.gen.batch_stats, *inputs, ref=ref)
    ro, fo, _ = steps.disc_pair(disc, state.disc.params, state.disc.batch_stats, real, fake,
                                mode=spec.disc_batches, rngs={'dropout': k_drop})
    out = {'d_adv': losses.DISC_LOSSES[spec.d_loss](ro['logit'], fo['logit'], spec.real_target),
           'g_adv': losses.GEN_LOSSES[spec.g_loss](fo['logit'])}
    if cond:
      onehot = lambda v: jax.nn.one_hot(v, spec.num_classes)
      g_class = losses.acgan_class_loss(fo['class_logits'], onehot(inputs[1]))
      out.update(d_class=losses.acgan_class_loss(ro['class_logits'], onehot(labels)) + g_class,
                 g_class=g_class,
                 d_class_acc=jnp.mean(jnp.argmax(ro['class_logits'], -1) == labels))
    return out

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
