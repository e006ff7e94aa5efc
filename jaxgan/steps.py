"""The train step of every GAN: a schedule of D and G updates whose losses are named terms.

  gan_step(state, batch, key, weights) -> (state, metrics)

is a pure function of arrays with the networks, optimisers, schedule and terms closed
over. What each loss adds up is jaxgan/terms.py's business; this module only runs the
updates. The noise of step s is drawn from fold_in(key, s), so it is a function of
(seed, s) alone: runs that differ only in a weight see identical noise (seed 000's
common random numbers). systems.compile_step vmaps it over a program's members.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxgan import penalties, terms
from jaxgan.nets import tricks
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


def sample_images(models: Models, state: GANState, inputs: tuple[jax.Array, ...],
                  bn: str = 'batch', ref: tuple[jax.Array, ...] | None = None) -> jax.Array:
  """G(z) or G(z, y) in [-1, 1]; bn='batch' normalises with the batch's statistics,
  'running' with the running averages; ref is virtual batch norm's reference input."""
  out, _ = generate(models.gen, state.gen.params, state.gen.batch_stats, *inputs,
                    train=(bn == 'batch'), ref=ref)
  return out


class Schedule(NamedTuple):
  """What a step does, beyond its terms (static; every field is the config's, named as there).

  n_disc D updates, each on its own real batch, then n_gen G updates, all inside one
  compiled step (lax.scan), so `state.step` counts G iterations. With `alternate` a step
  keeps only one of the two: G's update on even steps, D's on odd ones (seed 004's loop,
  one network per minibatch).
  """
  n_disc: int            # train.n_disc
  n_gen: int             # train.n_gen
  noise_period: int      # train.noise_period: > 0, step s draws the noise of step s mod it
  clip: float            # train.clip: WGAN weight clipping after each D update (0: off)
  disc_batches: str      # train.disc_batches: grouped | separate (disc_pair)
  latent_dim: int        # model.latent_dim
  noise: str             # model.noise: normal | uniform
  num_classes: int       # model.num_classes: > 0, G draws a label per sample
  alternate: bool = False  # train.alternate: G on even steps, D on odd ones (seed 004)


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


def draw_inputs(key: jax.Array, n: int, schedule: Schedule) -> tuple[jax.Array, ...]:
  """G's inputs for n samples: (z,), or (z, labels) drawn uniformly when conditional."""
  k_z, k_y = jax.random.split(key)
  z = latent(k_z, n, schedule.latent_dim, schedule.noise)
  if schedule.num_classes:
    return z, jax.random.randint(k_y, (n,), 0, schedule.num_classes)
  return (z,)


def _keep_if(cond: jax.Array, updated: Any, old: Any) -> Any:
  """`updated` where cond holds, else `old` (a select: both sides are computed, which
  costs nothing that matters at the toy sizes that alternate, and vmaps over members)."""
  return jax.tree.map(lambda u, o: jnp.where(cond, u, o), updated, old)


