"""Command line of the experiment runner (see jaxgan/experiments/__init__.py)."""
from __future__ import annotations

import argparse
import pathlib
import sys

from jaxgan.errors import UserError


def _parser() -> argparse.ArgumentParser:
  from jaxgan.experiments import EXPERIMENTS  # pylint: disable=g-import-not-at-top
  p = argparse.ArgumentParser(prog='python -m jaxgan.experiments',
                              description="Run the seeds' experiments and report their tables.")
  sub = p.add_subparsers(dest='command', required=True)
  r = sub.add_parser('run', help='train (or resume) an experiment into --out')
  r.add_argument('name', choices=sorted(EXPERIMENTS))
  r.add_argument('--scale', choices=('cpu', 'full'), default='cpu',
                 help='cpu: reduced, about an hour of a 2-core CPU; full: the published protocol')
  r.add_argument('--out', required=True, help='folder for runs/ and results.json (resumed if it exists)')
  r.add_argument('--dry-run', action='store_true', help='validate every job and print the plan')
  r.add_argument('--smoke', action='store_true',
                 help='one training step per job and tiny evaluations (checks a script end to end)')
  r.add_argument('--only', nargs='+', metavar='JOB', help='run only these jobs')
  s = sub.add_parser('report', help='results.json files -> markdown tables and PNG figures')
  s.add_argument('dirs', nargs='+', help='folders holding results.json (or the files)')
  s.add_argument('--doc', default=None,
                 help='update these sections of a markdown file (e.g. docs/results.md); '
                      'default: print the markdown')
  s.add_argument('--figures', default='docs/results', help='folder for the PNG figures')
  return p


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  from absl import logging  # pylint: disable=g-import-not-at-top
  from jaxgan import logs  # pylint: disable=g-import-not-at-top
  from jaxgan.experiments import EXPERIMENTS, report, runner  # pylint: disable=g-import-not-at-top
  try:
    if args.command == 'run':
      logging.use_absl_handler()
      logs.setup()
      runner.run(EXPERIMENTS[args.name], args.scale, args.out, dry_run=args.dry_run,
                 smoke=args.smoke, only=args.only)
      return 0
    if args.doc:
      report.DOC_DIR = pathlib.Path(args.doc).parent
    sections = []
    for d in args.dirs:
      results = report.load(d)
      sections.append((results, report.render(results, pathlib.Path(args.figures), EXPERIMENTS)))
    if args.doc:
      report.update_doc(pathlib.Path(args.doc), sections)
      print(f'updated {len(sections)} section(s) of {args.doc}; figures in {args.figures}')
    else:
      print('\n\n'.join(body for _, body in sections))
    return 0
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except KeyboardInterrupt:  # Ctrl-C, or experiments/gpu.sh's time box
    print('interrupted: results.json holds every finished job; rerun the same command to '
          'resume from the last checkpoints', file=sys.stderr)
    return 130


if __name__ == '__main__':
  sys.exit(main())
