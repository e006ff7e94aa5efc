"""Pure train steps, one per GAN family, and their jit wrapper.

A step is  step(state, images_uint8 [N, H, W, C], key) -> (state, metrics):  a pure
function of arrays with networks, optimisers and hyper-parameters closed over. The
noise of step s is drawn from fold_in(key, s), so it is a function of (seed, s) alone
(seed 000's common random numbers: runs that differ only in eta see identical noise).
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxgan import kernels, losses
from jaxgan.state import GANState, apply_gradients, global_norm

# Independent random streams derived from the run's seed.
STREAM_INIT, STREAM_TRAIN, STREAM_EVAL = 0, 1, 2


class Models(NamedTuple):
  """The static half of a GAN: modules and optimisers (never in the state)."""
  gen: nn.Module
  disc: nn.Module
  tx_gen: optax.GradientTransformation
  tx_disc: optax.GradientTransformation


def to_unit_range(images: jax.Array) -> jax.Array:
  """uint8 pixels [0, 255] -> float32 in [-1, 1] (inside the step: 4x less to transfer)."""
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) / 127.5 - 1.0
  return images.astype(jnp.float32)


def latent(key: jax.Array, n: int, dim: int, dist: str = 'normal') -> jax.Array:
  """Generator noise z [n, dim]: N(0, I) or U[-1, 1]."""
  if dist == 'normal':
    return jax.random.normal(key, (n, dim))
  return jax.random.uniform(key, (n, dim), minval=-1.0, maxval=1.0)


def uses_vbn(gen: nn.Module) -> bool:
  """Whether G normalises with virtual batch norm (needs a reference batch)."""
  return getattr(gen, 'norm', 'batch') == 'virtual'


def generate(gen: nn.Module, params: Any, batch_stats: Any, *inputs: jax.Array,
             train: bool = True, ref: tuple[jax.Array, ...] | None = None
             ) -> tuple[jax.Array, Any]:
  """G(z) or, conditional, G(z, labels) -> (images, new batch_stats). train=True
  normalises with batch statistics.

  A G with virtual batch norm is run twice (tricks.apply_with_reference): on the fixed
  reference inputs `ref` (vbn_reference), whose statistics it stores, then on inputs.
  """
  variables = {'params': params, 'batch_stats': batch_stats}
  if uses_vbn(gen):
    from jaxgan.nets import tricks  # pylint: disable=g-import-not-at-top
    return (tricks.apply_with_reference(gen, {'params': params}, ref, inputs, train=train),
            batch_stats)
  if not train:
    return gen.apply(variables, *inputs, train=False), batch_stats
  out, upd = gen.apply(variables, *inputs, train=True, mutable=['batch_stats'])
  return out, upd.get('batch_stats', batch_stats)


def vbn_reference(key: jax.Array, n: int, latent_dim: int, dist: str,
                  num_classes: int = 0) -> tuple[jax.Array, ...]:
  """Virtual batch norm's reference inputs, fixed for the whole run (one key per run):
  (noise,), or (noise, labels) for a conditional G, the labels 0..K-1 cycling: every
  class weighs in the reference statistics as much as in training, which draws them
  uniformly."""
  z = latent(jax.random.fold_in(key, 2**31 - 1), n, latent_dim, dist)
  if num_classes:
    return z, jnp.arange(n, dtype=jnp.int32) % num_classes
  return (z,)


def sample(models: Models, state: GANState, inputs: tuple[jax.Array, ...],
           bn: str = 'batch', ref: tuple[jax.Array, ...] | None = None) -> jax.Array:
  """G(z) or G(z, y) in [-1, 1]; bn='batch' normalises with the batch's statistics,
  'running' with the running averages; ref is virtual batch norm's reference input."""
  out, _ = generate(models.gen, state.gen.params, state.gen.batch_stats, *inputs,
                    train=(bn == 'batch'), ref=ref)
  return out


