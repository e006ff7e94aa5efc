"""From a config to the pieces of a run: networks, optimisers, initial state, step.

The host loop (train.py), the benchmarks and the tests all build a system through
these functions, and compile its step through `compile_step`, so they time and test
exactly what `main.py` trains.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import kernels, losses, nets, parallel, steps, sweep, terms
from jaxgan.nets import conv_ops
from jaxgan.errors import UserError
from jaxgan.state import GANState, NetState


def make_optimizer(optim: Any) -> optax.GradientTransformation:
  """adam(lr, b1, b2) | rmsprop(lr) (WGAN) | sgd(lr, momentum) (Goodfellow 2014).

  RMSProp is PyTorch's, which the reference WGAN code (Arjovsky et al.) ran:
  v <- 0.99 v + 0.01 g^2, p <- p - lr g / (sqrt(v) + 1e-8), v starting at 0; optax's
  defaults differ (decay 0.9, eps inside the square root).
  """
  if optim.name == 'adam':
    return optax.adam(optim.learning_rate, b1=optim.b1, b2=optim.b2)
  if optim.name == 'rmsprop':
    return optax.rmsprop(optim.learning_rate, decay=0.99, eps=1e-8, eps_in_sqrt=False)
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
  return bool(config.model.num_classes)


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
  x = jnp.zeros((2 * config.model.pack,) + tuple(data_shape), jnp.float32)
  return GANState(step=jnp.zeros((), jnp.int32),
                  gen=_init_net(models.gen, k_gen, gen_args, models.tx_gen),
                  disc=_init_net(models.disc, k_disc, (x,), models.tx_disc))


def train_key(config: Any) -> jax.Array:
  """The key whose fold_in(., step) gives step's noise (same for every eta)."""
  return jax.random.fold_in(jax.random.key(config.seed), steps.STREAM_TRAIN)


def eval_inputs(config: Any, n: int) -> tuple[jax.Array, ...]:
  """The one fixed evaluation input of a run: noise (and labels 0..K-1 cycling)."""
  key = jax.random.fold_in(jax.random.key(config.seed), steps.STREAM_EVAL)
  z = steps.latent(key, n, config.model.latent_dim, config.model.noise)
  if is_conditional(config):
    return z, jnp.arange(n, dtype=jnp.int32) % config.model.num_classes
  return (z,)


def eval_noise(config: Any, n: int) -> jax.Array:
  """The fixed evaluation noise (depends on the seed only)."""
  return eval_inputs(config, n)[0]


def schedule_of(config: Any) -> steps.Schedule:
  """The static schedule of a config's step."""
  t, m = config.train, config.model
  return steps.Schedule(n_disc=int(t.n_disc), n_gen=int(t.n_gen), noise_period=int(t.noise_period),
                        clip=float(t.clip), disc_batches=t.disc_batches,
                        latent_dim=int(m.latent_dim), noise=m.noise, num_classes=int(m.num_classes),
                        alternate=bool(t.alternate))


def _choice(name: str, value: Any, allowed) -> None:
  if value not in allowed:
    raise UserError(f'{name} must be one of {sorted(allowed)}, got {value!r}')


def _check_pack(config: Any) -> None:
  """model.pack (PacGAN): D judges packs of m samples of the real batch and of the fake
  batch, each packed on its own, so m must divide the batch."""
  m = config.model.pack
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
  for name in ('gp_weight', 'r1_weight'):
    if config.train[name]:
      raise UserError(f'model.pack does not work with train.{name}: the penalty differentiates '
                      f'the critic one example at a time; set --config.model.pack=1 or {name}=0')


