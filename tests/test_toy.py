"""Tests of jaxgan.data.toy: the 2-D ring / grid mixtures and the PacGAN mode statistics."""

import jax
import numpy as np
import pytest

from jaxgan.data import toy
from jaxgan.errors import UserError

N_STATS = 25_000


def _assert_one_line(err):
  text = str(err.value)
  assert '\n' not in text and '\r' not in text, text
  return text


def test_means_follow_spec():
  ring = toy.mixture_means('ring')
  assert ring.shape == (8, 2) and ring.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 1.0, atol=1e-7)  # radius 1
  np.testing.assert_array_equal(ring[0], [1, 0])
  np.testing.assert_array_equal(ring[2], [0, 1])  # exact, no 6e-17 from cos(pi/2)
  angles = np.sort(np.mod(np.arctan2(ring[:, 1], ring[:, 0]), 2 * np.pi))
  np.testing.assert_allclose(np.diff(angles), 2 * np.pi / 8, atol=1e-6)  # evenly spaced
  grid = toy.mixture_means('grid')
  assert grid.shape == (25, 2)
  assert {tuple(m) for m in grid.tolist()} == {(x, y) for x in (-4, -2, 0, 2, 4)
                                               for y in (-4, -2, 0, 2, 4)}
  assert toy.mixture_std('ring') == 0.01 and toy.mixture_std('grid') == 0.05
  # The aliases name the same mixtures.
  np.testing.assert_array_equal(toy.mixture_means('ring8'), ring)
  np.testing.assert_array_equal(toy.mixture_means('grid25'), grid)


def test_unknown_mixture_is_one_line_user_error():
  with pytest.raises(UserError) as err:
    toy.mixture_means('spiral')
  assert "unknown 2-D mixture 'spiral'" in _assert_one_line(err)


def _check_statistics(samples, name):
  """Per-mode means, stds and weights of `samples` match mixture `name`."""
  samples = np.asarray(samples, dtype=np.float64)
  assert samples.shape == (N_STATS, 2)
  means = toy.mixture_means(name).astype(np.float64)
  std = toy.mixture_std(name)
  nearest = ((samples[:, None] - means[None])**2).sum(-1).argmin(1)
  k = len(means)
  counts = np.bincount(nearest, minlength=k)
  # Uniform weights: each count is Binomial(N, 1/k); 5 standard deviations of slack.
  expected = N_STATS / k
  assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts
  for m in range(k):
    pts = samples[nearest == m]
    # The mean of n_m points has std std/sqrt(n_m): allow 5 of those.
    np.testing.assert_allclose(pts.mean(0), means[m], atol=5 * std / np.sqrt(len(pts)))
    # Sample std of ~1000-3000 points is within ~10% of the truth.
    np.testing.assert_allclose(pts.std(0), std, rtol=0.1)
  # Pooled over modes the std estimate is tight.
  np.testing.assert_allclose((samples - means[nearest]).std(0), std, rtol=0.02)


@pytest.mark.parametrize('name', ['ring', 'grid'])
def test_numpy_sampler_statistics(name):
  samples = toy.sample_mixture_np(name, np.random.default_rng(0), N_STATS)
  assert samples.dtype == np.float32
  _check_statistics(samples, name)


@pytest.mark.parametrize('name', ['ring', 'grid'])
def test_jax_sampler_statistics(name):
  samples = toy.sample_mixture_jax(name, jax.random.key(0), N_STATS)
  assert samples.dtype == np.float32 and samples.shape == (N_STATS, 2)
  _check_statistics(samples, name)


def test_high_quality_fraction_of_true_samples():
  # For an isotropic 2-D Gaussian, P(|x - mu| <= 3 std) = 1 - exp(-9 / 2) = 0.98889.
  for name in ('ring', 'grid'):
    stats = toy.mode_stats(toy.sample_mixture(name, 1, N_STATS), name)
    assert abs(stats['high_quality_fraction'] - (1 - np.exp(-4.5))) < 0.004
    assert stats['modes_covered'] == stats['num_modes']


def test_jax_sampler_deterministic_and_jittable():
  # Same (name, n) as the statistics test, so the compiled sampler is reused (fast suite).
  key = jax.random.key(42)
  a = toy.sample_mixture_jax('grid', key, N_STATS)
  b = toy.sample_mixture_jax('grid', key, N_STATS)
  np.testing.assert_array_equal(a, b)
  jitted = jax.jit(lambda k: toy.sample_mixture_jax('grid', k, N_STATS))
  np.testing.assert_allclose(jitted(key), a, rtol=0, atol=1e-6)
  assert not np.array_equal(toy.sample_mixture_jax('grid', jax.random.key(43), N_STATS), a)
  # Raw uint32 keys work too.
  raw = toy.sample_mixture_jax('ring', jax.random.PRNGKey(0), 32)
  assert raw.shape == (32, 2)
  # The samples follow the mixture (no sample from outside it).
  assert toy.mode_stats(a, 'grid')['high_quality_fraction'] > 0.98


