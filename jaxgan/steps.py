"""Pure train steps, one per GAN family, and their jit wrapper.

A step is  step(state, images_uint8 [N, H, W, C], key) -> (state, metrics):  a pure
function of arrays with networks, optimisers and hyper-parameters closed over. The
noise of step s is drawn from fold_in(key, s), so it is a function of (seed, s) alone
(seed 000's common random numbers: runs that differ only in eta see identical noise).
"""
from __future__ import annotations

import functools
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


def generate(gen: nn.Module, params: Any, batch_stats: Any, z: jax.Array,
             train: bool = True) -> tuple[jax.Array, Any]:
  """G(z) -> (images, new batch_stats). train=True normalises with batch statistics."""
  if not train:
    return gen.apply({'params': params, 'batch_stats': batch_stats}, z, train=False), batch_stats
  out, upd = gen.apply({'params': params, 'batch_stats': batch_stats}, z, train=True,
                       mutable=['batch_stats'])
  return out, upd.get('batch_stats', batch_stats)


def disc_real_fake(disc: nn.Module, params: Any, batch_stats: Any, real: jax.Array,
                   fake: jax.Array) -> tuple[tuple[jax.Array, jax.Array],
                                             tuple[jax.Array, jax.Array], Any]:
  """D on real and fake as two separate BatchNorm batches, in one call on 2N images.

  As in the DCGAN reference (and bench/torch_reference.py), real and fake batches are
  normalised with their own statistics (BatchNorm num_groups=2), while every
  convolution runs once on the concatenated batch.

  Returns ((real_logit, fake_logit), (real_feats, fake_feats), batch_stats).
  """
  n = real.shape[0]
  (logit, feats), upd = disc.apply({'params': params, 'batch_stats': batch_stats},
                                   jnp.concatenate([real, fake.astype(real.dtype)]),
                                   train=True, num_groups=2, mutable=['batch_stats'])
  return (logit[:n], logit[n:]), (feats[:n], feats[n:]), upd.get('batch_stats', {})


def mmd_dcgan_step(state: GANState, images: jax.Array, key: jax.Array, *, models: Models,
                   latent_dim: int, eta: float, sigmas: tuple[float, ...], estimator: str,
                   gen_loss: str = 'non_saturating', real_target: float = 1.0
                   ) -> tuple[GANState, dict[str, jax.Array]]:
  """One D update (BCE), then one G update on BCE_G + eta * MMD^2 (seed 000, SPEC S4).

  MMD^2 is taken between D's penultimate features of a fresh fake batch G(z') and of
  the real batch, both computed with the *updated* D; only the fake side carries
  gradient. eta = 0 is the plain DCGAN.
  """
  gen, disc = models.gen, models.disc
  real = to_unit_range(images)
  n = real.shape[0]
  k_d, k_g = jax.random.split(jax.random.fold_in(key, state.step))

  # D phase: fake from z, no gradient into G.
  fake, _ = generate(gen, state.gen.params, state.gen.batch_stats, latent(k_d, n, latent_dim))
  fake = jax.lax.stop_gradient(fake)

  def d_loss_fn(params):
    (real_logit, fake_logit), _, stats = disc_real_fake(
        disc, params, state.disc.batch_stats, real, fake)
    loss = losses.bce_discriminator(real_logit, fake_logit, real_target)
    return loss, (stats, real_logit, fake_logit)

  (d_loss, (d_stats, real_logit, fake_logit)), d_grads = jax.value_and_grad(
      d_loss_fn, has_aux=True)(state.disc.params)
  disc_state = apply_gradients(state.disc, d_grads, d_stats, models.tx_disc)

  # G phase: fresh z', features from the updated D.
  def g_loss_fn(params):
    fake, gen_stats = generate(gen, params, state.gen.batch_stats, latent(k_g, n, latent_dim))
    (_, fake_logit), (real_feats, fake_feats), _ = disc_real_fake(
        disc, disc_state.params, disc_state.batch_stats, real, fake)
    bce = losses.GEN_LOSSES[gen_loss](fake_logit)
    mmd2 = kernels.mmd2(fake_feats, jax.lax.stop_gradient(real_feats), sigmas, estimator)
    return bce + eta * mmd2, (gen_stats, bce, mmd2)

  (g_loss, (g_stats, g_bce, mmd2)), g_grads = jax.value_and_grad(
      g_loss_fn, has_aux=True)(state.gen.params)
  gen_state = apply_gradients(state.gen, g_grads, g_stats, models.tx_gen)

  metrics = {
      'd_loss': d_loss, 'g_loss': g_loss, 'g_bce': g_bce, 'mmd2': mmd2,
      'd_real': jnp.mean(jax.nn.sigmoid(real_logit)),
      'd_fake': jnp.mean(jax.nn.sigmoid(fake_logit)),
      'd_grad_norm': global_norm(d_grads), 'g_grad_norm': global_norm(g_grads),
  }
  return state.replace(step=state.step + 1, gen=gen_state, disc=disc_state), metrics


def jit_step(step_fn, **static) -> Any:
  """jit a step with its statics closed over and the state buffers donated."""
  return jax.jit(functools.partial(step_fn, **static), donate_argnums=(0,))


def sample(models: Models, state: GANState, z: jax.Array, bn: str = 'batch') -> jax.Array:
  """Images G(z) in [-1, 1]; bn='batch' uses z's batch statistics, 'running' the averages."""
  out, _ = generate(models.gen, state.gen.params, state.gen.batch_stats, z, train=(bn == 'batch'))
  return out
