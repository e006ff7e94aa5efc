"""Many runs in one compiled program: `--config.sweep='train.eta=0,5,10,15'`.

A sweep names one or more axes, `field=v1,v2,...`, separated by ';' or spaces; the
members are their product, e.g. 'train.eta=0,10; seed=0,1' has 4. Every member is
the solo run its overrides describe: its own seed's initialisation, noise and data
order, the same networks and optimiser. The members' states are stacked along a new
leading axis and the train step is vmapped over them, so one compiled program trains
all members; members that differ only in a loss weight share their noise and data
batches (common random numbers, as seed 000 compares eta values).

Sweepable fields are those that enter the step as numbers (`SWEEPABLE`): the seed and
the traced fields of the step's terms (jaxgan/terms.py TRACED: the loss weights, the
real label, the class smoothing). Anything that changes shapes or the program (widths,
batch size, optimiser, D:G schedule) needs separate runs. A solo run is a program of
one member (no config.sweep), trained by the same loop and step.
"""
from __future__ import annotations

import copy
import itertools
import json
import pathlib
import re
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxgan import terms
from jaxgan.config_util import get_field, set_field
from jaxgan.errors import UserError
from jaxgan.workdir import atomic_write_text, read_metrics

SWEEPABLE = ('seed',) + tuple(f'train.{field}' for field in terms.TRACED)


class Member(NamedTuple):
  name: str        # its folder under W/sweep/, e.g. 'train.eta=10,seed=1'; '' for a solo run
  config: Any      # the solo config it equals (sweep field cleared)
  overrides: dict  # field -> value

  def workdir(self, root: pathlib.Path) -> pathlib.Path:
    """The member's folder: W itself for a solo run, W/sweep/<name> in a sweep."""
    return root / 'sweep' / self.name if self.name else root


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
  """The members of config.sweep, in product order (the last axis varies fastest); the
  solo run itself when config.sweep is empty."""
  if not config.sweep:
    return [Member('', config, {})]
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


def per_member_data(member_list: list[Member]) -> bool:
  """Members with different seeds read different data orders (their own batches)."""
  return len({m.config.seed for m in member_list}) > 1


def stack(trees: list[Any]) -> Any:
  """[tree] * M -> one tree with a leading member axis."""
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def unstack(tree: Any, i: int) -> Any:
  """Member i of a stacked tree."""
  return jax.tree.map(lambda x: x[i], tree)


def write_summary(config: Any, workdir: pathlib.Path, member_list: list[Member]) -> None:
  """W/sweep/summary.json: each member's overrides and last metrics lines (a sweep's
  only; a solo run's metrics.jsonl is its summary)."""
  if not config.sweep:
    return
  rows = []
  for m in member_list:
    records = read_metrics(m.workdir(workdir) / 'metrics.jsonl')
    epoch_lines = [r for r in records if 'class_histogram' in r or 'modes_covered' in r]
    rows.append({'member': m.name, 'overrides': m.overrides, 'last': records[-1] if records else {},
                 'last_epoch_line': epoch_lines[-1] if epoch_lines else None})
  summary = {'sweep': config.sweep, 'members': rows}
  atomic_write_text(workdir / 'sweep' / 'summary.json', json.dumps(summary, indent=2) + '\n')
