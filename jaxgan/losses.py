"""Adversarial losses: pure functions of logits, chosen by name from the config.

Every discriminator loss has the signature  d_loss(real_logit [N], fake_logit [N],
real_label=1.0) -> scalar  and every generator loss  g_loss(fake_logit [N]) -> scalar,
so a config picks one by name (`DISC_LOSSES`, `GEN_LOSSES`). Logits, not
probabilities: log(sigmoid(l)) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l)
are evaluated stably.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def bce_discriminator(real_logit: jax.Array, fake_logit: jax.Array,
                      real_label: float = 1.0) -> jax.Array:
  """-E[t log D(x) + (1 - t) log(1 - D(x))] - E[log(1 - D(G(z)))] (Goodfellow 2014).

  `real_label` < 1 is one-sided label smoothing (Salimans et al. 2016).
  """
  real = real_label * jax.nn.softplus(-real_logit) + (1.0 - real_label) * jax.nn.softplus(real_logit)
  return jnp.mean(real) + jnp.mean(jax.nn.softplus(fake_logit))


def non_saturating_generator(fake_logit: jax.Array) -> jax.Array:
  """-E[log D(G(z))]: the '-log D trick' generator loss."""
  return jnp.mean(jax.nn.softplus(-fake_logit))


def minimax_generator(fake_logit: jax.Array) -> jax.Array:
  """E[log(1 - D(G(z)))]: the saturating generator loss of the minimax game."""
  return -jnp.mean(jax.nn.softplus(fake_logit))


def wasserstein_critic(real_logit: jax.Array, fake_logit: jax.Array,
                       real_label: float = 1.0) -> jax.Array:
  """E[f(G(z))] - E[f(x)]: the WGAN critic loss (Arjovsky et al. 2017, Algorithm 1).

  Args:
    real_logit: critic outputs f(x) on real data, [N] or [N, 1] (no sigmoid).
    fake_logit: critic outputs f(G(z)), [M] or [M, 1].
    real_label: only for the shared signature; label smoothing has no meaning for a
      critic, so any other value is a configuration error and raises.
  Returns:
    scalar; minimising it maximises the estimate E f(x) - E f(G(z)) of W(P_r, P_g)
    (given a Lipschitz f, which clipping or a gradient penalty has to enforce).
  """
  if isinstance(real_label, (int, float)) and real_label != 1.0:
    raise ValueError(f'real_label={real_label}: one-sided label smoothing applies to '
                     'the BCE discriminator, not to the Wasserstein critic')
  return jnp.mean(fake_logit) - jnp.mean(real_logit)


def wasserstein_generator(fake_logit: jax.Array) -> jax.Array:
  """-E[f(G(z))], fake_logit [N] or [N, 1] -> scalar: the WGAN generator loss."""
  return -jnp.mean(fake_logit)


def acgan_class_loss(class_logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Cross-entropy of the auxiliary classifier (AC-GAN, Odena et al. 2017): -L_C of a batch.

  Args:
    class_logits: [N, K] unnormalised class scores.
    targets: integer labels [N] in [0, K), or soft targets [N, K] whose rows sum to 1
      (e.g. `smoothed_class_targets`).
  Returns:
    scalar, -mean_i log softmax(class_logits_i)[y_i] (integer labels) or
    -mean_i sum_k t_ik log softmax(class_logits_i)_k (soft targets).
  D minimises it on real and fake batches, G on fake ones (D maximises L_S + L_C, G
  maximises L_C - L_S; seed 001, section 2.1).
  """
  log_p = jax.nn.log_softmax(class_logits.astype(jnp.float32), axis=-1)
  if targets.ndim == class_logits.ndim - 1:
    if not jnp.issubdtype(targets.dtype, jnp.integer):
      raise ValueError(f'targets of shape {targets.shape} are labels and must be integers, '
                       f'got {targets.dtype}')
    nll = -jnp.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]
  elif targets.shape == class_logits.shape:
    nll = -jnp.sum(targets * log_p, axis=-1)
  else:
    raise ValueError(f'targets {targets.shape} fit neither labels nor soft targets for '
                     f'class_logits {class_logits.shape}')
  return jnp.mean(nll)


