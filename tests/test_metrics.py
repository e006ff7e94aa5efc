"""Scores against closed forms and float64 hand computations (no real data, no network)."""
import math

import numpy as np
import pytest

from jaxgan.errors import UserError
from jaxgan.metrics import scores
from jaxgan.data import stacked as stacked_data
from jaxgan.metrics import stacked_mnist


# --- Frechet distance.


def _random_spd(rng, d):
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_of_a_set_to_itself_is_zero():
  feats = np.random.default_rng(0).normal(size=(500, 16)) * 3.0 + 1.0
  mu, sigma = scores.feature_stats(feats)
  assert scores.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_diagonal_closed_form():
  # Diagonal covariances: tr sqrt(s1 s2) = sum sqrt(a_i b_i), so
  # d^2 = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
  rng = np.random.default_rng(1)
  mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
  a, b = rng.uniform(0.1, 4.0, size=6), rng.uniform(0.1, 4.0, size=6)
  want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  got = scores.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
  np.testing.assert_allclose(got, want, rtol=1e-10)


def test_frechet_distance_commuting_covariances_closed_form():
  # s1 = Q diag(a) Q^T, s2 = Q diag(b) Q^T commute, so sqrt(s1 s2) = Q diag(sqrt(a b)) Q^T and
  # tr sqrt(s1 s2) = sum sqrt(a_i b_i), although neither matrix is diagonal.
  rng = np.random.default_rng(2)
  q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
  a, b = rng.uniform(0.1, 3.0, size=8), rng.uniform(0.1, 3.0, size=8)
  s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
  mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
  want = np.sum((mu1 - mu2) ** 2) + np.sum(a) + np.sum(b) - 2 * np.sum(np.sqrt(a * b))
  np.testing.assert_allclose(scores.frechet_distance(mu1, s1, mu2, s2), want, rtol=1e-9)


def test_frechet_distance_general_case_matches_eigenvalues_of_s1_s2():
  # Independent route: the eigenvalues of the non-symmetric product s1 s2 (np.linalg.eigvals).
  rng = np.random.default_rng(3)
  s1, s2 = _random_spd(rng, 10), _random_spd(rng, 10)
  mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
  lam = np.linalg.eigvals(s1 @ s2)
  want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(lam)).real
  np.testing.assert_allclose(scores.frechet_distance(mu1, s1, mu2, s2), want, rtol=1e-9)


def test_frechet_distance_one_dimensional_gaussians():
  # 1-D: d^2 = (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s.
  got = scores.frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]])
  assert got == pytest.approx(9.0 + 1.0, rel=1e-12)


def test_frechet_distance_singular_covariance_is_finite():
  s = np.diag([1.0, 0.0, 2.0])
  got = scores.frechet_distance(np.zeros(3), s, np.ones(3), np.diag([0.0, 1.0, 2.0]))
  assert got == pytest.approx(3.0 + 1.0 + 1.0, rel=1e-12)


def test_feature_stats_matches_numpy_and_rejects_bad_shapes():
  x = np.random.default_rng(4).normal(size=(50, 3)).astype(np.float32)
  mu, sigma = scores.feature_stats(x)
  assert mu.dtype == np.float64 and sigma.shape == (3, 3)
  np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64).T), rtol=1e-12)
  with pytest.raises(UserError):
    scores.feature_stats(np.zeros(5))
  with pytest.raises(UserError):
    scores.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


# --- Inception score.


@pytest.mark.parametrize('k', [1, 3, 10])
def test_inception_score_of_even_one_hot_predictions_is_k(k):
  probs = np.eye(k)[np.arange(100 * k) % k]      # each split of 10k rows holds every class 10 times
  mean, std = scores.inception_score(probs, splits=10)
  assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_constant_predictions_is_one():
  probs = np.tile([0.1, 0.6, 0.3], (200, 1))
  mean, std = scores.inception_score(probs, splits=4)
  assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_matches_hand_computation_and_splits():
  probs = np.array([[0.5, 0.5], [1.0, 0.0], [0.2, 0.8], [0.9, 0.1]])
  def one(p):
    py = p.mean(0)
    kl = [sum(pi * math.log(pi / qi) for pi, qi in zip(row, py) if pi > 0) for row in p]
    return math.exp(np.mean(kl))
  s1, s2 = one(probs[:2]), one(probs[2:])
  mean, std = scores.inception_score(probs, splits=2)
  assert mean == pytest.approx((s1 + s2) / 2, rel=1e-12)
  assert std == pytest.approx(abs(s1 - s2) / 2, rel=1e-12)


def test_inception_score_rejects_logits_and_bad_splits():
  with pytest.raises(UserError, match='softmax'):
    scores.inception_score(np.random.default_rng(0).normal(size=(20, 4)), splits=2)
  with pytest.raises(UserError):
    scores.inception_score(np.eye(3), splits=10)


# --- KID.


