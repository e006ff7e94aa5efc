"""Golden parameters: every config's G and D after 3 train steps at tiny shapes on CPU.

The refactors of the step must keep what each config trains. This module builds each
config of configs/ at tiny widths, runs 3 steps on fixed random batches, and returns
the parameters; tests/test_golden.py compares them with tests/golden/params_3steps.npz.

  python -m tests.golden          # rewrite the golden file (only for an intended change,
                                  # said and explained in the commit that makes it)
"""
from __future__ import annotations

import hashlib
import json
import pathlib

import jax
import numpy as np

from jaxgan import systems
from jaxgan.config_util import load_config_file
from tests.solo import solo_step

REPO = pathlib.Path(__file__).resolve().parents[1]
GOLDEN = REPO / 'tests' / 'golden' / 'params_3steps.npz'
STEPS = 3
BATCH = 8
# Every model field that sets a width, shrunk (a field a config lacks is skipped).
TINY_MODEL = {'gen_width': 16, 'disc_width': 8, 'feature_dim': 4, 'ngf': 4, 'ndf': 4,
              'disc_width_mult': 0.125, 'gen_hidden': (32, 32), 'maxout_units': 8,
              'hidden': 16}
# The data shape each config's network takes, at the smallest size it builds.
SHAPES = {'mnist': (28, 28, 1), 'mnist64': (16, 16, 1), 'stacked_mnist': (28, 28, 3),
          'ring8': (2,)}


def configs() -> list[str]:
  """Every trainable GAN config (not the classifiers, not the shared defaults)."""
  return sorted(p.stem for p in (REPO / 'configs').glob('*.py')
                if p.stem not in ('__init__', 'default') and not p.stem.endswith('_classifier'))


def tiny_config(name: str):
  config = load_config_file(REPO / 'configs' / f'{name}.py')
  config.model.update({k: v for k, v in TINY_MODEL.items() if k in config.model})
  if config.model.get('minibatch_kernels'):
    config.model.minibatch_kernels = 4
  config.data.batch_size = BATCH
  return config


def _shape(config) -> tuple:
  if config.data.pad_to:
    return (config.data.pad_to, config.data.pad_to, 1)
  return SHAPES[config.data.name]


def params_after_steps(name: str, steps: int = STEPS) -> dict[str, np.ndarray]:
  """{'gen/...' or 'disc/...': array} after `steps` steps of the tiny config (0: its
  initial parameters)."""
  config = tiny_config(name)
  shape = _shape(config)
  conditional = systems.is_conditional(config)
  models = systems.build_models(config, shape, 10 if conditional else None)
  state = systems.create_state(config, models, shape)
  step = solo_step(config, models) if steps else None
  rng = np.random.default_rng(0)
  n = config.train.n_disc
  for _ in range(steps):
    if len(shape) == 1:   # 2-D points
      images = rng.normal(size=(n, BATCH) + shape).astype(np.float32)
    else:
      images = rng.integers(0, 256, (n, BATCH) + shape).astype(np.uint8)
    batch = {'images': images}
    if conditional:
      batch['labels'] = rng.integers(0, 10, (n, BATCH)).astype(np.int32)
    state, _ = step(state, batch)
  out = {}
  for net, params in (('gen', state.gen.params), ('disc', state.disc.params)):
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
      out[f'{net}/{jax.tree_util.keystr(path)}'] = np.asarray(leaf)
  return out


def sha256(arrays: dict[str, np.ndarray]) -> str:
  h = hashlib.sha256()
  for key in sorted(arrays):
    h.update(key.encode())
    h.update(np.ascontiguousarray(arrays[key]).tobytes())
  return h.hexdigest()


def write() -> None:
  """Records every config's golden parameters and their SHA-256 per config."""
  arrays, digests = {}, {}
  for name in configs():
    params = params_after_steps(name)
    digests[name] = sha256(params)
    arrays.update({f'{name}:{k}': v for k, v in params.items()})
    print(f'{name}: {len(params)} arrays, sha256 {digests[name][:16]}', flush=True)
  GOLDEN.parent.mkdir(exist_ok=True)
  np.savez_compressed(GOLDEN, **arrays)
  GOLDEN.with_suffix('.json').write_text(json.dumps(
      {'steps': STEPS, 'batch': BATCH, 'jax': jax.__version__, 'sha256': digests}, indent=1) + '\n')


def load(name: str) -> dict[str, np.ndarray]:
  with np.load(GOLDEN) as z:
    return {k.split(':', 1)[1]: z[k] for k in z.files if k.split(':', 1)[0] == name}


if __name__ == '__main__':
  write()
