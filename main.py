r"""jaxgan: train and sample GANs.

  python main.py --config=configs/mmd_dcgan.py --workdir=runs/mmd [--config.train.eta=5]

Bad input (a mistyped config override, missing or corrupt data, a workdir holding a
different run, a workdir none of whose checkpoints restores) ends with a one-line
message on stderr and exit status 2.

SIGTERM or SIGINT stops training after the current compiled call with a checkpoint of
that step, prints `stopped at step N on SIGTERM; rerun the same command to resume` and
exits with status 128 + the signal number: 143 (SIGTERM), 130 (SIGINT). A second signal
exits at once with that status. Exit status 3: a non-finite loss stopped training.
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file (configs/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Run folder: checkpoints, metrics.jsonl, samples.')
flags.DEFINE_enum('mode', 'train', ['train', 'sample', 'eval'],
                  'train (resumes from the last checkpoint), sample (W/samples.npz + grid) or '
                  'eval (scores the last checkpoint into W/eval/metrics.json).')
flags.DEFINE_string('coordinator', None, 'Multi-process runs: HOST:PORT of process 0, or auto '
                    '(JAX detects the cluster: TPU pods, MPI); $JAXGAN_COORDINATOR; SLURM needs none.')
flags.DEFINE_integer('num_processes', None, 'Multi-process runs: number of processes.')
flags.DEFINE_integer('process_id', None, 'Multi-process runs: this process, 0..num_processes-1.')
flags.mark_flags_as_required(['config', 'workdir'])


def _fail(message: str, code: int = 2) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(code)


def _unknown_override(argv, error: Exception) -> str:
  """'--config.a.b=v': names the field that does not exist and the closest real ones."""
  import difflib  # pylint: disable=g-import-not-at-top
  from jaxgan.config_util import load_config_file, flat_keys  # pylint: disable=g-import-not-at-top
  path = next((a.split('=', 1)[1] for a in argv if a.startswith('--config=')), None)
  overrides = [a[len('--config.'):].split('=', 1)[0] for a in argv if a.startswith('--config.')]
  try:
    keys = flat_keys(load_config_file(path)) if path else []
  except Exception:  # the config file itself is broken: report the loader's error
    keys = []
  for name in overrides:
    if keys and name not in keys:
      close = difflib.get_close_matches(name, keys, n=3, cutoff=0.5)
      hint = f'; did you mean {" or ".join("--config." + c for c in close)}?' if close else (
          f'; {path} has: {", ".join(keys)}')
      return f'--config.{name}: no such config field{hint}'
  return f'{type(error).__name__}: ' + ' '.join(str(error).split())


def _parse_flags(argv):
  """absl's parser, with errors as one line and exit status 2 (absl exits 1 with usage)."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    _fail(' '.join(str(e).split()))
  except (AttributeError, KeyError) as e:  # a locked config rejects an unknown override
    _fail(_unknown_override(argv, e))
  except Exception as e:  # pylint: disable=broad-except  (a broken config file)
    _fail(f'{type(e).__name__}: ' + ' '.join(str(e).split()))


def main(argv):
  if len(argv) > 1:
    _fail(f'unexpected arguments {argv[1:]}; overrides look like --config.train.eta=5')
  from jaxgan import logs  # pylint: disable=g-import-not-at-top
  logs.setup()
  from jaxgan import train  # pylint: disable=g-import-not-at-top  (after flag parsing: fast --help)
  from jaxgan.errors import UserError  # pylint: disable=g-import-not-at-top
  from jaxgan import parallel  # pylint: disable=g-import-not-at-top
  try:
    parallel.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
    train.run(FLAGS.config, FLAGS.workdir, FLAGS.mode)
  except UserError as e:
    _fail(str(e), getattr(e, 'exit_code', 2))


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
