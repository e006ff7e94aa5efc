"""Many runs in one compiled program: `--config.sweep='train.eta=0,5,10,15'`.

A sweep names one or more axes, `field=v1,v2,...`, separated by ';' or spaces; the
members are their product, e.g. 'train.eta=0,10; seed=0,1' has 4. Every member is
the solo run its overrides describe: its own seed's initialisation, noise and data
order, the same networks and optimiser. The members' states are stacked along a new
leading axis and the train step is vmapped over them, so one compiled program trains
all members; members that differ only in a loss weight share their noise and data
batches (common random numbers, as seed 000 compares eta values).

Sweepable fields are those that enter the step as numbers (`SWEEPABLE`): the seed and
the loss weights. Anything that changes shapes or the program (widths, batch size,
optimiser, D:G schedule) needs separate runs.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import re
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import steps, systems
from jaxgan.config_util import get_field, set_field
from jaxgan.errors import UserError

# config field -> StepSpec field it sets (None: the seed, which sets keys, not the spec).
SWEEPABLE = {
    'seed': None,
    'train.eta': 'eta',
    'train.gp_weight': 'gp_weight',
    'train.feature_matching': 'feature_matching',
    'train.adversarial_weight': 'adversarial_weight',
    'train.real_label': 'real_target',
    'train.class_smoothing': 'class_smoothing',
}


class Member(NamedTuple):
  name: str        # its folder under W/sweep/, e.g. 'train.eta=10,seed=1'
  config: Any      # the solo config it equals (sweep field cleared)
  overrides: dict  # field -> value


def parse(text: str) -> list[tuple[str, list[str]]]:
  """'train.eta=0,10; seed=0,1' -> [('train.eta', ['0', '10']), ('seed', ['0', '1'])]."""
  axes = []
  for part in (p for p in re.split(r'[;\s]+', text.strip()) if p):
    field, sep, values = part.partition('=')
    tokens = [v for v in values.split(',') if v]
    if not sep or not tokens:
      raise UserError(f"config.sweep: cannot read {part!r}; write field=v1,v2,... e.g. "
                      "--config.sweep='train.eta=0,5,10,15' (axes separated by ';')")
    if field not in SWEEPABLE:
      raise UserError(f'config.sweep: {field} cannot be swept in one program; sweepable: '
                      f'{", ".join(SWEEPABLE)} (other fields change the program: use separate runs)')
    if field in (f for f, _ in axes):
      raise UserError(f'config.sweep names {field} twice')
    if len(set(tokens)) != len(tokens):
      raise UserError(f'config.sweep: {field} repeats a value ({values})')
    axes.append((field, tokens))
  if not axes:
    raise UserError("config.sweep is empty; e.g. --config.sweep='train.eta=0,5,10,15'")
  return axes


def members(config: Any) -> list[Member]:
  """The members of config.sweep, in product order (the last axis varies fastest)."""
  axes = parse(config.sweep)
  out = []
  for combo in itertools.product(*(tokens for _, tokens in axes)):
    member = copy.deepcopy(config)
    with member.unlocked():
      member.sweep = ''
    overrides = {}
    for (field, _), token in zip(axes, combo):
      kind = type(get_field(config, field))
      try:
        value = kind(float(token)) if kind is int and float(token).is_integer() else kind(token)
      except ValueError:
        raise UserError(f'config.sweep: {field}={token} is not a valid {kind.__name__}') from None
      set_field(member, field, value)
      overrides[field] = value
    name = ','.join(f'{f}={t}' for (f, _), t in zip(axes, combo))
    out.append(Member(name, member, overrides))
  return out


def union_spec(member_list: list[Member]) -> steps.StepSpec:
  """The static spec of the vmapped step: each swept weight at its largest value, so
  every term that any member uses is computed (a member whose weight is 0 adds 0 x it)."""
  specs = [systems.step_spec(m.config) for m in member_list]
  widest = {name: max(getattr(s, name) for s in specs) for name in SWEEPABLE.values() if name}
  return dataclasses.replace(specs[0], **widest)


def per_member_data(member_list: list[Member]) -> bool:
  """Members with different seeds read different data orders (their own batches)."""
  return len({m.config.seed for m in member_list}) > 1


def step_function(member_list: list[Member], models: steps.Models) -> Callable:
  """step(stacked_states, batch) -> (stacked_states, metrics [M] each), not yet compiled.

  batch is [n_disc, N, ...] shared by all members, or [M, n_disc, N, ...] when the
  seeds differ (`per_member_data`).
  """
  spec = union_spec(member_list)
  keys = jnp.stack([systems.train_key(m.config) for m in member_list])
  hp = {}
  for field, spec_field in SWEEPABLE.items():
    if spec_field:
      values = [getattr(systems.step_spec(m.config), spec_field) for m in member_list]
      if len(set(values)) > 1:
        hp[spec_field] = jnp.asarray(values, jnp.float32)
  batch_axis = 0 if per_member_data(member_list) else None

  def one(state, batch, key, h):
    return steps.gan_step(state, batch, key, models=models, spec=spec, hp=h)

  def step(states, batch):
    return jax.vmap(one, in_axes=(0, batch_axis, 0, 0))(states, batch, keys, hp)
  return step


def stack(trees: list[Any]) -> Any:
  """[tree] * M -> one tree with a leading member axis."""
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def unstack(tree: Any, i: int) -> Any:
  """Member i of a stacked tree."""
  return jax.tree.map(lambda x: x[i], tree)
