"""Lipschitz constraints for Wasserstein critics: weight clipping and the gradient penalty.

WGAN (Arjovsky et al. 2017) clips every critic weight to [-c, c] after each critic
update; WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs") instead
adds lambda * E[(|grad_x f(x_hat)|_2 - 1)^2] on random interpolates x_hat of real and
fake data. Both are pure functions of arrays; the caller multiplies the penalty by
lambda and adds it to the critic loss.

Every penalty in `PENALTIES` shares one signature

    penalty(critic_fn, real [N, ...], fake [N, ...], key, *, target_norm=1.0) -> scalar

where critic_fn maps a batch [n, ...] to critic values [n] or [n, 1] (for example
`lambda x: disc.apply(variables, x)`), so a config picks one by name.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

CriticFn = Callable[[jax.Array], jax.Array]


def interpolate(real: jax.Array, fake: jax.Array, key: jax.Array) -> jax.Array:
  """x_hat = a * real + (1 - a) * fake with one a ~ U[0, 1] per example.

  Args:
    real: [N, ...] real examples.
    fake: [N, ...] generated examples, same shape.
    key: PRNG key for the N mixing weights.
  Returns:
    x_hat [N, ...], each example on the segment between its real and fake partner.
  """
  if real.shape != fake.shape:
    raise ValueError(f'real {real.shape} and fake {fake.shape} must have the same shape')
  # One a per example, broadcast over its pixels: the penalty samples points along
  # straight lines between the two distributions, not a pixel-wise mixture.
  a = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  return a * real + (1.0 - a) * fake


def _safe_norm(sq: jax.Array) -> jax.Array:
  """sqrt(sq) with a zero (not NaN) derivative at sq = 0.

  The penalty is differentiated again wrt the critic's parameters; d sqrt(s)/ds is
  infinite at 0 (e.g. a dead ReLU critic), and 0 * inf poisons the update with NaN.
  The double `where` keeps the value exact and the unused branch's gradient finite.
  """
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def per_example_sq_grad_norms(critic_fn: CriticFn, x: jax.Array) -> jax.Array:
  """|grad_x f(x_i)|_2^2 for each example, x [N, ...] -> [N] float32.

  Computed as `vmap(grad(f_i))` where f_i runs critic_fn on the one-example batch
  x_i[None]. This is only the per-example gradient if critic_fn does not couple the
  examples of a batch: no BatchNorm in training mode, no minibatch discrimination, no
  batch statistics of any kind (under vmap they would silently become statistics of a
  batch of one). That is why WGAN-GP critics use LayerNorm (or no normalisation).
  VirtualBatchNorm (jaxgan.nets.tricks) is fine: its reference statistics are fixed
  inputs, not computed from the batch.
  """
  def f(xi: jax.Array) -> jax.Array:
    # reshape(()) rather than sum: a critic returning more than one value per example
    # is a bug to report, not to add up. float32 so that the gradient that flows back
    # to x starts in float32 whatever the critic's compute dtype.
    out = critic_fn(xi[None])
    return out.astype(jnp.promote_types(out.dtype, jnp.float32)).reshape(())

  grads = jax.vmap(jax.grad(f))(x)                                   # [N, ...]
  g = grads.reshape(x.shape[0], -1).astype(jnp.float32)
  return jnp.sum(g * g, axis=-1)


def per_example_grad_norms(critic_fn: CriticFn, x: jax.Array) -> jax.Array:
  """|grad_x f(x_i)|_2 for each example, x [N, ...] -> [N] float32 (see
  `per_example_sq_grad_norms` for what critic_fn must satisfy)."""
  return _safe_norm(per_example_sq_grad_norms(critic_fn, x))


def gradient_penalty(critic_fn: CriticFn, real: jax.Array, fake: jax.Array,
                     key: jax.Array, *, target_norm: float = 1.0) -> jax.Array:
  """E[(|grad_x f(x_hat)|_2 - target_norm)^2] at random interpolates (WGAN-GP).

  Args:
    critic_fn: batch [n, ...] -> critic values [n] or [n, 1]; must treat examples
      independently (see `per_example_grad_norms`).
    real: [N, ...] real examples.
    fake: [N, ...] generated examples.
    key: PRNG key for the interpolation weights.
    target_norm: the norm the gradient is pulled towards (1 in WGAN-GP).
  Returns:
    scalar float32, without lambda: the caller adds lambda * penalty to the critic loss
    and differentiates wrt the critic's parameters. The interpolates, the input
    gradient and its norm are float32 for any critic compute dtype (mixed precision).
  """
  # float32 interpolates, input gradient and norm even when the critic computes in
  # bfloat16 (mixed precision): the critic casts x_hat to its compute dtype itself, the
  # gradient comes back through that cast as float32 (its values carry the critic's
  # bfloat16 rounding), and the sum of squares over ~10^3 pixels is accumulated in
  # float32, where bfloat16's 8-bit mantissa would lose the small terms.
  f32 = jnp.promote_types(real.dtype, jnp.float32)  # at least float32 (float64 stays)
  x_hat = interpolate(real.astype(f32), fake.astype(f32), key)
  norms = per_example_grad_norms(critic_fn, x_hat)
  return jnp.mean((norms - target_norm) ** 2)


def r1_penalty(critic_fn: CriticFn, real: jax.Array) -> jax.Array:
  """0.5 E[|grad_x D(x)|_2^2] on real data: the R1 regulariser of Mescheder, Geiger and
  Nowozin 2018 ("Which training methods for GANs do actually converge?", eq. 9), whose
  weight is their gamma. critic_fn returns D's logits and must treat examples
  independently (see `per_example_sq_grad_norms`)."""
  f32 = jnp.promote_types(real.dtype, jnp.float32)
  return 0.5 * jnp.mean(per_example_sq_grad_norms(critic_fn, real.astype(f32)))


def gradient_penalty_term(out: dict, w: dict) -> tuple[jax.Array, dict]:
  """The WGAN-GP penalty on the D update's own real and fake batches (jaxgan/terms.py)."""
  gp = gradient_penalty(out['critic'], out['real_x'], out['fake_x'], out['key'])
  return gp, {'gp': gp}


