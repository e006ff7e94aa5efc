r"""XLA:CPU options on a jaxgan training step, each against the default in one run.

  python benchmarks/xla_options.py [--case mnist_mmd_b100] [--options a,b] [--steps 3]
                                   [--rounds 8] [--out benchmarks/results]

XLA reads XLA_FLAGS once, when jax starts, so every option gets its own worker process
(this script with --worker) that compiles the step exactly as training does
(step_speed.JaxStep) and then waits. The workers are started one after another; then
the controller asks them in turn for `--steps` steps each, `--rounds` times, the order
rotated from round to round. Shared machines drift 15-40% within a minute, so runs of
separate processes minutes apart cannot be compared; interleaving short bursts can.
The table gives each option's median img/s over the rounds and the median of its
per-round ratios to the default. An option whose worker fails (a flag this jaxlib
rejects, a crash in compilation) is recorded with its error and the rest still run.

Writes results/<date>-<device>-xla-options-<case>.json and .md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import statistics
import subprocess
import sys
from typing import Any

import step_speed

HERE = pathlib.Path(__file__).resolve().parent

# name -> (what it does, XLA_FLAGS, conv_impl override). The library choices are XLA's
# own: YNNPACK is its default for matmuls and convolution weight gradients (jaxlib
# 0.10); oneDNN and Eigen are built in and chosen by flags.
OPTIONS: dict[str, tuple[str, str, str | None]] = {
    'default': ('XLA_FLAGS unset: YNNPACK matmuls, conv_impl=auto', '', None),
    'eigen': ('YNNPACK off: Eigen matmuls and convolutions',
              '--xla_cpu_experimental_ynn_fusion_type=', None),
    'onednn': ('oneDNN rewrites on (--xla_cpu_use_onednn)', '--xla_cpu_use_onednn=true', None),
    'onednn_fusion': ('oneDNN rewrites and oneDNN matmul fusions',
                      '--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot',
                      None),
    'fast_math': ('LLVM fast math (no NaN/Inf guarantees)', '--xla_cpu_enable_fast_math=true', None),
    'concurrent_sched': ('concurrency-optimised scheduler (independent ops run together)',
                         '--xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_CONCURRENCY_OPTIMIZED', None),
    'vector512': ('LLVM prefers 512-bit vectors (AVX-512)', '--xla_cpu_prefer_vector_width=512', None),
    'one_thread': ('Eigen/XLA intra-op threading off', '--xla_cpu_multi_thread_eigen=false', None),
    'conv_matmul': ('not a flag: every convolution as im2col + matmul (conv_impl=matmul)', '',
                    'matmul'),
}


def worker(case_name: str, conv_impl: str | None, sets: list[str] | None) -> None:
  """Compiles the step, prints {"ready", "compile_s", ...}, then answers "run N" lines
  with {"s_per_step"} until "quit" or end of input."""
  sys.path.insert(0, str(step_speed.REPO))
  import jax  # pylint: disable=g-import-not-at-top
  step = step_speed.JaxStep(step_speed.CASES[case_name], conv_impl=conv_impl,
                            overrides=step_speed.parse_overrides(sets), count_flops=False)
  print(json.dumps({'ready': True, 'compile_s': round(step.compile_s, 2),
                    'images_per_step': step.images_per_step,
                    'device': step_speed.device_name(jax), 'slug': step_speed.device_slug(jax),
                    'jax': jax.__version__}), flush=True)
  for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == 'quit':
      break
    print(json.dumps({'s_per_step': step.run(int(cmd[1]))}), flush=True)


class Worker:
  """One option's worker process."""

  def __init__(self, name: str, case: str, sets: list[str] | None):
    _, flags, conv_impl = OPTIONS[name]
    env = dict(os.environ)
    env['XLA_FLAGS'] = f"{env.get('XLA_FLAGS', '')} {flags}".strip()
    cmd = [sys.executable, __file__, '--worker', '--case', case]
    if conv_impl:
      cmd += ['--conv-impl', conv_impl]
    for item in sets or []:
      cmd += ['--set', item]
    self.name = name
    self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
    self.info = self._read()

  def _read(self) -> dict[str, Any]:
    line = self.proc.stdout.readline()
    if not line:
      self.proc.wait()
      err = (self.proc.stderr.read().strip().splitlines() or ['no output'])[-1]
      return {'error': f'exit {self.proc.returncode}: {err[:300]}'}
    return json.loads(line)

  def run(self, steps: int) -> float:
    self.proc.stdin.write(f'run {steps}\n')
    self.proc.stdin.flush()
    res = self._read()
    if 'error' in res:
      raise RuntimeError(res['error'])
    return res['s_per_step']

  def close(self) -> None:
    if self.proc.poll() is None:
      try:
        self.proc.stdin.write('quit\n')
        self.proc.stdin.flush()
        self.proc.wait(timeout=30)
      except (OSError, subprocess.TimeoutExpired):
        self.proc.kill()


