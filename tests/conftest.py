"""Shared fixtures: the real-data folder and a tiny MMD-DCGAN config."""
import os
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# One XLA compilation cache for the suite, shared by the xdist workers and the main.py
# subprocesses the tests start (they inherit the environment): many tests compile the
# same tiny programs, and a 6-step main.py run took 23.4 s compiling and 10.2 s from the
# cache (2-core AMD EPYC, 2026-12-01). An entry is keyed by the program and its compile
# options, so a hit is the executable a fresh compile builds: that run's checkpoints
# were bit-identical either way. Set JAX_COMPILATION_CACHE_DIR to use another folder.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', str(REPO / '.pytest_cache' / 'xla'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
if 'jax' in sys.modules:  # imported before this file (a plugin): its config read the env already
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_compilation_cache_dir', os.environ['JAX_COMPILATION_CACHE_DIR'])
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)


@pytest.fixture
def data_dir() -> pathlib.Path:
  """$JAXGAN_DATA_DIR (holding mnist/), or skip with the reason."""
  path = os.environ.get('JAXGAN_DATA_DIR')
  if not path or not (pathlib.Path(path) / 'mnist').is_dir():
    pytest.skip('needs real MNIST: set JAXGAN_DATA_DIR to a folder holding mnist/ (e.g. ../shared/data)')
  return pathlib.Path(path)


TINY_OVERRIDES = {
    'data.batch_size': 16, 'data.limit': 64,               # 4 steps per epoch
    'model.gen_width': 16, 'model.disc_width': 8, 'model.feature_dim': 4,
    'sample.num': 16, 'log_every_steps': 2,
}


def tiny_config(**overrides):
  """configs/mmd_dcgan.py shrunk so a step takes milliseconds (same code paths)."""
  from jaxgan.config_util import load_config_file, set_field  # pylint: disable=g-import-not-at-top
  config = load_config_file(REPO / 'configs' / 'mmd_dcgan.py')
  for k, v in {**TINY_OVERRIDES, **overrides}.items():
    set_field(config, k, v)
  return config


def tiny_flags(**overrides) -> list[str]:
  """The same tiny config as command-line overrides for main.py."""
  return [f'--config.{k}={v}' for k, v in {**TINY_OVERRIDES, **overrides}.items()]
