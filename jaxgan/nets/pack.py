"""Packing (PacGAN, Lin et al. 2018): the discriminator judges m samples at once.

`Packed(inner, m)` is a discriminator that concatenates each run of m consecutive
examples along the last axis and hands the packs to `inner`: x [N, ..., C] ->
[N/m, ..., m*C] (images [N, H, W, C] -> [N/m, H, W, m*C], points [N, 2] -> [N/m, 2m]),
so its outputs are logit [N/m] and features [N/m, F]. A pack holds only real or only
fake samples as long as m divides each half of a grouped batch concat([real, fake]),
which `num_groups` checks. The wrapper shares the inner network's scope, so its
parameters have the inner network's names.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def pack(x: jax.Array, m: int) -> jax.Array:
  """x [N, ..., C] -> [N/m, ..., m*C]; pack i is concat(x[m*i], ..., x[m*i+m-1]) on the last axis."""
  n, rest = x.shape[0], tuple(x.shape[1:])
  if n % m:
    raise ValueError(f'cannot pack a batch of {n} examples into packs of {m}')
  grouped = jnp.moveaxis(x.reshape((n // m, m) + rest), 1, -2)   # [N/m, ..., m, C]
  return grouped.reshape((n // m,) + rest[:-1] + (m * rest[-1],))


class Packed(nn.Module):
  """A discriminator `inner` applied to packs of `m` consecutive examples."""
  inner: nn.Module
  m: int

  def setup(self):
    # The inner network's parameters sit at the top level, as without the wrapper.
    nn.share_scope(self, self.inner)

  def __call__(self, x: jax.Array, train: bool = True, num_groups: int = 1):
    group = x.shape[0] // num_groups
    if x.shape[0] % num_groups or group % self.m:
      raise ValueError(f'a batch of {x.shape[0]} in {num_groups} group(s) cannot be packed '
                       f'{self.m} at a time within each group')
    return self.inner(pack(x, self.m), train=train, num_groups=num_groups)