def markdown(report: dict[str, Any]) -> str:
  lines = [f"Measured {report['date']} on {report['device']}: `{report['case']}`, jax "
           f"{report['jax']}, {report['rounds']} interleaved rounds of {report['steps']} "
           'steps per option.', '',
           f"Command: `{report['command']}`", '',
           '| option | what | img/s (median) | ms/step | compile s | vs default (median of rounds) |',
           '|---|---|---|---|---|---|']
  for name, r in report['options'].items():
    if r.get('error'):
      lines.append(f"| {name} | {OPTIONS[name][0]} | failed: {r['error']} | | | |")
      continue
    lines.append(f"| {name} | {OPTIONS[name][0]} | {r['img_s']:.1f} | {r['ms_step']:.1f} | "
                 f"{r['compile_s']:.1f} | {r['ratio']:.2f} |")
  return '\n'.join(lines) + '\n'


def main(argv=None) -> dict[str, Any]:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--case', default='mnist_mmd_b100')
  p.add_argument('--options', default=','.join(OPTIONS),
                 help=f"comma-separated, from: {', '.join(OPTIONS)} (default always runs)")
  p.add_argument('--steps', type=int, default=3, help='steps per option and round')
  p.add_argument('--rounds', type=int, default=8, help='interleaved rounds')
  p.add_argument('--set', action='append', metavar='KEY=VALUE',
                 help="a config override for every option (step_speed.py's --set)")
  p.add_argument('--out', default=str(HERE / 'results'),
                 help="directory for the JSON and markdown ('' : print only)")
  p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  p.add_argument('--conv-impl', default=None, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.worker:
    worker(args.case, args.conv_impl, args.set)
    return {}
  names = ['default'] + [n for n in args.options.split(',') if n and n != 'default']
  unknown = sorted(set(names) - set(OPTIONS))
  if unknown:
    sys.exit(f'xla_options.py: unknown option(s) {unknown}; known: {", ".join(OPTIONS)}')
  if args.steps < 1 or args.rounds < 1:
    sys.exit('xla_options.py: --steps and --rounds must be at least 1')
  workers: dict[str, Worker] = {}
  try:
    for name in names:  # one compilation at a time
      workers[name] = Worker(name, args.case, args.set)
      print(f"{name:17s} {workers[name].info.get('error') or 'compiled'}", file=sys.stderr, flush=True)
    live = [n for n in names if 'error' not in workers[n].info]
    if 'default' not in live:
      sys.exit(f"xla_options.py: the default step failed: {workers['default'].info['error']}")
    for w in workers.values():  # warm-up round, not recorded
      if w.name in live:
        w.run(1)
    times: dict[str, list[float]] = {n: [] for n in live}
    for r in range(args.rounds):
      k = r % len(live)
      for name in live[k:] + live[:k]:
        times[name].append(workers[name].run(args.steps))
      print(f'round {r}: ' + '  '.join(f'{n} {1e3 * times[n][-1]:.0f} ms' for n in live),
            file=sys.stderr, flush=True)
  finally:
    for w in workers.values():
      w.close()
  info = workers['default'].info
  ips = info['images_per_step']
  options = {}
  for name in names:
    if name not in times:
      options[name] = {'error': workers[name].info['error']}
      continue
    ts = times[name]
    options[name] = {
        'xla_flags': OPTIONS[name][1], 'conv_impl': OPTIONS[name][2],
        'img_s': round(statistics.median(ips / t for t in ts), 1),
        'ms_step': round(1e3 * statistics.median(ts), 1),
        'compile_s': workers[name].info['compile_s'],
        'ratio': round(statistics.median(d / t for t, d in zip(ts, times['default'])), 3),
        's_per_step': [round(t, 4) for t in ts]}
  report = {'case': args.case, 'device': info['device'], 'jax': info['jax'],
            'date': datetime.datetime.now().strftime('%Y-%m-%d %H:%M'),
            'steps': args.steps, 'rounds': args.rounds, 'overrides': args.set or [],
            'options': options,
            'command': 'python benchmarks/xla_options.py ' + ' '.join(argv if argv is not None else sys.argv[1:])}
  step_speed.publish_report(args.out, info['slug'], 'xla-options', args.case, report,
                            markdown(report))
  return report


if __name__ == '__main__':
  main()
