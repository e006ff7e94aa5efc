"""2-D Gaussian mixtures of the mode benchmarks (SPEC "Mode benchmarks", PacGAN protocol).

Two mixtures, each with equal weights on its modes:

  * 'ring' (alias 'ring8'): 8 Gaussians with means (cos(2 pi k / 8), sin(2 pi k / 8)),
    k = 0..7 (radius 1), isotropic std 0.01.
  * 'grid' (alias 'grid25'): 25 Gaussians with means {-4, -2, 0, 2, 4}^2, std 0.05.

Samples come from a numpy `Generator` (host side) or a JAX key (inside a jitted step); either way
a batch is a pure function of (seed, step), so every configuration of a sweep sees the same real
points at the same step. `mode_stats` scores generated samples by the PacGAN rule.
"""

import functools
from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.errors import UserError

_RING_MODES = 8
_GRID_AXIS = (-4.0, -2.0, 0.0, 2.0, 4.0)

# Canonical name -> std; the aliases name the number of modes, as papers' tables do.
_STD = {'ring': 0.01, 'grid': 0.05}
_ALIASES = {'ring8': 'ring', 'grid25': 'grid'}

MIXTURES = tuple(_STD)

# A sample is high quality if it lies within this many stds of its nearest mean (PacGAN).
HIGH_QUALITY_STDS = 3.0


def canonical_name(name: str) -> str:
  """Returns 'ring' or 'grid' for a mixture name or alias; raises UserError otherwise."""
  name = _ALIASES.get(name, name)
  if name not in _STD:
    known = ', '.join(sorted(set(_STD) | set(_ALIASES)))
    raise UserError(f'unknown 2-D mixture {name!r}; known mixtures: {known}')
  return name


def mixture_means(name: str) -> np.ndarray:
  """Returns the means of mixture `name`, float32 [K, 2] (K = 8 for the ring, 25 for the grid).

  The ring's modes go counter-clockwise from (1, 0); the grid's are in row-major order of
  (x, y) over {-4, -2, 0, 2, 4}, so mode index = 5 * ix + iy.
  """
  name = canonical_name(name)
  if name == 'ring':
    angles = 2.0 * np.pi * np.arange(_RING_MODES) / _RING_MODES
    means = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    # cos(pi / 2) is 6e-17, not 0: snap such rounding noise so the modes on the axes are exact
    # and the ring is symmetric under x -> -x and y -> -y.
    means[np.abs(means) < 1e-12] = 0.0
  else:
    axis = np.asarray(_GRID_AXIS)
    means = np.stack(np.meshgrid(axis, axis, indexing='ij'), axis=-1).reshape(-1, 2)
  return means.astype(np.float32)


def mixture_std(name: str) -> float:
  """Returns the per-coordinate std of every Gaussian of mixture `name`."""
  return _STD[canonical_name(name)]


def _check_n(n) -> int:
  """Returns `n` as an int; raises UserError unless it is an integer >= 0."""
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
    raise UserError(f'the number of samples must be an integer >= 0, got {n!r}')
  return int(n)


def sample_mixture_np(name: str, rng: Union[np.random.Generator, int], n: int) -> np.ndarray:
  """Draws `n` points of mixture `name` on the host.

  Args:
    name: a mixture name ('ring', 'grid' or an alias).
    rng: a numpy Generator (advanced in place) or an int seed.
    n: the number of points.

  Returns:
    float32 [n, 2]: a uniformly chosen mode's mean plus isotropic Gaussian noise of the
    mixture's std.
  """
  means = mixture_means(name)
  std = mixture_std(name)
  n = _check_n(n)
  rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
  modes = rng.integers(0, len(means), size=n)
  noise = rng.standard_normal((n, 2))
  # The sum is formed in float64 and cast once, so the noise is not rounded to float32 twice.
  return (means[modes].astype(np.float64) + std * noise).astype(np.float32)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _sample_jax(name: str, key: jax.Array, n: int) -> jax.Array:
  # Jitted with name and n static: called eagerly (evaluation, tests) it is one compiled
  # program per (name, n) instead of a dispatch and a compile per op; inside a caller's jit it
  # is simply inlined.
  means = jnp.asarray(mixture_means(name))
  mode_key, noise_key = jax.random.split(key)
  modes = jax.random.randint(mode_key, (n,), 0, means.shape[0])
  noise = jax.random.normal(noise_key, (n, 2), dtype=jnp.float32)
  return means[modes] + jnp.float32(mixture_std(name)) * noise


