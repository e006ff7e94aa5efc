"""The training state: one explicit pytree holding everything a step reads and writes.

Modules and optimisers are static (closed over by the step), never stored here. There
is no RNG in the state: step s draws its noise from fold_in(key, s), so a resumed run
and a run with another hyper-parameter see the same noise at the same step.
"""
from __future__ import annotations

from typing import Any

import jax
import optax
from flax import struct


class NetState(struct.PyTreeNode):
  """Parameters, BatchNorm statistics ({} if none) and optimiser state of one network."""
  params: Any
  batch_stats: Any
  opt_state: Any


class GANState(struct.PyTreeNode):
  """Step counter plus the generator's and discriminator's NetState."""
  step: jax.Array
  gen: NetState
  disc: NetState


def apply_gradients(net: NetState, grads: Any, batch_stats: Any,
                    tx: optax.GradientTransformation) -> NetState:
  """One optimiser update of a network, with its new BatchNorm statistics."""
  updates, opt_state = tx.update(grads, net.opt_state, net.params)
  return NetState(params=optax.apply_updates(net.params, updates),
                  batch_stats=batch_stats, opt_state=opt_state)


def global_norm(tree: Any) -> jax.Array:
  """L2 norm over all leaves of a pytree."""
  return optax.tree.norm(tree)
