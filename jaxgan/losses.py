"""Adversarial losses: pure functions of logits, chosen by name from the config.

Every discriminator loss has the signature  d_loss(real_logit [N], fake_logit [N],
real_target=1.0) -> scalar  and every generator loss  g_loss(fake_logit [N]) -> scalar,
so a config picks one by name (`DISC_LOSSES`, `GEN_LOSSES`). Logits, not
probabilities: log(sigmoid(l)) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l)
are evaluated stably.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def bce_discriminator(real_logit: jax.Array, fake_logit: jax.Array,
                      real_target: float = 1.0) -> jax.Array:
  """-E[t log D(x) + (1 - t) log(1 - D(x))] - E[log(1 - D(G(z)))] (Goodfellow 2014).

  `real_target` < 1 is one-sided label smoothing (Salimans et al. 2016).
  """
  real = real_target * jax.nn.softplus(-real_logit) + (1.0 - real_target) * jax.nn.softplus(real_logit)
  return jnp.mean(real) + jnp.mean(jax.nn.softplus(fake_logit))


def non_saturating_generator(fake_logit: jax.Array) -> jax.Array:
  """-E[log D(G(z))]: the '-log D trick' generator loss."""
  return jnp.mean(jax.nn.softplus(-fake_logit))


def minimax_generator(fake_logit: jax.Array) -> jax.Array:
  """E[log(1 - D(G(z)))]: the saturating generator loss of the minimax game."""
  return -jnp.mean(jax.nn.softplus(fake_logit))


DISC_LOSSES = {'bce': bce_discriminator}
GEN_LOSSES = {'non_saturating': non_saturating_generator, 'minimax': minimax_generator}