def sample_mixture_jax(name: str, key: jax.Array, n: int) -> jax.Array:
  """Draws `n` points of mixture `name` with JAX; usable inside `jax.jit`.

  `name` and `n` are Python values (static under jit); only `key` is traced.

  Args:
    name: a mixture name ('ring', 'grid' or an alias).
    key: a JAX PRNG key (typed or raw uint32 [2]).
    n: the number of points.

  Returns:
    float32 [n, 2]; the same for the same key on every backend.
  """
  return _sample_jax(canonical_name(name), key, _check_n(n))


def _is_jax_key(x) -> bool:
  """True for a typed JAX key or a raw uint32 [2] key array (not for a Python/numpy int)."""
  if isinstance(x, jax.Array):
    return jnp.issubdtype(x.dtype, jax.dtypes.prng_key) or (x.dtype == jnp.uint32
                                                            and x.shape == (2,))
  return False


def sample_mixture(name: str, key_or_seed, n: int, step: Optional[int] = None):
  """Draws `n` points of mixture `name`, as a pure function of (seed or key, step).

  Args:
    name: a mixture name ('ring', 'grid' or an alias).
    key_or_seed: a JAX key (then the JAX sampler runs and a jax.Array is returned) or an int
      seed >= 0 (then the numpy sampler runs and a numpy array is returned).
    n: the number of points.
    step: if given, the points of this training step: the key is `fold_in(key, step)`, or the
      numpy stream is seeded by `SeedSequence(seed, spawn_key=(step,))` (as `epoch_permutation`
      does, so that (seed, step) pairs never collide). None uses the key or seed as is.

  Returns:
    float32 [n, 2] (jax.Array for a key, np.ndarray for a seed).
  """
  if _is_jax_key(key_or_seed):
    key = key_or_seed if step is None else jax.random.fold_in(key_or_seed, step)
    return sample_mixture_jax(name, key, n)
  seed = key_or_seed
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise UserError(f'sample_mixture needs a JAX key or an int seed >= 0, got {seed!r}')
  if step is not None and (isinstance(step, bool) or not isinstance(step, (int, np.integer))
                           or step < 0):
    raise UserError(f'step must be an integer >= 0, got {step!r}')
  seq = (np.random.SeedSequence(int(seed)) if step is None
         else np.random.SeedSequence(int(seed), spawn_key=(int(step),)))
  return sample_mixture_np(name, np.random.Generator(np.random.PCG64(seq)), n)


def mode_stats(samples, name: str) -> dict:
  """Scores samples by the PacGAN mode rule, in numpy.

  Each sample is assigned to its nearest mean (Euclidean); it is high quality if that distance
  is at most `HIGH_QUALITY_STDS` stds. A mode is covered if it has at least one high-quality
  sample.

  Args:
    samples: float array-like [n, 2] (numpy or JAX).
    name: the mixture the samples should follow.

  Returns:
    dict with
      modes_covered: int, the number of covered modes (0..K).
      high_quality_fraction: float, high-quality samples / n (0.0 when n == 0).
      per_mode_counts: int64 [K], high-quality samples per mode, in `mixture_means` order.
      num_modes: int, K.
      mode_kl_uniform: float, KL(p || uniform) in nats of the high-quality samples' mode
        histogram p (0 when every mode is equally hit, log K when one mode holds all;
        NaN when no sample is high quality).
  """
  means = mixture_means(name).astype(np.float64)
  radius = HIGH_QUALITY_STDS * mixture_std(name)
  x = np.asarray(samples, dtype=np.float64)
  if x.ndim != 2 or x.shape[1] != 2:
    raise UserError(f'mode_stats expects samples of shape [n, 2], got {x.shape}')
  # [n, K] squared distances; K <= 25, so even 1e5 samples need only a few MB. Float64 keeps a
  # point exactly on the 3-std boundary from flipping with rounding.
  d2 = ((x[:, None, :] - means[None, :, :])**2).sum(axis=-1)
  nearest = d2.argmin(axis=1)
  # A NaN sample (a diverged generator) compares False here, so it never counts as high quality.
  good = d2[np.arange(len(x)), nearest] <= radius**2
  counts = np.bincount(nearest[good], minlength=len(means)).astype(np.int64)
  if counts.sum():
    p = counts / counts.sum()
    hit = p > 0
    kl = float(np.sum(p[hit] * np.log(p[hit] * len(means))))
  else:
    kl = float('nan')
  return {
      'mode_kl_uniform': kl,
      'modes_covered': int((counts > 0).sum()),
      'high_quality_fraction': float(good.mean()) if len(x) else 0.0,
      'per_mode_counts': counts,
      'num_modes': len(means),
  }