def validate(config: Any) -> None:
  """Rejects config values that would fail deep inside a step, with a one-line hint."""
  t, d = config.train, config.data
  terms.check_ranges(config)
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
  if t.alternate and (t.n_disc, t.n_gen) != (1, 1):
    raise UserError(f'train.alternate updates one network a step (G on even steps, D on odd '
                    f'ones): it needs train.n_disc=1 and train.n_gen=1, got {t.n_disc} and {t.n_gen}')
  _choice('model.noise', config.model.noise, ('normal', 'uniform'))
  _choice('model.compute_dtype', config.model.compute_dtype, ('float32', 'bfloat16'))
  _choice('model.upconv_impl', config.model.upconv_impl, ('subpixel', 'transpose'))
  _choice('model.conv_impl', config.model.conv_impl, conv_ops.CONV_IMPLS)
  if not t.mmd_sigmas or not all(0 < s < float('inf') for s in t.mmd_sigmas):
    raise UserError(f'train.mmd_sigmas must be kernel bandwidths, each in (0, inf), got {t.mmd_sigmas}')
  if not 0 <= t.clip < float('inf'):
    raise UserError(f'train.clip must be in [0, inf) (the WGAN weight-clipping bound; 0: no '
                    f'clipping), got {t.clip}')
  for name in ('num_epochs', 'n_disc', 'n_gen'):
    if t[name] < 1:
      raise UserError(f'train.{name} must be >= 1, got {t[name]}')
  if t.steps_per_call < 0:
    raise UserError(f'train.steps_per_call must be >= 0 (0: the backend default), got {t.steps_per_call}')
  if t.num_steps is not None and t.num_steps < 1:
    raise UserError(f'train.num_steps must be >= 1, got {t.num_steps}')
  if not 0 < config.optim.learning_rate < float('inf'):
    raise UserError(f'optim.learning_rate must be in (0, inf), got {config.optim.learning_rate}')
  _choice('model.disc_norm', config.model.disc_norm, ('batch', 'layer', 'none'))
  for name in ('gp_weight', 'r1_weight'):
    if t[name] and nets.disc_couples_examples(config.model):
      raise UserError(f'train.{name} needs a per-example critic: set --config.model.disc_norm=layer '
                      'on a DCGAN without minibatch discrimination (BatchNorm and minibatch '
                      'features couple the examples the penalty differentiates one by one)')
  if t.d_loss == 'wasserstein' and t.real_label != 1.0:
    raise UserError(f'train.real_label={t.real_label}: one-sided label smoothing applies to the BCE '
                    'discriminator, not to the Wasserstein critic; set --config.train.real_label=1')
  if config.model.minibatch_kernels and t.disc_batches != 'separate':
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
                              config.model.noise, config.model.num_classes)
  return jax.jit(lambda state, inputs: steps.sample_images(models, state, inputs,
                                                           bn=config.sample.bn, ref=ref))


class CompiledStep(NamedTuple):
  """A program's train step, compiled.

  step(states, batch) -> (states, metrics) runs one step: states are the members'
  states stacked on a leading axis (sweep.stack), metrics [M] arrays, and batch is
  {'images': [n_disc, N, ...][, 'labels': [n_disc, N]]}, shared by the members or
  [M, n_disc, N, ...] when their seeds differ (`own_data`). step.run(states, chunk) runs
  n <= steps_per_call steps in one call (a lax.scan), on a chunk of n such batches
  stacked on a new leading axis (put_chunk), and returns metrics [n, M].
  """
  fn: Callable
  chunk_fn: Callable
  members: list            # sweep.Member: one for a solo run
  mesh: jax.sharding.Mesh
  own_data: bool           # each member reads its own data order
  steps_per_call: int

  def __call__(self, states: Any, batch: dict) -> tuple[Any, dict]:
    return self.fn(states, batch)

  def run(self, states: Any, chunk: dict) -> tuple[Any, dict]:
    return self.chunk_fn(states, chunk)

  @property
  def data_seeds(self) -> list[int]:
    """The seeds whose data orders the program reads, one batch stream each."""
    return [m.config.seed for m in self.members] if self.own_data else [self.members[0].config.seed]

  def put_chunk(self, parts: list[list[dict]]) -> dict:
    """The host batches of n steps, each a list over the data_seeds' streams -> one
    device chunk [n, ...], moved in one transfer."""
    steps_ = [stack_batches(p) if self.own_data else p[0] for p in parts]
    return parallel.put_batch(stack_batches(steps_), self.mesh, 3 if self.own_data else 2)


