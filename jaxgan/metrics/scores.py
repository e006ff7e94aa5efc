"""Sample-quality scores from a feature network: Inception Score, FID, KID, class histograms.

Every function takes the outputs of a classifier (class probabilities [N, K], penultimate
features [N, D] or predicted labels [N]) as plain arrays, so the same code scores MNIST with
jaxgan's own CNN (jaxgan/metrics/classifier.py) and RGB data with an Inception network. A
reported number must name its protocol: feature network, sample count, reference split, splits.

Precision: the scores are small differences of large sums (FID subtracts traces, KID averages
kernel values of order 1-1000 to get MMD^2 of order 1e-3), so everything here runs in float64.
"""
from __future__ import annotations

from typing import Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import kernels
from jaxgan.errors import UserError


def _as_2d_float64(x, what: str) -> np.ndarray:
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 2:
    raise UserError(f'{what} must have shape [N, D], got {x.shape}')
  if not np.all(np.isfinite(x)):
    raise UserError(f'{what} holds non-finite values (NaN or inf): the network or the samples '
                    'diverged')
  return x


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """x * log(y), with 0 * log(anything) = 0 (the KL convention 0 log 0 = 0)."""
  out = np.zeros(np.broadcast(x, y).shape, dtype=np.float64)
  pos = np.broadcast_to(x > 0, out.shape)
  out[pos] = np.broadcast_to(x, out.shape)[pos] * np.log(np.broadcast_to(y, out.shape)[pos])
  return out


# --- Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs").


