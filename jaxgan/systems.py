"""From a config to the pieces of a run: networks, optimisers, initial state, step.

The host loop (train.py), the benchmarks and the tests all build a system through
these functions, so they time and test exactly what `main.py` trains.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import kernels, losses, nets, steps
from jaxgan.nets import conv_ops
from jaxgan.errors import UserError
from jaxgan.state import GANState, NetState


def make_optimizer(optim: Any) -> optax.GradientTransformation:
  """adam(lr, b1, b2) | rmsprop(lr) (WGAN) | sgd(lr, momentum) (Goodfellow 2014)."""
  if optim.name == 'adam':
    return optax.adam(optim.learning_rate, b1=optim.b1, b2=optim.b2)
  if optim.name == 'rmsprop':
    return optax.rmsprop(optim.learning_rate)
  if optim.name == 'sgd':
    return optax.sgd(optim.learning_rate, momentum=optim.momentum or None)
  raise UserError(f"optim.name must be 'adam', 'rmsprop' or 'sgd', got {optim.name!r}")


def build_models(config: Any, data_shape: tuple[int, ...], num_classes: int | None = None
                 ) -> steps.Models:
  """Networks and optimisers of the config for data of shape [H, W, C] (or [2]).

  config.model.compute_dtype ('float32' | 'bfloat16') is the networks' compute dtype
  (nets.build_networks passes it to every layer). Mixed precision stops at the
  networks: their parameters are created float32 (param_dtype), so the optimisers'
  state, which follows the parameters, is float32 too; BatchNorm statistics and the
  networks' outputs (images, logits, features) are float32, so the losses, MMD^2 and the
  gradient penalty run in float32.
  """
  gen, disc = nets.build_networks(config.model, tuple(data_shape), num_classes)
  return steps.Models(gen, disc, make_optimizer(config.optim), make_optimizer(config.optim))


def is_conditional(config: Any) -> bool:
  """AC-GAN / VT-GAN: G takes labels and D has a class head."""
  return bool(config.model.get('num_classes', 0))


def _init_net(module, key, args, tx) -> NetState:
  variables = module.init({'params': key, 'dropout': key}, *args, train=False)
  params = variables['params']
  return NetState(params=params, batch_stats=variables.get('batch_stats', {}),
                  opt_state=tx.init(params))


def create_state(config: Any, models: steps.Models, data_shape: tuple[int, ...]) -> GANState:
  """Initial state; parameters are a pure function of config.seed."""
  k_init = jax.random.fold_in(jax.random.key(config.seed), steps.STREAM_INIT)
  k_gen, k_disc = jax.random.split(k_init)
  gen_args = (jnp.zeros((2, config.model.latent_dim), jnp.float32),)
  if is_conditional(config):
    gen_args += (jnp.zeros((2,), jnp.int32),)
  # Two examples, or two packs of model.pack examples for a packed D (PacGAN).
  x = jnp.zeros((2 * config.model.get('pack', 1),) + tuple(data_shape), jnp.float32)
  return GANState(step=jnp.zeros((), jnp.int32),
                  gen=_init_net(models.gen, k_gen, gen_args, models.tx_gen),
                  disc=_init_net(models.disc, k_disc, (x,), models.tx_disc))


def train_key(config: Any) -> jax.Array:
  """The key whose fold_in(., step) gives step's noise (same for every eta)."""
  return jax.random.fold_in(jax.random.key(config.seed), steps.STREAM_TRAIN)


def eval_inputs(config: Any, n: int) -> tuple[jax.Array, ...]:
  """The one fixed evaluation input of a run: noise (and labels 0..K-1 cycling)."""
  key = jax.random.fold_in(jax.random.key(config.seed), steps.STREAM_EVAL)
  z = steps.latent(key, n, config.model.latent_dim, config.model.get('noise', 'normal'))
  if is_conditional(config):
    return z, jnp.arange(n, dtype=jnp.int32) % config.model.num_classes
  return (z,)


def eval_noise(config: Any, n: int) -> jax.Array:
  """The fixed evaluation noise (depends on the seed only)."""
  return eval_inputs(config, n)[0]


def step_spec(config: Any) -> steps.StepSpec:
  """The static step description of a config."""
  t = config.train
  return steps.StepSpec(
      latent_dim=config.model.latent_dim, noise=config.model.get('noise', 'normal'),
      n_disc=t.n_disc, n_gen=t.n_gen, d_loss=t.d_loss, g_loss=t.g_loss,
      real_target=float(t.real_label), eta=float(t.eta),
      sigmas=tuple(float(s) for s in t.mmd_sigmas), estimator=t.mmd_estimator,
      mmd_fake=t.mmd_fake, noise_period=int(t.noise_period),
      feature_matching=float(t.feature_matching), adversarial_weight=float(t.adversarial_weight),
      gp_weight=float(t.gp_weight), clip=float(t.clip),
      num_classes=int(config.model.get('num_classes', 0)),
      class_smoothing=float(t.class_smoothing), disc_batches=t.disc_batches)


def _choice(name: str, value: Any, allowed) -> None:
  if value not in allowed:
    raise UserError(f'{name} must be one of {sorted(allowed)}, got {value!r}')


