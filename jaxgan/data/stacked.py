"""Stacked MNIST: three MNIST digits as the R, G, B channels of one 28x28x3 image.

The 1,000-mode benchmark of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018).
Image i is (digit a, digit b, digit c) with channel 0 (R) = a, 1 (G) = b, 2 (B) = c; its
mode is `mode_id(label_a, label_b, label_c)` = 100 label_a + 10 label_b + label_c in 0..999,
which `load_images` returns as the label (num_classes 1000), so the dataset's own mode
histogram can be inspected like a class histogram.

Construction (following the PacGAN authors' code for the VEEGAN setting,
github.com/fjxmlzn/PacGAN, stacked_MNIST_experiments/VEEGAN_experiment/model.py
`load_mnist` and config.py `num_training_sample`):
  * 128,000 stacked images (data.stacked_size), built once before training;
  * the three source images of each stacked image are drawn independently, uniformly at
    random with replacement from the source set, so the 1,000 modes are equally likely
    only up to MNIST's digit frequencies (9.0% to 11.2% per digit in each channel);
  * deterministic here: numpy's PCG64 from data.stacked_seed (the authors draw a fresh
    random seed per run), and the first n images of a seed do not depend on how many are
    built, so data.limit=n gives a prefix of the full set.
One difference: the authors draw from all 70,000 MNIST images (train + test); here split
'train' draws from the 60,000 training images and split 'test' from the 10,000 test
images, so real reference images stay disjoint from the training set.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from jaxgan.data import idx
from jaxgan.errors import UserError

NUM_MODES = 1000
DEFAULT_SIZE = 128_000      # num_training_sample of the PacGAN code's VEEGAN experiment
DEFAULT_SEED = 0
CLASS_NAMES = tuple(f'{m:03d}' for m in range(NUM_MODES))   # mode 314: digits 3, 1, 4 (R, G, B)


def mode_id(d_r, d_g, d_b):
  """Mode 100 d_r + 10 d_g + d_b of the digits in channels R, G, B; ints or arrays."""
  return 100 * np.asarray(d_r) + 10 * np.asarray(d_g) + np.asarray(d_b)


def mode_digits(mode) -> tuple:
  """The inverse of `mode_id`: mode(s) 0..999 -> (d_r, d_g, d_b)."""
  m = np.asarray(mode)
  return m // 100, m // 10 % 10, m % 10


def make_stacked_mnist(images, labels, n: int, seed: int = DEFAULT_SEED
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Draws n stacked images, each channel a source image drawn uniformly with replacement.

  Args:
    images: uint8 [N, H, W, 1] source digits (`jaxgan.data.load_dataset`).
    labels: int [N] their digits 0..9.
    n: number of stacked images (>= 0).
    seed: seed of numpy's default generator; the same seed gives the same images, and
      the first k of n images equal the k images built with n = k.

  Returns:
    (uint8 [n, H, W, 3], int32 mode ids [n] in 0..999; see `mode_id`).
  """
  images, labels = np.asarray(images), np.asarray(labels)
  if images.ndim != 4 or images.shape[-1] != 1 or len(images) != len(labels) or not len(images):
    raise UserError(f'make_stacked_mnist expects images [N, H, W, 1] and labels [N] with N > 0, '
                    f'got {images.shape} and {labels.shape}')
  # Row-major draws: row i (one stacked image) uses the same three numbers whatever n is.
  picks = np.random.default_rng(seed).integers(0, len(images), size=(n, 3))
  stacked = np.empty((n,) + images.shape[1:3] + (3,), np.uint8)
  for c in range(3):
    stacked[..., c] = images[picks[:, c], ..., 0]
  modes = mode_id(*(labels[picks[:, c]] for c in range(3))).astype(np.int32)
  return stacked, modes


def _int_field(data_cfg: Any, key: str, default: int, minimum: int) -> int:
  value = data_cfg.get(key, None)
  if value is None:
    return default
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise UserError(f'data.{key} must be an integer >= {minimum}, got {value!r}')
  return int(value)


def load_stacked_mnist(data_cfg: Any, split: str, limit: Optional[int]
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Stacked MNIST of `config.data` (data.stacked_size, data.stacked_seed, data.dir).

  Args:
    data_cfg: `config.data`; stacked_size (default 128,000) and stacked_seed (default 0)
      are optional; dir is the MNIST folder, found as for data.name='mnist'.
    split: 'train' or 'test': the MNIST split the digits come from.
    limit: build only the first `limit` images of the stacked set (None: all).

  Returns:
    (uint8 [n, 28, 28, 3], int32 mode ids [n]), n = min(limit, stacked_size).
  """
  size = _int_field(data_cfg, 'stacked_size', DEFAULT_SIZE, 1)
  seed = _int_field(data_cfg, 'stacked_seed', DEFAULT_SEED, 0)
  images, labels = idx.load_dataset('mnist', split, data_cfg.get('dir', None) or None)
  return make_stacked_mnist(images, labels, min(limit or size, size), seed)
