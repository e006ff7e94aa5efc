"""Fully connected GANs: Goodfellow's maxout MNIST GAN (S1), the 2-D toy GAN (S2) and
PacGAN's 2-D networks (configs/toy2d_pacgan.py).

`dtype` is the compute dtype (config.model.compute_dtype; None = float32): parameters
stay float32 and every network output is returned as float32 for the losses.

The maxout GAN's generator (Goodfellow et al. 2014) has no normalisation, and that stays
its default (`norm='none'`). `norm='virtual'` adds virtual batch norm (Salimans et al.
2016, SPEC S9), which they used in G's hidden layers, and `norm='batch'` BatchNorm, both
at the same place: after each hidden layer's affine map, before its ReLU, where
DCGAN-style generators normalise; the output layer is not normalised. The normalised
hidden layers have no bias: the normalisation would subtract it again, and its learnt
shift takes its place.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# dense: nn.Dense with float32 accumulation of bfloat16 matmuls (several modules have a
# `layers` field, hence the direct imports).
from jaxgan.nets.dcgan28 import gen_norm
from jaxgan.nets.layers import BatchNorm, dcgan_init, dense
from jaxgan.nets.tricks import MinibatchDiscrimination


class Maxout(nn.Module):
  """Maxout units (Goodfellow et al. 2013): max over `pieces` affine maps -> [N, units]."""
  units: int
  pieces: int
  dtype: Any = None
  kernel_init: Callable | None = None   # None: nn.Dense's default

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    init = {} if self.kernel_init is None else {'kernel_init': self.kernel_init}
    h = dense(self.units * self.pieces, dtype=self.dtype, **init)(x)
    return jnp.max(h.reshape(x.shape[0], self.units, self.pieces), axis=-1)


class MLPGenerator(nn.Module):
  """z [N, latent] -> ReLU MLP -> images [N, *out_shape] with tanh (pixels in [-1, 1]).

  norm: 'none' | 'batch' | 'virtual', the normalisation of each hidden layer (see the
  module docstring); with 'virtual' the step supplies a reference batch (steps.generate).
  """
  out_shape: Sequence[int] = (28, 28, 1)
  hidden: Sequence[int] = (1200, 1200)
  norm: str = 'none'
  dtype: Any = None

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    x = z
    for width in self.hidden:
      x = dense(width, use_bias=self.norm == 'none', dtype=self.dtype)(x)
      x = nn.relu(gen_norm(self.norm, train, self.dtype)(x))
    x = dense(math.prod(self.out_shape), dtype=self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32)).reshape((z.shape[0],) + tuple(self.out_shape))


class MaxoutDiscriminator(nn.Module):
  """images -> maxout MLP with dropout -> (logit [N], features [N, units]).

  Goodfellow et al. 2014 used 240 units x 5 pieces on MNIST, with dropout before every
  layer: their pylearn2 model keeps 0.8 of the input pixels (input_dropout 0.2) and 0.5
  of each hidden layer's units (dropout 0.5).
  """
  units: int = 240
  pieces: int = 5
  layers: int = 2
  dropout: float = 0.5
  input_dropout: float = 0.2
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True, num_groups: int = 1):
    del num_groups  # no batch statistics: nothing couples the examples
    h = x.reshape(x.shape[0], -1)
    for i in range(self.layers):
      rate = self.input_dropout if i == 0 else self.dropout
      h = nn.Dropout(rate, deterministic=not train)(h)
      h = Maxout(self.units, self.pieces, dtype=self.dtype)(h)
    logit = dense(1, dtype=self.dtype)(nn.Dropout(self.dropout, deterministic=not train)(h))
    return logit[:, 0].astype(jnp.float32), h.astype(jnp.float32)


class ToyGenerator(nn.Module):
  """Seed 004's 2-D generator: Linear(latent, hidden) -> ReLU -> Linear(hidden, 2)."""
  hidden: int = 100
  out_dim: int = 2
  dtype: Any = None

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    del train
    h = nn.relu(dense(self.hidden, dtype=self.dtype)(z))
    return dense(self.out_dim, dtype=self.dtype)(h).astype(jnp.float32)


class ToyDiscriminator(nn.Module):
  """Seed 004's 2-D discriminator: Linear(2, hidden) -> ReLU -> Linear(hidden, 1) (logit;
  the seed's final Sigmoid is folded into the loss)."""
  hidden: int = 100
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True, num_groups: int = 1):
    del train, num_groups
    h = nn.relu(dense(self.hidden, dtype=self.dtype)(x))
    logit = dense(1, dtype=self.dtype)(h)[:, 0]
    return logit.astype(jnp.float32), h.astype(jnp.float32)


class PacGANToyGenerator(nn.Module):
  """PacGAN's 2-D generator (Lin et al. 2018): z -> `layers` x [Linear(hidden, no bias)
  -> BatchNorm -> ReLU] -> Linear(out_dim). Weights N(0, 0.02), biases 0, and BatchNorm
  as their Blocks code has it (epsilon 1e-4, running averages updated at rate 0.05)."""
  hidden: int = 400
  layers: int = 4
  out_dim: int = 2
  dtype: Any = None

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    init = dcgan_init()
    h = z
    for _ in range(self.layers):
      # No bias: BatchNorm's shift replaces it.
      h = dense(self.hidden, use_bias=False, kernel_init=init, dtype=self.dtype)(h)
      h = BatchNorm(use_running_average=not train, momentum=0.95, epsilon=1e-4,
                    dtype=self.dtype)(h)
      h = nn.relu(h)
    return dense(self.out_dim, kernel_init=init, dtype=self.dtype)(h).astype(jnp.float32)


class PacGANToyDiscriminator(nn.Module):
  """PacGAN's 2-D discriminator: `layers` maxout layers (`units` x `pieces`) -> Linear(1)
  -> (logit [N], features [N, units]); weights N(0, 0.02), no dropout (off in their code).

  `minibatch_kernels` > 0 appends minibatch discrimination features (Salimans et al.
  2016) to the last maxout layer before the logit; it compares the examples of a call,
  so the step must feed real and fake separately (train.disc_batches='separate').
  """
  units: int = 200
  pieces: int = 5
  layers: int = 3
  minibatch_kernels: int = 0
  minibatch_dim: int = 5
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True, num_groups: int = 1):
    del train, num_groups  # no dropout and no batch statistics
    init = dcgan_init()
    h = x.reshape(x.shape[0], -1)
    for _ in range(self.layers):
      h = Maxout(self.units, self.pieces, dtype=self.dtype, kernel_init=init)(h)
    feats = h.astype(jnp.float32)
    if self.minibatch_kernels:
      # float32 from here on, as in nets/acgan.py: the layer sums exponentials.
      logit = dense(1, kernel_init=init)(
          MinibatchDiscrimination(self.minibatch_kernels, self.minibatch_dim)(feats))
    else:
      logit = dense(1, kernel_init=init, dtype=self.dtype)(h)
    return logit[:, 0].astype(jnp.float32), feats