def test_kid_matches_float64_hand_computation():
  rng = np.random.default_rng(5)
  x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)) + 0.5
  def k(a, b):
    return (np.dot(a, b) / 3 + 1.0) ** 3
  xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
  yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
  xy = sum(k(a, b) for a in x for b in y) / 25
  # subset_size >= both sizes: the subset size is capped at 5, every subset is a permutation
  # of the whole sets, and the estimator ignores order, so every subset gives the same value.
  mean, std = scores.kid(x, y, num_subsets=3, subset_size=10, seed=0)
  np.testing.assert_allclose(mean, xx + yy - 2 * xy, rtol=1e-12)
  assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_near_zero_for_one_distribution_and_positive_for_shifted():
  rng = np.random.default_rng(6)
  d = 16
  x, y = rng.normal(size=(2000, d)), rng.normal(size=(2000, d))
  mean, std = scores.kid(x, y, num_subsets=20, subset_size=200, seed=1)
  # The subsets overlap, so std / sqrt(20) understates the error of the mean; 3x it is a safe
  # bound for an unbiased estimate of 0.
  assert abs(mean) < 3 * std
  shifted, _ = scores.kid(x, y + 0.5, num_subsets=20, subset_size=200, seed=1)
  assert shifted > 10 * std and shifted > 0.05


def test_kid_is_reproducible_for_a_seed():
  rng = np.random.default_rng(7)
  x, y = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
  assert scores.kid(x, y, 5, 50, seed=3) == scores.kid(x, y, 5, 50, seed=3)
  assert scores.kid(x, y, 5, 50, seed=3) != scores.kid(x, y, 5, 50, seed=4)


# --- Class histogram (collapse monitor).


def test_class_histogram_stats_exact():
  labels = np.array([0, 0, 0, 2, 2, 3])
  stats = scores.class_histogram_stats(labels, num_classes=4)
  assert stats['histogram'] == [3, 0, 2, 1]
  assert stats['classes_covered'] == 3
  p = np.array([3, 2, 1]) / 6
  assert stats['kl_to_uniform'] == pytest.approx(np.sum(p * np.log(4 * p)), rel=1e-12)


def test_class_histogram_stats_uniform_and_collapsed():
  even = scores.class_histogram_stats(np.arange(50) % 10, 10)
  assert even['kl_to_uniform'] == pytest.approx(0.0, abs=1e-12) and even['classes_covered'] == 10
  one = scores.class_histogram_stats(np.full(7, 4), 10)
  assert one['kl_to_uniform'] == pytest.approx(math.log(10), rel=1e-12)
  assert one['classes_covered'] == 1 and one['histogram'][4] == 7


def test_class_histogram_stats_rejects_out_of_range():
  with pytest.raises(UserError):
    scores.class_histogram_stats(np.array([0, 10]), 10)
  with pytest.raises(UserError):
    scores.class_histogram_stats(np.array([], np.int64), 10)


# --- Stacked MNIST.


def test_mode_id_channel_order():
  assert stacked_data.mode_id(1, 2, 3) == 123
  assert stacked_data.mode_id(0, 0, 7) == 7
  np.testing.assert_array_equal(stacked_data.mode_id([9, 0], [9, 5], [9, 0]), [999, 50])


def test_make_stacked_mnist_channels_carry_their_digits():
  # Synthetic "digits": image i is filled with the value 10 * label_i + i % 10, so the label of
  # each channel can be read back from its pixels.
  labels = np.arange(40) % 10
  images = (10 * labels + np.arange(40) // 10)[:, None, None, None] * np.ones((1, 28, 28, 1))
  images = images.astype(np.uint8)
  stacked, modes = stacked_data.make_stacked_mnist(images, labels, 500, seed=0)
  assert stacked.shape == (500, 28, 28, 3) and stacked.dtype == np.uint8
  digits = stacked[:, 0, 0, :].astype(np.int64) // 10
  np.testing.assert_array_equal(modes, 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2])
  again, modes2 = stacked_data.make_stacked_mnist(images, labels, 500, seed=0)
  np.testing.assert_array_equal(again, stacked)
  assert len(np.unique(modes)) > 300           # 500 draws from 1000 modes: ~390 expected


def test_stacked_mnist_metric_uniform_and_single_mode():
  triples = np.array([[m // 100, m // 10 % 10, m % 10] for m in range(1000)] * 26)
  even = stacked_mnist.stacked_mnist_metric(triples)
  assert even['modes'] == 1000 and even['num_samples'] == 26_000
  assert even['kl_to_uniform'] == pytest.approx(0.0, abs=1e-12)
  one = stacked_mnist.stacked_mnist_metric(np.tile([[4, 0, 2]], (26_000, 1)))
  assert one['modes'] == 1
  assert one['kl_to_uniform'] == pytest.approx(math.log(1000), rel=1e-12)


def test_stacked_mnist_metric_partial_coverage():
  # Modes 0..499, twice each: p = 1/500 on half the modes, KL = log(1000 / 500).
  triples = np.array([[m // 100, m // 10 % 10, m % 10] for m in range(500)] * 2)
  got = stacked_mnist.stacked_mnist_metric(triples)
  assert got['modes'] == 500
  assert got['kl_to_uniform'] == pytest.approx(math.log(2), rel=1e-12)
