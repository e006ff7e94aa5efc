"""The train step of one run as tests call it: systems.compile_step (the step main.py
trains) with the run's state and metrics unstacked from its one-member program."""
from __future__ import annotations

from typing import Any, Callable

from jaxgan import sweep, systems


def solo_step(config: Any, models: Any) -> Callable:
  """step(state, batch) -> (state, metrics) of a config without a sweep."""
  assert not config.sweep, 'a sweep has several members: call systems.compile_step'
  step = systems.compile_step(config, models)

  def run(state, batch):
    states, metrics = step(sweep.stack([state]), batch)
    return sweep.unstack(states, 0), sweep.unstack(metrics, 0)
  return run