def test_sample_mixture_is_pure_function_of_seed_and_step():
  # Numpy path: (seed, step) -> the same batch; another step or seed -> another batch.
  a = toy.sample_mixture('ring', 7, 32, step=3)
  assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (32, 2)
  np.testing.assert_array_equal(a, toy.sample_mixture('ring', 7, 32, step=3))
  assert not np.array_equal(a, toy.sample_mixture('ring', 7, 32, step=4))
  assert not np.array_equal(a, toy.sample_mixture('ring', 8, 32, step=3))
  np.testing.assert_array_equal(toy.sample_mixture('ring', 7, 32),
                                toy.sample_mixture_np('ring', 7, 32))
  # JAX path: a key and a step fold in; no step uses the key as is.
  key = jax.random.key(7)
  k3 = toy.sample_mixture('ring', key, 32, step=3)
  assert isinstance(k3, jax.Array)
  np.testing.assert_array_equal(k3, toy.sample_mixture_jax('ring', jax.random.fold_in(key, 3),
                                                           32))
  np.testing.assert_array_equal(toy.sample_mixture('ring', key, 32),
                                toy.sample_mixture_jax('ring', key, 32))
  for bad in (-1, 1.5, 'x'):
    with pytest.raises(UserError):
      toy.sample_mixture('ring', bad, 4)
  with pytest.raises(UserError):
    toy.sample_mixture('ring', 0, 4, step=-1)
  with pytest.raises(UserError):
    toy.sample_mixture_np('ring', 0, -1)


@pytest.mark.parametrize('name', ['ring', 'grid'])
def test_mode_stats_all_modes_at_means(name):
  means = toy.mixture_means(name)
  samples = np.repeat(means, 3, axis=0)
  stats = toy.mode_stats(samples, name)
  assert stats['modes_covered'] == len(means) == stats['num_modes']
  assert stats['high_quality_fraction'] == 1.0
  np.testing.assert_array_equal(stats['per_mode_counts'], np.full(len(means), 3))
  assert stats['per_mode_counts'].dtype == np.int64


def test_mode_stats_one_mode():
  means = toy.mixture_means('grid')
  samples = means[7] + np.zeros((100, 2), np.float32)
  stats = toy.mode_stats(samples, 'grid')
  assert stats['modes_covered'] == 1
  assert stats['high_quality_fraction'] == 1.0
  expected = np.zeros(25, np.int64)
  expected[7] = 100
  np.testing.assert_array_equal(stats['per_mode_counts'], expected)


def test_mode_stats_off_mode_noise():
  # The ring's centre is 1 (= 100 std) from every mean; the grid's cell centres are sqrt(2)
  # (= 28 std) from theirs; far points are far from everything.
  off_ring = np.array([[0, 0], [0.5, 0], [3, 3], [-10, 2]], np.float32)
  off_grid = np.array([[1, 1], [-3, 3], [10, 10], [0, 1]], np.float32)
  for samples, name in ((off_ring, 'ring'), (off_grid, 'grid')):
    stats = toy.mode_stats(samples, name)
    assert stats['modes_covered'] == 0
    assert stats['high_quality_fraction'] == 0.0
    assert stats['per_mode_counts'].sum() == 0


def test_mode_stats_mixed_and_boundary():
  std = toy.mixture_std('ring')
  means = toy.mixture_means('ring').astype(np.float64)
  samples = np.array([
      means[0] + [2.9 * std, 0],  # inside 3 std: high quality for mode 0
      means[0] + [0, -3.1 * std],  # just outside
      means[4] + [0, 2.0 * std],  # mode 4
      means[4],  # mode 4
      [0.0, 0.0],  # off mode
  ])
  stats = toy.mode_stats(samples, 'ring')
  assert stats['modes_covered'] == 2
  assert stats['high_quality_fraction'] == pytest.approx(3 / 5)
  np.testing.assert_array_equal(stats['per_mode_counts'], [1, 0, 0, 0, 2, 0, 0, 0])
  # NaN samples (a diverged generator) are never high quality.
  stats = toy.mode_stats(np.full((4, 2), np.nan), 'ring')
  assert stats['modes_covered'] == 0 and stats['high_quality_fraction'] == 0.0
  # JAX arrays are accepted; an empty batch scores 0.
  assert toy.mode_stats(jax.numpy.asarray(samples), 'ring')['modes_covered'] == 2
  assert toy.mode_stats(np.zeros((0, 2)), 'ring')['high_quality_fraction'] == 0.0
  with pytest.raises(UserError) as err:
    toy.mode_stats(np.zeros((4, 3)), 'ring')
  assert 'shape [n, 2]' in _assert_one_line(err)
