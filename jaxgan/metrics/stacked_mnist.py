"""Stacked MNIST: three MNIST digits as the R, G, B channels, 10^3 = 1000 modes.

The mode-collapse benchmark of Metz et al. 2017 ("Unrolled GANs") in the setting of VEEGAN
(Srivastava et al. 2017) and PacGAN (Lin et al. 2018): a generator that covers the data makes
all 1000 digit triples with equal frequency. Protocol (docs/spec.md): 26,000 samples, each channel
classified by the MNIST classifier, modes = distinct predicted triples, and
KL(p_gen || uniform over 1000).

Channel order: channel 0 (R) is the hundreds digit, channel 1 (G) the tens, channel 2 (B) the
units, so the triple (d0, d1, d2) is mode 100 d0 + 10 d1 + d2. The training set and the
mode ids live in jaxgan/data/stacked.py (data.name='stacked_mnist'); this module scores samples.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jaxgan.data.stacked import mode_id
from jaxgan.data.stacked import NUM_MODES
from jaxgan.errors import UserError
from jaxgan.metrics.classifier import classify
from jaxgan.metrics.scores import class_histogram_stats

# Samples scored per model: num_test_sample of the PacGAN code's VEEGAN experiment
# (github.com/fjxmlzn/PacGAN, stacked_MNIST_experiments/VEEGAN_experiment/config.py).
PROTOCOL_SAMPLES = 26_000


def channel_predictions(apply_fn: Callable, params: Any, images, batch_size: int = 1000
                        ) -> np.ndarray:
  """The classifier's digit for each channel of [n, 28, 28, 3] images -> int [n, 3].

  Images are uint8 [0, 255] or float [-1, 1], as for `classify`.
  """
  x = np.asarray(images)
  if x.ndim != 4 or x.shape[-1] != 3:
    raise UserError(f'channel_predictions expects images [n, H, W, 3], got {x.shape}')
  return np.stack([classify(apply_fn, params, x[..., c:c + 1], batch_size)[0].argmax(-1)
                   for c in range(3)], axis=1)


def stacked_mnist_metric(channel_preds) -> dict:
  """Modes covered and KL to uniform from per-channel digit predictions.

  Args:
    channel_preds: int [n, 3], the predicted digit of channels R, G, B of each sample (use
      PROTOCOL_SAMPLES samples to compare with the published tables).

  Returns:
    dict with modes (distinct triples, 0..1000), kl_to_uniform (KL(p_gen || uniform over 1000)
    = sum_m p_m log(1000 p_m) in nats, 0 for a perfectly even spread, log 1000 ~ 6.91 for a
    single mode; the direction of the PacGAN code's log_metrics), histogram (1000 ints,
    samples per mode id) and num_samples.
  """
  preds = np.asarray(channel_preds)
  if preds.ndim != 2 or preds.shape[1] != 3:
    raise UserError(f'stacked_mnist_metric expects predictions [n, 3], got {preds.shape}')
  if preds.size and (preds.min() < 0 or preds.max() > 9):
    raise UserError(f'digit predictions must lie in 0..9, got {preds.min()}..{preds.max()}')
  stats = class_histogram_stats(mode_id(preds[:, 0], preds[:, 1], preds[:, 2]), NUM_MODES)
  return {'modes': stats['classes_covered'], 'kl_to_uniform': stats['kl_to_uniform'],
          'histogram': stats['histogram'], 'num_samples': int(len(preds))}