def gan_step(state: GANState, batch: dict, key: jax.Array, weights: dict, *, models: Models,
             schedule: Schedule, d_terms: tuple[terms.Bound, ...],
             g_terms: tuple[terms.Bound, ...]) -> tuple[GANState, dict[str, jax.Array]]:
  """One training iteration: n_disc D updates, then n_gen G updates.

  batch: {'images': [n_disc, N, ...] (uint8 pixels or float points), 'labels':
  [n_disc, N] int (conditional models)}. D update j sees real batch j and a fake batch
  from fresh noise; each G update sees fresh noise and, for terms that need it, the
  updated D on the last real batch. weights: the terms' traced weights (terms.weights).
  Metrics: each term's, and each net's loss and gradient norm, of the last update.
  """
  gen, disc = models.gen, models.disc
  images, labels = batch['images'], batch.get('labels')
  n = images.shape[1]
  noise_step = state.step % schedule.noise_period if schedule.noise_period else state.step
  k_d, k_g = jax.random.split(jax.random.fold_in(key, noise_step))
  # Virtual batch norm's reference batch: one input batch fixed for the run (the key
  # is the run's, not the step's).
  ref = (vbn_reference(key, n, schedule.latent_dim, schedule.noise, schedule.num_classes)
         if uses_vbn(gen) else None)

  def make_fake(params, batch_stats, k):
    inputs = draw_inputs(k, n, schedule)
    out, stats = generate(gen, params, batch_stats, *inputs, ref=ref)
    return out, stats, (inputs[1] if len(inputs) > 1 else None)

  def d_keys(j):  # (fake noise, penalty, dropout) keys of D update j
    return jax.random.split(jax.random.fold_in(k_d, j), 3)

  def d_update(disc_state, j):
    k_fake, k_pen, k_drop = d_keys(j)
    real = to_unit_range(images[j])
    fake, _, fake_y = make_fake(state.gen.params, state.gen.batch_stats, k_fake)
    fake = jax.lax.stop_gradient(fake)

    def loss_fn(params):
      rngs = {'dropout': k_drop}
      ro, fo, stats = disc_pair(disc, params, disc_state.batch_stats, real, fake,
                                mode=schedule.disc_batches, rngs=rngs)

      def critic(x):  # x [n, ...] -> logits [n], for the penalties
        return disc.apply({'params': params, 'batch_stats': disc_state.batch_stats}, x,
                          train=True, rngs=rngs)[0]
      out = {'real': ro, 'fake': fo, 'real_x': real, 'fake_x': fake, 'fake_y': fake_y,
             'real_y': None if labels is None else labels[j], 'critic': critic, 'key': k_pen}
      loss, aux = terms.total(d_terms, out, weights)
      return loss, (stats, aux)

    (loss, (stats, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(disc_state.params)
    new = apply_gradients(disc_state, grads, stats, models.tx_disc)
    if schedule.clip:
      new = new.replace(params=penalties.clip_weights(new.params, schedule.clip))
    return new, dict(aux, d_loss=loss, d_grad_norm=global_norm(grads))

  disc_state, d_metrics = jax.lax.scan(d_update, state.disc, jnp.arange(schedule.n_disc))
  d_metrics = jax.tree.map(lambda v: v[-1], d_metrics)   # the last D update of the step
  if schedule.alternate:  # D keeps its update on odd steps only; G's below sees that D
    disc_state = _keep_if(state.step % 2 == 1, disc_state, state.disc)
  real = to_unit_range(images[-1])
  need = terms.needs(g_terms)

  def g_update(gen_state, j):
    k_fake, k_drop = jax.random.split(jax.random.fold_in(k_g, j))

    def loss_fn(params):
      fake, stats, fake_y = make_fake(params, gen_state.batch_stats, k_fake)
      rngs = {'dropout': k_drop}

      def d_on(fake_batch):  # the updated D on (real, fake_batch), or on the fake alone
        if 'real' in need:
          return disc_pair(disc, disc_state.params, disc_state.batch_stats, real, fake_batch,
                           mode=schedule.disc_batches, rngs=rngs)[:2]
        dvars = {'params': disc_state.params, 'batch_stats': disc_state.batch_stats}
        return None, _disc_outputs(disc, dvars, fake_batch, groups=1, rngs=rngs)[0]
      ro, fo = d_on(fake)
      out = {'real': ro, 'fake': fo, 'fake_y': fake_y}
      if 'fake_d_step' in need:
        # Seed 000's algorithm takes MMD^2 between the features of the D step's fake
        # batch and the real batch: G regenerates that batch from the D step's noise with
        # its current parameters, so the term still has a gradient for G.
        fake_d, _, _ = make_fake(params, gen_state.batch_stats, d_keys(schedule.n_disc - 1)[0])
        out['fake_d_step'] = d_on(fake_d)[1]
      loss, aux = terms.total(g_terms, out, weights)
      return loss, (stats, aux)

    (loss, (stats, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(gen_state.params)
    return (apply_gradients(gen_state, grads, stats, models.tx_gen),
            dict(aux, g_loss=loss, g_grad_norm=global_norm(grads)))

  gen_state, g_metrics = jax.lax.scan(g_update, state.gen, jnp.arange(schedule.n_gen))
  g_metrics = jax.tree.map(lambda v: v[-1], g_metrics)
  if schedule.alternate:
    gen_state = _keep_if(state.step % 2 == 0, gen_state, state.gen)
  new_state = state.replace(step=state.step + 1, gen=gen_state, disc=disc_state)
  return new_state, {**d_metrics, **g_metrics}