def r1_term(out: dict, w: dict) -> tuple[jax.Array, dict]:
  """The R1 penalty on the D update's real batch (jaxgan/terms.py)."""
  r1 = r1_penalty(out['critic'], out['real_x'])
  return r1, {'r1': r1}


def no_penalty(critic_fn: CriticFn, real: jax.Array, fake: jax.Array, key: jax.Array,
               *, target_norm: float = 1.0) -> jax.Array:
  """0.0 with the penalty signature, so 'none' is a config choice like any other."""
  del critic_fn, real, fake, key, target_norm
  return jnp.zeros((), jnp.float32)


PENALTIES = {'none': no_penalty, 'gradient_penalty': gradient_penalty}


def _is_norm_layer(name: str, leaves: Mapping[str, Any]) -> bool:
  """Whether a module's parameter dict belongs to a normalisation layer.

  Flax's BatchNorm / LayerNorm / GroupNorm, jaxgan's BatchNorm and VirtualBatchNorm all
  name their parameters 'scale' and 'bias' (Dense and Conv use 'kernel'); the default
  module names contain 'Norm', which also catches a norm layer with use_scale=False.
  """
  if any(isinstance(v, Mapping) for v in leaves.values()):
    return False        # a container of sub-modules, not a layer
  return 'scale' in leaves or 'Norm' in name


def clip_weights(params: Any, c: float, *, clip_norm_params: bool = True) -> Any:
  """Clips critic parameters to [-c, c] (WGAN, Arjovsky et al. 2017, Algorithm 1 line 7).

  Args:
    params: the critic's 'params' collection (a nested dict of arrays); pass params
      only, never batch_stats or optimiser state.
    c: clipping bound (0.01 in the WGAN paper, 0.0015 in seed 003).
    clip_norm_params: also clip normalisation scale and bias.
  Returns:
    the same tree with every clipped leaf in [-c, c].

  Which leaves: by default every leaf, kernels, biases and normalisation scale/bias
  alike, because Algorithm 1 clips all critic parameters w and the reference WGAN code
  clamps every parameter tensor; a clipped BatchNorm scale (init 1 -> c) only rescales
  the critic, which the Wasserstein loss does not care about. `clip_norm_params=False`
  leaves normalisation parameters free, for experiments that want the Lipschitz bound
  to come from the linear layers only.
  """
  clip = lambda x: jnp.clip(x, -c, c)

  def walk(tree: Any, name: str) -> Any:
    if isinstance(tree, Mapping):
      if not clip_norm_params and _is_norm_layer(name, tree):
        return tree
      return type(tree)({k: walk(v, str(k)) for k, v in tree.items()})
    return jax.tree.map(clip, tree)

  return walk(params, '')