def steps_per_call(config: Any) -> int:
  """config.train.steps_per_call, or (0) the backend's default (STEPS_PER_CALL)."""
  k = int(config.train.steps_per_call)
  return k or STEPS_PER_CALL.get(jax.default_backend(), STEPS_PER_CALL['gpu'])


# On the 2-core CPU, 4 steps a call ran the MNIST step 1.18x faster than 1 (380 against
# 432 ms; benchmarks/switch_ab.py --field train.steps_per_call, BUILD_NOTES "Steps per
# call"), but the k-step program compiles on top of the one-step one, which made the test
# suite's short runs 24% slower (1,183 against 955 s): 1 stays the CPU default, and a long
# run sets 4. On GPU and TPU an MNIST step takes about a millisecond, of which a call's
# launch and host work are a large part: 16 there is chosen, not yet measured.
STEPS_PER_CALL = {'cpu': 1, 'gpu': 16, 'tpu': 16}


def member_step(configs: list[Any], models: steps.Models) -> Callable:
  """One member's uncompiled step(state, batch, key, weights) in a program of `configs`
  (its members: they share the schedule; it computes every term any of them uses)."""
  return functools.partial(steps.gan_step, models=models, schedule=schedule_of(configs[0]),
                           d_terms=terms.active(configs, 'disc'),
                           g_terms=terms.active(configs, 'gen'))


def compile_step(config: Any, models: steps.Models,
                 mesh: jax.sharding.Mesh | None = None) -> CompiledStep:
  """The one train step of a config, as training, tests and benchmarks run it.

  The program's members are config.sweep's (sweep.members; a solo run is a sweep of
  one). steps.gan_step is vmapped over their states, keys and term weights, and jitted
  with the state replicated and the batch split over `mesh` (default: a 'data' mesh of
  config.parallel.num_devices devices); the states are donated. Training calls it
  train.steps_per_call steps at a time (CompiledStep.run).
  """
  members = sweep.members(config)
  configs = [m.config for m in members]
  keys = jnp.stack([train_key(c) for c in configs])
  weights = jax.tree.map(lambda *v: jnp.stack(v), *[terms.weights(c) for c in configs])
  own_data = sweep.per_member_data(members)
  one = member_step(configs, models)

  def step(states, batch):
    if len(members) == 1:
      # The same function without the batching transform: XLA:CPU ran a vmap over one
      # member 1.5x slower (463 against 309 ms per MNIST step, BUILD_NOTES "Sweeps").
      first = lambda tree: jax.tree.map(lambda x: x[0], tree)
      out = one(first(states), batch, keys[0], first(weights))
      return jax.tree.map(lambda x: x[None], out)
    return jax.vmap(one, in_axes=(0, 0 if own_data else None, 0, 0))(states, batch, keys, weights)

  def chunk(states, batches):  # n steps, the batches stacked on a leading axis
    if jax.tree.leaves(batches)[0].shape[0] == 1:  # one step: no loop around it
      states, metrics = step(states, jax.tree.map(lambda x: x[0], batches))
      return states, jax.tree.map(lambda x: x[None], metrics)
    return jax.lax.scan(step, states, batches)
  mesh = mesh if mesh is not None else parallel.make_mesh(config.parallel.num_devices)
  axis = 2 if own_data else 1
  return CompiledStep(parallel.shard_step(step, mesh, example_axis=axis),
                      parallel.shard_step(chunk, mesh, example_axis=axis + 1),
                      members, mesh, own_data, steps_per_call(config))


def stack_batches(batches: list[dict]) -> dict:
  """[{'images': [N, ...], ...}] * n -> {'images': [n, N, ...], ...} (host arrays)."""
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}
