"""Data order as a pure function of (seed, epoch).

No iterator state is kept anywhere that a checkpoint would need to hold: the batch of global step
`s` is always `batch_indices(seed, s, n, batch_size)`, so a run resumed at step `s` sees exactly the
batches an uninterrupted run would have seen.
"""

import numpy as np

from jaxgan.errors import UserError


def _check_non_negative(what: str, value: int) -> int:
  """Returns `value` as an int, or raises UserError if it is negative or not an integer."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise UserError(f'{what} must be an integer, got {value!r}')
  if value < 0:
    raise UserError(f'{what} must be >= 0, got {value}')
  return int(value)


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """Returns the order of the `n` examples in epoch `epoch` of a run with data seed `seed`.

  Args:
    seed: the data seed, >= 0 (any size).
    epoch: the epoch number, >= 0.
    n: the number of examples.

  Returns:
    An int64 permutation of `range(n)`; the same for the same arguments on every machine and
    numpy version that keeps PCG64 and `Generator.permutation` stable.
  """
  seed = _check_non_negative('seed', seed)
  epoch = _check_non_negative('epoch', epoch)
  n = _check_non_negative('n', n)
  # The epoch goes into the spawn key rather than next to the seed in the entropy list: numpy
  # concatenates entropy words, so `[seed, epoch]` makes e.g. (5, 0) equal to a plain seed 5 and
  # lets a seed >= 2**32 collide with another (seed, epoch) pair. Spawn keys are mixed separately.
  seq = np.random.SeedSequence(seed, spawn_key=(epoch,))
  return np.random.Generator(np.random.PCG64(seq)).permutation(n).astype(np.int64)


def steps_per_epoch(n: int, batch_size: int) -> int:
  """Returns the number of full batches in an epoch of `n` examples (the remainder is dropped).

  Raises:
    UserError: batch_size is not positive or is larger than n.
  """
  n = _check_non_negative('n', n)
  batch_size = _check_non_negative('batch_size', batch_size)
  if batch_size == 0:
    raise UserError('batch_size must be >= 1, got 0')
  if batch_size > n:
    raise UserError(f'batch_size {batch_size} is larger than the dataset ({n} examples); '
                    f'use a batch size of at most {n}')
  return n // batch_size


def batch_indices(seed: int, step: int, n: int, batch_size: int) -> np.ndarray:
  """Returns the example indices of global step `step`.

  Epoch `step // steps_per_epoch(n, batch_size)` is read in the order of `epoch_permutation`,
  one slice of `batch_size` per step; the last `n % batch_size` examples of each epoch's order
  are skipped, so every batch has the same shape (no recompilation).

  Returns:
    An int64 array of shape `[batch_size]`.
  """
  step = _check_non_negative('step', step)
  spe = steps_per_epoch(n, batch_size)
  epoch, i = divmod(step, spe)
  return epoch_permutation(seed, epoch, n)[i * batch_size:(i + 1) * batch_size]


class EpochBatcher:
  """Random-access batches of an in-memory dataset, equal to `batch_indices` for every step.

  The permutation of the epoch last asked for is kept, so a run of consecutive steps computes it
  once per epoch (a permutation of 60000 costs about a millisecond, which would otherwise be
  paid every step).
  """

  def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """Wraps `images` [N, ...] and `labels` [N] (not copied).

    Raises:
      UserError: images and labels differ in length, or batch_size does not fit.
    """
    if len(images) != len(labels):
      raise UserError(f'{len(images)} images but {len(labels)} labels')
    self.images = images
    self.labels = labels
    self.n = len(images)
    self.batch_size = int(batch_size)
    self.seed = _check_non_negative('seed', seed)
    self.steps_per_epoch = steps_per_epoch(self.n, self.batch_size)
    self._epoch = None
    self._perm = None

  def indices(self, step: int) -> np.ndarray:
    """Returns the example indices of global step `step` (same as `batch_indices`)."""
    step = _check_non_negative('step', step)
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._perm = epoch_permutation(self.seed, epoch, self.n)
      self._epoch = epoch
    return self._perm[i * self.batch_size:(i + 1) * self.batch_size]

  def get(self, step: int) -> tuple:
    """Returns `(images[idx], labels[idx])` for the indices of global step `step`.

    The images keep their dtype (uint8 from `load_dataset`); scale them with `to_float`.
    """
    idx = self.indices(step)
    return self.images[idx], self.labels[idx]