# ---------------------------------------------------------------------------------
# The general step of the GAN family (issue 3): every system is a StepSpec.
# ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StepSpec:
  """Static description of one training step (hashable; closed over by jit).

  Schedule: n_disc D updates (each on its own real batch), then n_gen G updates,
  all inside one compiled step (lax.scan), so `state.step` counts G iterations.
  """
  latent_dim: int = 100
  noise: str = 'normal'                 # normal | uniform (VT-GAN)
  n_disc: int = 1                       # D (critic) updates per step: WGAN 5, vanilla k
  n_gen: int = 1                        # G updates per step: seed 003's DCGAN 2
  d_loss: str = 'bce'                   # bce | wasserstein
  g_loss: str = 'non_saturating'        # non_saturating | minimax | wasserstein
  real_target: float = 1.0              # one-sided label smoothing (Salimans 2016): 0.9
  eta: float = 0.0                      # weight of MMD^2 on D features (seed 000)
  sigmas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
  estimator: str = 'unbiased'          # unbiased | biased | seed000 (kernels.mmd2_from_kernels)
  mmd_fake: str = 'g_step'              # MMD^2's fake batch: G's own (g_step) or the D step's noise (d_step)
  noise_period: int = 0                 # > 0: step s draws the noise of step s mod noise_period
  feature_matching: float = 0.0         # weight of |E f(real) - E f(fake)|^2 in G's loss
  adversarial_weight: float = 1.0       # weight of G's adversarial loss (0 with pure feature matching)
  gp_weight: float = 0.0                # lambda of the WGAN-GP gradient penalty
  clip: float = 0.0                     # WGAN weight clipping c (0 = off)
  num_classes: int = 0                  # > 0: AC-GAN class-conditional G and class head
  class_smoothing: float = 0.0          # label smoothing of D's class targets (seed 001)
  disc_batches: str = 'grouped'         # grouped: one D call, BN per half | separate: two calls


def _disc_outputs(disc: nn.Module, variables: dict, x: jax.Array, *, groups: int,
                  rngs: dict) -> tuple[dict, Any]:
  """D(x) as a dict {'logit', 'features'[, 'class_logits']} and its new batch_stats."""
  out, upd = disc.apply(variables, x, train=True, num_groups=groups, rngs=rngs,
                        mutable=['batch_stats'])
  names = ('logit', 'features', 'class_logits')
  return dict(zip(names, out)), upd.get('batch_stats', variables.get('batch_stats', {}))


def disc_pair(disc: nn.Module, params: Any, batch_stats: Any, real: jax.Array, fake: jax.Array,
              *, mode: str, rngs: dict) -> tuple[dict, dict, Any]:
  """D on a real and a fake batch, each normalised (and minibatch-discriminated) alone.

  mode 'grouped': one call on concat([real, fake]) with two BatchNorm groups (every
  convolution runs once); 'separate': two calls, real first (VT-GAN, whose minibatch
  layer must only compare real with real and fake with fake). Returns (real_out,
  fake_out, batch_stats).
  """
  variables = {'params': params, 'batch_stats': batch_stats}
  if mode == 'grouped':
    out, stats = _disc_outputs(disc, variables, jnp.concatenate([real, fake.astype(real.dtype)]),
                               groups=2, rngs=rngs)
    n = out['logit'].shape[0] // 2  # rows per half: N, or N / m for a packed D (PacGAN)
    return ({k: v[:n] for k, v in out.items()}, {k: v[n:] for k, v in out.items()}, stats)
  real_out, stats = _disc_outputs(disc, variables, real, groups=1, rngs=rngs)
  fake_out, stats = _disc_outputs(disc, {'params': params, 'batch_stats': stats}, fake,
                                  groups=1, rngs=rngs)
  return real_out, fake_out, stats


def _class_targets(labels: jax.Array, spec: StepSpec, smoothing: Any) -> jax.Array:
  """One-hot targets, smoothed by `smoothing` (None: never) when the spec smooths."""
  if smoothing is not None and spec.class_smoothing:
    return losses.smoothed_class_targets(labels, spec.num_classes, smoothing)
  return jax.nn.one_hot(labels, spec.num_classes)


