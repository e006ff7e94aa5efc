"""Config helpers shared by main.py, the tests and the benchmarks."""
from __future__ import annotations

import importlib.util
import pathlib
from typing import Any

import ml_collections


def load_config_file(path: str | pathlib.Path) -> ml_collections.ConfigDict:
  """Runs get_config() of a configs/*.py file (as --config=PATH does)."""
  spec = importlib.util.spec_from_file_location('_jaxgan_config', str(path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def get_field(config: Any, dotted: str) -> Any:
  """config['a']['b'] for 'a.b'."""
  node = config
  for part in dotted.split('.'):
    node = node[part]
  return node


def set_field(config: Any, dotted: str, value: Any) -> None:
  """config['a']['b'] = value for 'a.b' (a locked ConfigDict refuses unknown fields)."""
  *path, leaf = dotted.split('.')
  node = config
  for part in path:
    node = node[part]
  node[leaf] = value


def flat_keys(config: Any, prefix: str = '') -> list[str]:
  """Dotted names of every leaf field, e.g. ['data.batch_size', 'train.eta', ...]."""
  out = []
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      out.extend(flat_keys(v, f'{prefix}{k}.'))
    else:
      out.append(f'{prefix}{k}')
  return out