def inception_score(probs, splits: int = 10) -> tuple[float, float]:
  """exp(E_x KL(p(y|x) || p(y))), averaged over `splits` disjoint splits.

  p(y) is the marginal of each split (the mean of its rows), as in the original code. A class
  probability of exactly 0 (softmax underflow) contributes 0 (0 log 0 = 0), never NaN.

  Args:
    probs: [N, K] class probabilities p(y|x) of N samples (rows sum to 1).
    splits: number of contiguous splits (N // splits rows each; the last N % splits rows are
      dropped so every split has the same size).

  Returns:
    (mean, std) over the splits. The score lies in [1, K]: 1 when every sample gets the same
    prediction, K when predictions are confident and spread evenly over K classes.
  """
  p = _as_2d_float64(probs, 'probs')
  n, _ = p.shape
  if splits < 1 or n < splits:
    raise UserError(f'inception_score needs 1 <= splits <= N, got splits={splits}, N={n}')
  if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
    raise UserError('inception_score expects probabilities (rows >= 0 summing to 1); '
                    'apply softmax to logits first')
  size = n // splits
  scores = []
  for s in range(splits):
    part = p[s * size:(s + 1) * size]
    marginal = part.mean(axis=0, keepdims=True)
    # KL(p(y|x) || p(y)) = sum_y p log p - p log p(y); where p(y|x) > 0, p(y) > 0 too.
    kl = (_xlogy(part, part) - _xlogy(part, marginal)).sum(axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


# --- Frechet distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule").


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
  """Mean [D] and covariance [D, D] (unbiased, N - 1) of features [N, D], in float64."""
  x = _as_2d_float64(feats, 'feats')
  if x.shape[0] < 2:
    raise UserError(f'feature_stats needs at least 2 samples, got {x.shape[0]}')
  return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
  """Symmetric square root of a symmetric PSD matrix via eigh; rounding negatives -> 0."""
  w, v = np.linalg.eigh((s + s.T) / 2)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = |mu1 - mu2|^2 + tr(s1) + tr(s2) - 2 tr sqrt(s1 s2)

  s1 s2 is not symmetric, and a general matrix square root of it (scipy's sqrtm) can return
  complex parts from rounding. Instead, with r = sqrt(s1) (symmetric PSD), s1 s2 = r (r s2) and
  (r s2) r = r s2 r share their eigenvalues (AB and BA always do). r s2 r is symmetric PSD, so
  these eigenvalues are real and >= 0, and tr sqrt(s1 s2) = sum_i sqrt(lambda_i(r s2 r)): two
  symmetric eigendecompositions, no complex arithmetic, valid for singular covariances too.

  Args:
    mu1, mu2: [D] means.
    sigma1, sigma2: [D, D] symmetric PSD covariances.

  Returns:
    The squared distance d^2 (this is what "FID" reports), a float >= 0.
  """
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
  s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
  d = mu1.shape[0]
  if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
    raise UserError(f'frechet_distance: shapes do not match: mu1 {mu1.shape}, sigma1 {s1.shape}, '
                    f'mu2 {mu2.shape}, sigma2 {s2.shape}')
  r = _psd_sqrt(s1)
  m = r @ s2 @ r
  lam = np.linalg.eigvalsh((m + m.T) / 2)
  tr_sqrt = np.sqrt(np.clip(lam, 0.0, None)).sum()
  diff = mu1 - mu2
  fd = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt
  # The true value is >= 0; a tiny negative (e.g. a set against itself) is rounding only.
  return float(max(fd, 0.0))


# --- Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs").


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """k(a, b) = (a.b / d + 1)^3 for every pair, x [n, d], y [m, d] -> [n, m] (float64)."""
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid(feats_x, feats_y, num_subsets: int = 100, subset_size: int = 1000,
        seed: Union[int, np.random.Generator] = 0) -> tuple[float, float]:
  """Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel.

  As in Binkowski et al., MMD^2 is averaged over `num_subsets` random subsets of
  `subset_size` rows drawn without replacement from each set (capped at the smaller set).
  Unbiased, so it can be slightly negative and is ~0 in expectation for equal distributions.

  Args:
    feats_x: [n, D] features of one sample set (e.g. generated).
    feats_y: [m, D] features of the other (e.g. real).
    num_subsets: number of subset pairs.
    subset_size: rows per subset (>= 2).
    seed: an int seed or a numpy Generator choosing the subsets.

  Returns:
    (mean, std) of MMD^2 over the subsets (std of the per-subset values, not of the mean).
  """
  x = _as_2d_float64(feats_x, 'feats_x')
  y = _as_2d_float64(feats_y, 'feats_y')
  if x.shape[1] != y.shape[1]:
    raise UserError(f'kid: feature dims differ: {x.shape[1]} vs {y.shape[1]}')
  size = min(int(subset_size), x.shape[0], y.shape[0])
  if size < 2 or num_subsets < 1:
    raise UserError(f'kid needs subsets of >= 2 rows and num_subsets >= 1, got subset size '
                    f'{size} (sets of {x.shape[0]} and {y.shape[0]}), num_subsets={num_subsets}')
  rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
  values = np.empty(num_subsets, dtype=np.float64)
  # The Gram matrices go through numpy's float64 BLAS; the estimator is kernels.py's, run with
  # x64 enabled so JAX does not round the kernel blocks to float32.
  with jax.enable_x64(True):
    for i in range(num_subsets):
      a = x[rng.choice(x.shape[0], size, replace=False)]
      b = y[rng.choice(y.shape[0], size, replace=False)]
      values[i] = kernels.mmd2_from_kernels(
          jnp.asarray(polynomial_kernel(a, a)), jnp.asarray(polynomial_kernel(b, b)),
          jnp.asarray(polynomial_kernel(a, b)), 'unbiased')
  return float(values.mean()), float(values.std())


# --- Collapse monitor: the class histogram of samples.


def class_histogram_stats(pred_labels, num_classes: int) -> dict:
  """Histogram of predicted classes, its KL to uniform and the number of classes hit.

  Args:
    pred_labels: int [N] predicted class of each sample (e.g. argmax of the classifier).
    num_classes: K; labels must lie in 0..K-1.

  Returns:
    dict with
      histogram: list of K ints, samples per class.
      kl_to_uniform: KL(p_hist || uniform) = sum_k p_k log(K p_k) with 0 log 0 = 0, in nats;
        0 for a perfectly even histogram, log K when all samples fall in one class.
      classes_covered: number of classes with at least one sample.
  """
  labels = np.asarray(pred_labels)
  if labels.ndim != 1 or labels.size == 0:
    raise UserError(f'class_histogram_stats expects a non-empty [N] array, got {labels.shape}')
  if not np.issubdtype(labels.dtype, np.integer):
    raise UserError(f'class_histogram_stats expects integer labels, got {labels.dtype}')
  if labels.min() < 0 or labels.max() >= num_classes:
    raise UserError(f'labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}')
  counts = np.bincount(labels, minlength=num_classes)
  p = counts / counts.sum()
  kl = _xlogy(p, p * num_classes).sum()
  return {
      'histogram': [int(c) for c in counts],
      'kl_to_uniform': float(kl),
      'classes_covered': int((counts > 0).sum()),
  }
