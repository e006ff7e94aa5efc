"""From a config to the pieces of a run: networks, optimisers, initial state, step.

The host loop (train.py), the benchmarks and the tests all build a system through
these functions, so they time and test exactly what `main.py` trains.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxgan import kernels, losses, nets, steps
from jaxgan.errors import UserError
from jaxgan.state import GANState, init_net


def make_optimizer(optim: Any) -> optax.GradientTransformation:
  """Adam(lr, b1, b2), the optimiser of every DCGAN-family system."""
  return optax.adam(optim.learning_rate, b1=optim.b1, b2=optim.b2)


def build_models(config: Any, image_shape: tuple[int, ...]) -> steps.Models:
  """Networks and optimisers of config.system for images [H, W, C]."""
  gen, disc = nets.build_networks(config.model, image_shape)
  return steps.Models(gen, disc, make_optimizer(config.optim), make_optimizer(config.optim))


def create_state(config: Any, models: steps.Models, image_shape: tuple[int, ...]) -> GANState:
  """Initial state; parameters are a pure function of config.seed."""
  k_init = jax.random.fold_in(jax.random.key(config.seed), steps.STREAM_INIT)
  k_gen, k_disc = jax.random.split(k_init)
  z = jnp.zeros((2, config.model.latent_dim), jnp.float32)
  x = jnp.zeros((2,) + tuple(image_shape), jnp.float32)
  return GANState(step=jnp.zeros((), jnp.int32),
                  gen=init_net(models.gen, k_gen, z, models.tx_gen),
                  disc=init_net(models.disc, k_disc, x, models.tx_disc))


def train_key(config: Any) -> jax.Array:
  """The key whose fold_in(., step) gives step's noise (same for every eta)."""
  return jax.random.fold_in(jax.random.key(config.seed), steps.STREAM_TRAIN)


def eval_noise(config: Any, n: int) -> jax.Array:
  """The one fixed evaluation noise of a run (depends on the seed only)."""
  key = jax.random.fold_in(jax.random.key(config.seed), steps.STREAM_EVAL)
  return steps.latent(key, n, config.model.latent_dim)


def validate(config: Any) -> None:
  """Rejects config values that would fail deep inside a step, with a one-line hint."""
  t = config.train
  if config.data.batch_size < 2:
    raise UserError(f'data.batch_size must be >= 2 (MMD^2 and BatchNorm need pairs), got {config.data.batch_size}')
  if t.mmd_estimator not in kernels.ESTIMATORS:
    raise UserError(f'train.mmd_estimator must be one of {kernels.ESTIMATORS}, got {t.mmd_estimator!r}')
  if t.gen_loss not in losses.GEN_LOSSES:
    raise UserError(f'train.gen_loss must be one of {sorted(losses.GEN_LOSSES)}, got {t.gen_loss!r}')
  if not t.mmd_sigmas or min(t.mmd_sigmas) <= 0:
    raise UserError(f'train.mmd_sigmas must be positive bandwidths, got {t.mmd_sigmas}')
  if config.data.limit is not None and config.data.limit < config.data.batch_size:
    raise UserError(f'data.limit ({config.data.limit}) must be >= data.batch_size ({config.data.batch_size})')
  if t.num_steps is not None and t.num_steps < 1:
    raise UserError(f'train.num_steps must be >= 1, got {t.num_steps}')
  if t.num_epochs < 1:
    raise UserError(f'train.num_epochs must be >= 1, got {t.num_epochs}')
  if config.optim.learning_rate <= 0:
    raise UserError(f'optim.learning_rate must be > 0, got {config.optim.learning_rate}')
  if config.model.upconv_impl not in ('subpixel', 'transpose'):
    raise UserError(f"model.upconv_impl must be 'subpixel' or 'transpose', got {config.model.upconv_impl!r}")
  if config.model.compute_dtype not in ('float32', 'bfloat16'):
    raise UserError(f"model.compute_dtype must be 'float32' or 'bfloat16', got {config.model.compute_dtype!r}")


def make_step(config: Any, models: steps.Models) -> Callable:
  """The jit-compiled, state-donating train step of config.system."""
  t = config.train
  return steps.jit_step(
      steps.mmd_dcgan_step, models=models, latent_dim=config.model.latent_dim,
      eta=float(t.eta), sigmas=tuple(float(s) for s in t.mmd_sigmas),
      estimator=t.mmd_estimator, gen_loss=t.gen_loss, real_target=float(t.real_label))
