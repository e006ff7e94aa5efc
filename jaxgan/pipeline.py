"""Training data on the host: the dataset of a config and the batches of each step.

Batches are a pure function of (seed, step): step s of a system with n_disc D updates
reads the data batches s * n_disc + j, j < n_disc, of the (seed, epoch) permutation, so
resumed runs and runs with other hyper-parameters see the same data order.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jaxgan.data import registry, toy
from jaxgan.data.batching import EpochBatcher

TOY_DATASETS = ('ring8', 'grid25')
_TOY_STREAM = 7  # the toy training set's own random stream, independent of init and noise


def load_train_data(config: Any, split: str = 'train') -> registry.Dataset:
  """The dataset config.data names: images uint8 [N, H, W, C], or 2-D points float32 [N, 2]."""
  d = config.data
  if d.name in TOY_DATASETS:
    n = d.limit or d.toy_size
    rng = np.random.default_rng([config.seed, _TOY_STREAM, 0 if split == 'train' else 1])
    return registry.Dataset(toy.sample_mixture_np(d.name, rng, n).astype(np.float32), None, None, d.name)
  ds = registry.load_images(d, split)
  if d.pad_to and d.pad_to != ds.image_shape[0]:
    p0 = (d.pad_to - ds.image_shape[0]) // 2
    p1 = d.pad_to - ds.image_shape[0] - p0
    # uint8 0 is -1 after scaling: the black border of MNIST digits, extended.
    images = np.pad(ds.images, ((0, 0), (p0, p1), (p0, p1), (0, 0)))
    ds = registry.Dataset(images, ds.labels, ds.num_classes, ds.name, ds.class_names)
  return ds


class StepBatches:
  """Random access to the stacked batches of a training step."""

  def __init__(self, ds: registry.Dataset, batch_size: int, seed: int, n_disc: int,
               with_labels: bool):
    labels = ds.labels if ds.labels is not None else np.zeros(len(ds), np.int32)
    self._batcher = EpochBatcher(ds.images, labels, batch_size, seed)
    self.n_disc = n_disc
    self.with_labels = with_labels
    # An "epoch" counts steps: n_disc data batches each.
    self.steps_per_epoch = max(1, self._batcher.steps_per_epoch // n_disc)

  def get(self, step: int) -> dict:
    """{'images': [n_disc, N, ...], 'labels': [n_disc, N]} of global step `step`."""
    parts = [self._batcher.get(step * self.n_disc + j) for j in range(self.n_disc)]
    batch = {'images': np.stack([p[0] for p in parts])}
    if self.with_labels:
      batch['labels'] = np.stack([p[1] for p in parts]).astype(np.int32)
    return batch
