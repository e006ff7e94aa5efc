r"""A/B of two values of one config field on one training step, in one process.

  python benchmarks/switch_ab.py --case dcgan64_b64 [--field model.conv_impl --a matmul_autodiff --b matmul] [--steps 2] [--rounds 6]

Both steps are compiled in the same process (the field is read when the step is
traced) and run in alternation, `--steps` steps at a time, `--rounds` times (the order
flipped every round). Prints the per-round ms/step, the medians, and the median of the
per-round ratios a / b (above 1: b makes the step faster).

The default pair is the im2col convolution with JAX's own autodiff (`matmul_autodiff`)
against its explicit weight gradient on a separately transposed copy of the patches
(`matmul`; jaxgan/nets/conv_ops.py).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

import step_speed


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--case', default='dcgan64_b64', choices=sorted(step_speed.CASES))
  p.add_argument('--field', default='model.conv_impl')
  p.add_argument('--a', default='matmul_autodiff', help='the baseline value')
  p.add_argument('--b', default='matmul', help='the value under test')
  p.add_argument('--steps', type=int, default=2)
  p.add_argument('--rounds', type=int, default=6)
  p.add_argument('--set', action='append', metavar='KEY=VALUE', help='config override')
  args = p.parse_args(argv)
  if args.steps < 1 or args.rounds < 1:
    sys.exit('switch_ab.py: --steps and --rounds must be at least 1')
  args.xla_flags = ''
  step_speed.setup_environment(args)
  overrides = step_speed.parse_overrides(args.set)
  # The two values parse as --set values do: Python literals (1, 0.5, 'x') or strings.
  steps = {side: step_speed.JaxStep(
      step_speed.CASES[args.case], count_flops=False,
      overrides={**overrides, **step_speed.parse_overrides([f'{args.field}={value}'])})
           for side, value in (('a', args.a), ('b', args.b))}
  times = {'a': [], 'b': []}
  for r in range(args.rounds):
    for side in (('a', 'b') if r % 2 == 0 else ('b', 'a')):
      times[side].append(steps[side].run(args.steps))
    print(f'round {r}: a {1e3 * times["a"][-1]:.0f} ms  b {1e3 * times["b"][-1]:.0f} ms',
          file=sys.stderr, flush=True)
  res = {'case': args.case, 'field': args.field, 'a': args.a, 'b': args.b, 'steps': args.steps,
         'rounds': args.rounds,
         'a_ms': round(1e3 * statistics.median(times['a']), 1),
         'b_ms': round(1e3 * statistics.median(times['b']), 1),
         'a_over_b': round(statistics.median(x / y for x, y in zip(times['a'], times['b'])), 3),
         'compile_s': {side: round(steps[side].compile_s, 2) for side in steps}}
  print(json.dumps(res))
  return res


if __name__ == '__main__':
  main()
