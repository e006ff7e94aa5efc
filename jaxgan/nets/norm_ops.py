"""Training-mode batch normalisation with a hand-written VJP (layers.BatchNorm, impl='vjp').

`batch_norm_train` normalises x [N, ..., C] per channel over the batch and every other
axis, each of `num_groups` equal, consecutive batch groups with its own statistics, and
returns the statistics too (for the running averages). Its backward is the textbook
one, two per-channel sums and one element-wise pass:

  xhat = (x - mean) * inv,  inv = 1 / sqrt(var + eps),  n = elements per channel and group
  dbias = sum dy,  dscale = sum dy * xhat
  dx = scale * inv / n * (n dy - dbias - xhat dscale)
       + (dmean + 2 dvar (x - mean)) / n          [cotangents of the returned statistics]

Why: JAX's autodiff of the forward formula produces several reductions and element-wise
fusions for the same quantities, and XLA:CPU ran jaxgan's BatchNorm at ~2x PyTorch's
fused kernels (docs/performance.md, "Where the time goes"). Statistics are float32 for
bfloat16 inputs (float64 stays float64), as in layers.BatchNorm's autodiff form.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _grouped(x: jax.Array, num_groups: int) -> tuple[jax.Array, tuple[int, ...]]:
  """x in the statistics dtype, and the axes its statistics reduce over (keepdims shape
  [g, 1, ..., C], or [1, ..., C] when g = 1).

  g = 1 has no leading group axis: with one, XLA:CPU's reduction fusion of the gradient
  took a ~30x slower path (layers.BatchNorm)."""
  f32 = jnp.promote_types(x.dtype, jnp.float32)
  if num_groups == 1:
    return x.astype(f32), tuple(range(x.ndim - 1))
  xg = x.astype(f32).reshape((num_groups, x.shape[0] // num_groups) + x.shape[1:])
  return xg, tuple(range(1, xg.ndim - 1))


def _statistics(x: jax.Array, num_groups: int, epsilon: float):
  xg, axes = _grouped(x, num_groups)
  mean = jnp.mean(xg, axis=axes, keepdims=True)
  # E[x^2] - E[x]^2, one pass over x, as the autodiff form and flax compute it.
  var = jnp.maximum(jnp.mean(jnp.square(xg), axis=axes, keepdims=True) - jnp.square(mean), 0.0)
  return xg, mean, var, jax.lax.rsqrt(var + epsilon)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array, num_groups: int = 1,
                     epsilon: float = 1e-5) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Batch normalisation of x [N, ..., C] with the statistics of its own batch groups.

  Returns (y, mean, var): y shaped like x in the statistics dtype (float32 for
  bfloat16 x; the caller casts), mean and the biased variance [num_groups, C].
  """
  return _forward(x, scale, bias, num_groups, epsilon)[0]


def _forward(x, scale, bias, num_groups, epsilon):
  c = x.shape[-1]
  xg, mean, var, inv = _statistics(x, num_groups, epsilon)
  # The autodiff form's expression, so both round alike.
  y = (xg - mean) * inv * scale.astype(xg.dtype) + bias.astype(xg.dtype)
  out = (y.reshape(x.shape), mean.reshape(num_groups, c), var.reshape(num_groups, c))
  return out, (x, mean, inv, scale)


def _bwd(num_groups, epsilon, res, cts):
  del epsilon  # inv holds it
  x, mean, inv, scale = res
  dy, dmean, dvar = cts
  xg, axes = _grouped(x, num_groups)
  dyg, _ = _grouped(dy, num_groups)
  n = xg.size // (num_groups * x.shape[-1])
  xhat = (xg - mean) * inv
  dbias = jnp.sum(dyg, axis=axes, keepdims=True)
  dscale = jnp.sum(dyg * xhat, axis=axes, keepdims=True)
  a = inv * scale.astype(xg.dtype)
  # Per-channel coefficients, so dx is one element-wise pass: dx = a dy + b + c xhat.
  b = (dmean.reshape(mean.shape).astype(xg.dtype) - a * dbias) / n
  c = (2.0 * dvar.reshape(mean.shape).astype(xg.dtype) / inv - a * dscale) / n
  dx = (a * dyg + b + c * xhat).reshape(x.shape).astype(x.dtype)
  per_channel = lambda s: s.reshape(-1, x.shape[-1]).sum(0)
  return dx, per_channel(dscale).astype(scale.dtype), per_channel(dbias).astype(scale.dtype)


batch_norm_train.defvjp(_forward, _bwd)
