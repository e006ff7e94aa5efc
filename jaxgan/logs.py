"""Console logging shared by main.py and the experiment runner."""
from absl import logging


def setup() -> None:
  """INFO for jaxgan; orbax's per-save chatter and XLA's backend notices only as warnings."""
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(
      lambda r: r.levelno >= logging.converter.STANDARD_WARNING
      or ('orbax' not in r.pathname and 'xla_bridge' not in r.pathname))