# StepSpec fields a sweep may give each member (traced values; the spec's own value,
# the largest over the members, only decides which terms are computed).
TRACED_HPARAMS = ('eta', 'gp_weight', 'feature_matching', 'adversarial_weight', 'real_target',
                  'class_smoothing')


def gan_step(state: GANState, batch: dict, key: jax.Array, *, models: Models,
             spec: StepSpec, hp: dict | None = None) -> tuple[GANState, dict[str, jax.Array]]:
  """One training iteration of any system of the GAN family.

  batch: {'images': [n_disc, N, ...] (uint8 pixels or float points), 'labels':
  [n_disc, N] int (conditional systems only)}. D phase: n_disc updates, update j on
  real batch j and a fake batch from fresh noise. G phase: n_gen updates, each on fresh
  noise, scored by the updated D against the last real batch (used by MMD^2 and
  feature matching). Noise of step s comes from fold_in(key, s): common random numbers.
  hp: optional traced values of TRACED_HPARAMS overriding spec's (sweeps vmap over them).
  """
  hp = hp or {}
  val = lambda name: hp.get(name, getattr(spec, name))
  if spec.gp_weight or spec.clip:
    from jaxgan import penalties  # pylint: disable=g-import-not-at-top
  gen, disc = models.gen, models.disc
  if not isinstance(batch, dict):  # a bare image batch [N, ...] (n_disc = 1, unconditional)
    batch = {'images': batch[None]}
  images = batch['images']
  n = images.shape[1]
  # Seed 000's literal protocol reuses epoch 1's per-minibatch noise every epoch.
  noise_step = state.step % spec.noise_period if spec.noise_period else state.step
  k_d, k_g = jax.random.split(jax.random.fold_in(key, noise_step))
  cond = spec.num_classes > 0

  # Virtual batch norm's reference batch: one input batch fixed for the run (the key
  # is the run's, not the step's).
  ref = (vbn_reference(key, n, spec.latent_dim, spec.noise, spec.num_classes)
         if uses_vbn(gen) else None)

  def make_fake(params, batch_stats, k):
    k_z, k_y = jax.random.split(k)
    z = latent(k_z, n, spec.latent_dim, spec.noise)
    y = jax.random.randint(k_y, (n,), 0, spec.num_classes) if cond else None
    out, stats = generate(gen, params, batch_stats, *((z, y) if cond else (z,)), ref=ref)
    return out, stats, y

  def d_keys(j):  # (fake noise, penalty, dropout) keys of D update j
    return jax.random.split(jax.random.fold_in(k_d, j), 3)

  def d_update(disc_state, j):
    k_fake, k_gp, k_drop = d_keys(j)
    real = to_unit_range(images[j])
    fake, _, fake_y = make_fake(state.gen.params, state.gen.batch_stats, k_fake)
    fake = jax.lax.stop_gradient(fake)

    def loss_fn(params):
      ro, fo, stats = disc_pair(disc, params, disc_state.batch_stats, real, fake,
                                mode=spec.disc_batches, rngs={'dropout': k_drop})
      loss = losses.DISC_LOSSES[spec.d_loss](ro['logit'], fo['logit'], val('real_target'))
      aux = {'d_adv': loss}
      if cond:  # D maximises L_S + L_C: the class of real and of fake images
        l_c = (losses.acgan_class_loss(ro['class_logits'], _class_targets(batch['labels'][j], spec, val('class_smoothing')))
               + losses.acgan_class_loss(fo['class_logits'], _class_targets(fake_y, spec, None)))
        loss, aux['d_class'] = loss + l_c, l_c
      if spec.gp_weight:
        def critic(x):  # x [n, ...] -> [n]; must not couple examples (LayerNorm, no BN)
          return disc.apply({'params': params, 'batch_stats': disc_state.batch_stats},
                            x, train=True, rngs={'dropout': k_drop})[0]
        gp = penalties.gradient_penalty(critic, real, fake, k_gp)
        loss, aux['gp'] = loss + val('gp_weight') * gp, gp
      # Mean D(x) and D(G(z)) as probabilities for BCE, raw critic values for Wasserstein.
      squash = jax.nn.sigmoid if spec.d_loss == 'bce' else (lambda v: v)
      aux.update(d_real=jnp.mean(squash(ro['logit'])), d_fake=jnp.mean(squash(fo['logit'])))
      return loss, (stats, aux)

    (loss, (stats, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(disc_state.params)
    new = apply_gradients(disc_state, grads, stats, models.tx_disc)
    if spec.clip:
      new = new.replace(params=penalties.clip_weights(new.params, spec.clip))
    return new, dict(aux, d_loss=loss, d_grad_norm=global_norm(grads))

  disc_state, d_metrics = jax.lax.scan(d_update, state.disc, jnp.arange(spec.n_disc))
  d_metrics = jax.tree.map(lambda v: v[-1], d_metrics)   # the last D update of the step
  real = to_unit_range(images[-1])
  need_real = spec.eta or spec.feature_matching

  def g_update(gen_state, j):
    k_fake, k_drop = jax.random.split(jax.random.fold_in(k_g, j))

    def loss_fn(params):
      fake, stats, fake_y = make_fake(params, gen_state.batch_stats, k_fake)
      rngs = {'dropout': k_drop}
      dvars = {'params': disc_state.params, 'batch_stats': disc_state.batch_stats}
      if need_real:
        ro, fo, _ = disc_pair(disc, disc_state.params, disc_state.batch_stats, real, fake,
                              mode=spec.disc_batches, rngs=rngs)
      else:
        fo, _ = _disc_outputs(disc, dvars, fake, groups=1, rngs=rngs)
      adv = losses.GEN_LOSSES[spec.g_loss](fo['logit'])
      aux = {'g_adv': adv}
      loss = val('adversarial_weight') * adv
      if spec.eta:
        mmd_fo = fo
        if spec.mmd_fake == 'd_step':
          # Seed 000's algorithm takes MMD^2 between the features of the D step's fake
          # batch and real batch: G regenerates that batch from the D step's noise with
          # its current parameters, so the term still has a gradient for G.
          fake_d, _, _ = make_fake(params, gen_state.batch_stats, d_keys(spec.n_disc - 1)[0])
          _, mmd_fo, _ = disc_pair(disc, disc_state.params, disc_state.batch_stats, real,
                                   fake_d, mode=spec.disc_batches, rngs=rngs)
        mmd2 = kernels.mmd2(mmd_fo['features'], jax.lax.stop_gradient(ro['features']),
                            spec.sigmas, spec.estimator)
        loss, aux['mmd2'] = loss + val('eta') * mmd2, mmd2
      if spec.feature_matching:
        fm = losses.feature_matching(ro['features'], fo['features'])
        loss, aux['feature_matching'] = loss + val('feature_matching') * fm, fm
      if cond:  # G maximises L_C - L_S: its images should be classified as their labels
        l_c = losses.acgan_class_loss(fo['class_logits'], jax.nn.one_hot(fake_y, spec.num_classes))
        loss, aux['g_class'] = loss + l_c, l_c
      return loss, (stats, aux)

    (loss, (stats, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(gen_state.params)
    return (apply_gradients(gen_state, grads, stats, models.tx_gen),
            dict(aux, g_loss=loss, g_grad_norm=global_norm(grads)))

  gen_state, g_metrics = jax.lax.scan(g_update, state.gen, jnp.arange(spec.n_gen))
  g_metrics = jax.tree.map(lambda v: v[-1], g_metrics)
  new_state = state.replace(step=state.step + 1, gen=gen_state, disc=disc_state)
  return new_state, {**d_metrics, **g_metrics}