def smoothed_class_targets(labels: jax.Array, num_classes: int, eps: float) -> jax.Array:
  """Label-smoothed class targets (Szegedy et al. 2016; seed 001, section 3.7).

  Args:
    labels: integer labels [N] in [0, num_classes).
    num_classes: k.
    eps: smoothing mass in [0, 1].
  Returns:
    [N, k] float32: eps / k off the label, 1 - (k - 1) eps / k on it; rows sum to 1.
  """
  k = num_classes
  # (1 - eps) one_hot + eps / k puts 1 - eps + eps / k = 1 - (k - 1) eps / k on the label.
  return (1.0 - eps) * jax.nn.one_hot(labels, k, dtype=jnp.float32) + eps / k


def feature_matching(real_features: jax.Array, fake_features: jax.Array) -> jax.Array:
  """|E f(x) - E f(G(z))|_2^2 on D's intermediate features (Salimans et al. 2016, 3.1).

  Args:
    real_features: [N, ...] features of real data.
    fake_features: [M, ...] features of generated data (same trailing shape).
  Returns:
    scalar: squared L2 distance of the batch means, summed over all feature axes.
  The real side is stop-gradient'ed: only G minimises this loss, and a gradient into D
  through the real features would be an unintended regulariser on D if a caller ever
  summed it into D's objective (and costs a backward pass for nothing). Not in
  GEN_LOSSES: it reads features, not logits.
  """
  real_mean = jnp.mean(jax.lax.stop_gradient(real_features).astype(jnp.float32), axis=0)
  fake_mean = jnp.mean(fake_features.astype(jnp.float32), axis=0)
  return jnp.sum((real_mean - fake_mean) ** 2)


DISC_LOSSES = {'bce': bce_discriminator, 'wasserstein': wasserstein_critic}
GEN_LOSSES = {'non_saturating': non_saturating_generator, 'minimax': minimax_generator,
              'wasserstein': wasserstein_generator}


# --- Terms of the step's losses (jaxgan/terms.py): term(out, w, ...) -> (value, metrics).
# `out` holds D's outputs on the step's real and fake batches ('real', 'fake': dicts of
# 'logit', 'features'[, 'class_logits']) and the batches themselves; `w` is the weights
# pytree, whose traced entries a sweep varies per member.


def disc_adversarial_term(out: dict, w: dict, *, kind: str) -> tuple[jax.Array, dict]:
  """D's adversarial loss `kind` (DISC_LOSSES), real target w['real_label']; also logs
  mean D(x) and D(G(z)): probabilities for BCE, raw critic values for Wasserstein."""
  real, fake = out['real']['logit'], out['fake']['logit']
  loss = DISC_LOSSES[kind](real, fake, w['real_label'])
  squash = jax.nn.sigmoid if kind == 'bce' else (lambda v: v)
  return loss, {'d_adv': loss, 'd_real': jnp.mean(squash(real)), 'd_fake': jnp.mean(squash(fake))}


def disc_class_term(out: dict, w: dict, *, num_classes: int) -> tuple[jax.Array, dict]:
  """AC-GAN: D maximises L_C on real images (their labels, smoothed by
  w['class_smoothing']) and on fake ones (the labels G drew them for)."""
  real_t = smoothed_class_targets(out['real_y'], num_classes, w['class_smoothing'])
  fake_t = jax.nn.one_hot(out['fake_y'], num_classes)
  l_c = (acgan_class_loss(out['real']['class_logits'], real_t)
         + acgan_class_loss(out['fake']['class_logits'], fake_t))
  return l_c, {'d_class': l_c}


def gen_adversarial_term(out: dict, w: dict, *, kind: str) -> tuple[jax.Array, dict]:
  """G's adversarial loss `kind` (GEN_LOSSES) on D(G(z))."""
  adv = GEN_LOSSES[kind](out['fake']['logit'])
  return adv, {'g_adv': adv}


def gen_class_term(out: dict, w: dict, *, num_classes: int) -> tuple[jax.Array, dict]:
  """AC-GAN: G maximises L_C, its images classified as the labels it drew them for."""
  l_c = acgan_class_loss(out['fake']['class_logits'], jax.nn.one_hot(out['fake_y'], num_classes))
  return l_c, {'g_class': l_c}


def feature_matching_term(out: dict, w: dict) -> tuple[jax.Array, dict]:
  """Feature matching between D's features of the real batch and of G's batch."""
  fm = feature_matching(out['real']['features'], out['fake']['features'])
  return fm, {'feature_matching': fm}
