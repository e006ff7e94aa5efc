r"""Every benchmark case in one run: jaxgan against the PyTorch reference, JSON + table.

  python benchmarks/run.py                                   # all cases, 20 steps x 3 rounds
  python benchmarks/run.py --cases mnist_mmd_b100,dcgan64_b64 --steps 10 --rounds 3
  python benchmarks/run.py --cases dcgan64_b256 --dtype bfloat16 --out /tmp/bench
  python benchmarks/run.py --dry-run                         # list what would run, measure nothing

For each case, step_speed.measure() times jaxgan's step and its torch_reference.py
peers (eager, and torch.compile in the first --compile-rounds rounds) alternately, so
both sides see the same machine state; see step_speed.py for every option. The
results go to `<out>/<date>-<device>[-<dtype>][-<tag>].json` (default out:
benchmarks/results/) and the same name with .md holds the markdown table, which is also
printed; both are rewritten after every case. A name an earlier run took gets a -2,
-3, ... suffix, so no run replaces another's results. Cases that are unknown, cannot run here
(e.g. a conv_impl override on a net without one) or fail are skipped with the reason,
in the table's notes and the JSON's "skipped".

Columns: jaxgan img/s (real training images consumed per second), ms/step, compile s
(tracing + XLA, no execution), GFLOP/s (the model's FLOPs of the step, counted from its jaxpr by flops.py, / step time), % of
the matmul peak measured in the same run (float32 n^3 matmul; bfloat16 inputs with
float32 accumulation for --dtype bfloat16), torch eager and torch.compile img/s, and
the ratio of jaxgan to the faster torch column (medians of the rounds).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import traceback
from typing import Any

import step_speed

DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / 'results'
COLUMNS = ('case', 'jaxgan img/s', 'ms/step', 'compile s', 'GFLOP/s', '% of matmul peak',
           'torch eager img/s', 'torch.compile img/s', 'ratio vs best torch')


def _fmt(v: Any, spec: str) -> str:
  return '-' if v is None else format(v, spec)


def markdown(report: dict[str, Any]) -> str:
  """The report as a markdown table with a header line and notes."""
  lines = [f"Measured {report['date']} on {report['device']}; jax {report['jax']}, torch "
           f"{report['torch'] or '-'}; compute dtype {report['dtype']}; {report['steps']} steps "
           f"x {report['rounds']} rounds per side (medians).", '',
           '| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
  notes = []
  for name, r in report['cases'].items():
    lines.append('| ' + ' | '.join([
        name, _fmt(r['jaxgan_img_s'], ',.1f'), _fmt(r['jaxgan_ms_step'], '.1f'),
        _fmt(r['compile_s'], '.1f'), _fmt(r['gflop_s'], ',.1f'), _fmt(r['pct_peak'], '.1f'),
        _fmt(r['torch_eager_img_s'], ',.1f'), _fmt(r['torch_compile_img_s'], ',.1f'),
        _fmt(r['ratio_vs_best_torch'], '.2f')]) + ' |')
    for side in ('eager', 'compile'):
      why = r.get(f'torch_{side}_note')
      if why and why != 'no peer in torch_reference.py':
        notes.append(f'{name}: torch {side}: {why}')
  peaks = {r['matmul_peak']: r['matmul_peak_gflop_s'] for r in report['cases'].values()}
  lines.append('')
  for what, gflop_s in peaks.items():
    lines.append(f'Matmul peak: {what}: {_fmt(gflop_s, ",.1f")} GFLOP/s (best over the run).')
  no_peer = [n for n, r in report['cases'].items()
             if r.get('torch_eager_note') == 'no peer in torch_reference.py']
  if no_peer:
    lines.append(f"No torch peer in torch_reference.py: {', '.join(no_peer)}.")
  for name, why in report['skipped'].items():
    notes.append(f'{name}: skipped: {why}')
  lines += [f'- {n}' for n in notes]
  lines += ['', f"Command: `{report['command']}`"]
  return '\n'.join(lines) + '\n'


def main(argv=None) -> dict[str, Any]:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--cases', default='all',
                 help=f"comma-separated; 'all' = {','.join(step_speed.CASES)}")
  step_speed.add_common_args(p)
  p.add_argument('--out', default=str(DEFAULT_OUT), help='folder for the JSON and .md files')
  p.add_argument('--tag', default='', help='appended to the file names')
  p.add_argument('--dry-run', action='store_true',
                 help='print the cases and the output path, measure nothing')
  args = p.parse_args(argv)
  names = list(step_speed.CASES) if args.cases == 'all' else [
      c.strip() for c in args.cases.split(',') if c.strip()]
  step_speed.setup_environment(args)
  import jax  # pylint: disable=g-import-not-at-top  (after XLA_FLAGS are set)

  dtype = args.dtype or 'float32'
  out = pathlib.Path(args.out)
  stem = step_speed.unused_stem(out, '-'.join(filter(None, [
      time.strftime('%Y-%m-%d'), step_speed.device_slug(jax),
      'bf16' if dtype == 'bfloat16' else '', args.tag])))
  command = 'python benchmarks/run.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
  if args.dry_run:
    for name in names:
      case = step_speed.CASES.get(name)
      peer = case and case['torch_case']
      print(f"{name}: {'unknown case: would be skipped' if case is None else case['config']}"
            f"{'' if case is None else f', torch peer {peer}'}")
    print(f'would write {out / (stem + ".json")} and {out / (stem + ".md")}')
    return {}

  report = {'date': time.strftime('%Y-%m-%d %H:%M'), 'device': step_speed.device_name(jax),
            'jax': jax.__version__, 'torch': None, 'dtype': dtype, 'steps': args.steps,
            'rounds': args.rounds, 'command': command, 'cases': {}, 'skipped': {}}
  out.mkdir(parents=True, exist_ok=True)
  for name in names:
    print(f'== {name}', flush=True)
    try:
      res = step_speed.measure(name, args)
    except step_speed.CaseUnavailable as e:
      print(f'{name}: skipped: {e}', flush=True)
      report['skipped'][name] = str(e)
    except Exception as e:  # pylint: disable=broad-except
      # One broken case (e.g. an API change on another jax) must not cost the others'
      # numbers: record it as skipped with the error and go on.
      traceback.print_exc()
      report['skipped'][name] = f'failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}'
    else:
      step_speed.print_table(res)
      report['cases'][name] = res
      report['torch'] = report['torch'] or res['torch']
    # Written after every case, so a run stopped part-way keeps what it measured.
    table = markdown(report)
    (out / f'{stem}.json').write_text(json.dumps(report, indent=1) + '\n')
    (out / f'{stem}.md').write_text(table)
  print()
  print(table)
  print(f'wrote {out / (stem + ".json")} and {out / (stem + ".md")}')
  return report


if __name__ == '__main__':
  main()