def _check_pack(config: Any) -> None:
  """model.pack (PacGAN): D judges packs of m samples of the real batch and of the fake
  batch, each packed on its own, so m must divide the batch."""
  m = config.model.get('pack', 1)
  if not isinstance(m, int) or m < 1:
    raise UserError(f'model.pack must be an integer >= 1 (1: no packing), got {m!r}')
  if m == 1:
    return
  if config.data.batch_size % m:
    raise UserError(f'data.batch_size ({config.data.batch_size}) must be divisible by model.pack '
                    f'({m}): D packs the real batch and the fake batch {m} samples at a time')
  if is_conditional(config):
    raise UserError('model.pack needs an unconditional model: a pack of samples has no single '
                    'class label; set --config.model.pack=1')
  if config.train.gp_weight:
    raise UserError('model.pack does not work with train.gp_weight: the penalty differentiates '
                    'the critic one example at a time; set --config.model.pack=1 or gp_weight=0')


def validate(config: Any) -> None:
  """Rejects config values that would fail deep inside a step, with a one-line hint."""
  t, d = config.train, config.data
  if d.batch_size < 2:
    raise UserError(f'data.batch_size must be >= 2 (MMD^2 and BatchNorm need pairs), got {d.batch_size}')
  if d.limit is not None and d.limit < d.batch_size * t.n_disc:
    raise UserError(f'data.limit ({d.limit}) must be >= data.batch_size * train.n_disc '
                    f'({d.batch_size * t.n_disc})')
  _choice('train.mmd_estimator', t.mmd_estimator, kernels.ESTIMATORS)
  _choice('train.mmd_fake', t.mmd_fake, ('g_step', 'd_step'))
  if t.noise_period < 0:
    raise UserError(f'train.noise_period must be >= 0 steps (0: fresh noise every step), '
                    f'got {t.noise_period}')
  _choice('train.d_loss', t.d_loss, losses.DISC_LOSSES)
  _choice('train.g_loss', t.g_loss, losses.GEN_LOSSES)
  _choice('train.disc_batches', t.disc_batches, ('grouped', 'separate'))
  _choice('model.noise', config.model.get('noise', 'normal'), ('normal', 'uniform'))
  _choice('model.compute_dtype', config.model.get('compute_dtype', 'float32'), ('float32', 'bfloat16'))
  if 'upconv_impl' in config.model:
    _choice('model.upconv_impl', config.model.upconv_impl, ('subpixel', 'transpose'))
  _choice('model.conv_impl', config.model.get('conv_impl', 'auto'), conv_ops.CONV_IMPLS)
  if not t.mmd_sigmas or min(t.mmd_sigmas) <= 0:
    raise UserError(f'train.mmd_sigmas must be positive bandwidths, got {t.mmd_sigmas}')
  for name in ('num_epochs', 'n_disc', 'n_gen'):
    if t[name] < 1:
      raise UserError(f'train.{name} must be >= 1, got {t[name]}')
  if t.num_steps is not None and t.num_steps < 1:
    raise UserError(f'train.num_steps must be >= 1, got {t.num_steps}')
  if config.optim.learning_rate <= 0:
    raise UserError(f'optim.learning_rate must be > 0, got {config.optim.learning_rate}')
  _choice('model.disc_norm', config.model.get('disc_norm', 'batch'), ('batch', 'layer', 'none'))
  if t.gp_weight and config.model.get('disc_norm', 'none') == 'batch':
    raise UserError('train.gp_weight needs a per-example critic: set --config.model.disc_norm=layer '
                    '(BatchNorm couples the examples the penalty differentiates one by one)')
  if config.model.get('minibatch_kernels', 0) and t.disc_batches != 'separate':
    raise UserError("minibatch discrimination compares a batch's examples with each other: "
                    "set --config.train.disc_batches=separate")
  _check_pack(config)
  nets.gen_norm_of(config.model)
  if t.class_smoothing and not is_conditional(config):
    raise UserError('train.class_smoothing smooths class labels: it needs a conditional model (num_classes > 0)')


def make_sampler(config: Any, models: steps.Models) -> Callable:
  """jit-compiled (state, eval_inputs) -> G's outputs in [-1, 1], with G normalised as
  config.sample.bn says (and virtual batch norm given the run's reference batch)."""
  ref = None
  if steps.uses_vbn(models.gen):
    ref = steps.vbn_reference(train_key(config), config.data.batch_size, config.model.latent_dim,
                              config.model.get('noise', 'normal'),
                              config.model.get('num_classes', 0))
  return jax.jit(lambda state, inputs: steps.sample(models, state, inputs, bn=config.sample.bn,
                                                    ref=ref))


def step_function(config: Any, models: steps.Models) -> Callable:
  """The config's train step, not yet compiled: step(state, batch, key) -> (state, metrics)."""
  return functools.partial(steps.gan_step, models=models, spec=step_spec(config))


def make_step(config: Any, models: steps.Models) -> Callable:
  """The jit-compiled, state-donating train step of the config.

  step(state, batch, key) with batch = {'images': [n_disc, N, ...], 'labels': [n_disc, N]}.
  """
  return jax.jit(step_function(config, models), donate_argnums=(0,))


def stack_batches(batches: list[dict]) -> dict:
  """[{'images': [N, ...], ...}] * n_disc -> {'images': [n_disc, N, ...], ...} (host arrays)."""
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}
