"""Shared fixtures: the real-data folder and a tiny MMD-DCGAN config."""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


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
