r"""A/B of a boolean switch in jaxgan.nets.layers on one training step, in one process.

  python benchmarks/switch_ab.py --case dcgan64_b64 --switch MATMUL_CONV_VJP [--steps 2] [--rounds 6]

The switch is read when the step is traced, so the step is compiled twice (switch
off, then on) in the same process, and the two are run in alternation, `--steps`
steps at a time, `--rounds` times (the order flipped every round). Prints the
per-round ms/step, the medians, and the median of the per-round ratios off / on
(above 1: the switch makes the step faster).

Switches: MATMUL_CONV_VJP (the im2col convolution's explicit weight gradient, on a
separately transposed copy of the patches; off: JAX's autodiff of the same matmul).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

import step_speed

SWITCHES = ('MATMUL_CONV_VJP',)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--case', default='dcgan64_b64', choices=sorted(step_speed.CASES))
  p.add_argument('--switch', default=SWITCHES[0], choices=SWITCHES)
  p.add_argument('--steps', type=int, default=2)
  p.add_argument('--rounds', type=int, default=6)
  p.add_argument('--set', action='append', metavar='KEY=VALUE', help='config override')
  args = p.parse_args(argv)
  if args.steps < 1 or args.rounds < 1:
    sys.exit('switch_ab.py: --steps and --rounds must be at least 1')
  args.xla_flags = ''
  step_speed.setup_environment(args)
  from jaxgan.nets import layers  # pylint: disable=g-import-not-at-top
  overrides = step_speed.parse_overrides(args.set)
  original = getattr(layers, args.switch)
  steps = {}
  try:
    for flag in (False, True):
      setattr(layers, args.switch, flag)
      steps[flag] = step_speed.JaxStep(step_speed.CASES[args.case], overrides=overrides,
                                       count_flops=False)
  finally:
    setattr(layers, args.switch, original)
  times = {False: [], True: []}
  for r in range(args.rounds):
    for flag in ((False, True) if r % 2 == 0 else (True, False)):
      times[flag].append(steps[flag].run(args.steps))
    print(f'round {r}: off {1e3 * times[False][-1]:.0f} ms  on {1e3 * times[True][-1]:.0f} ms',
          file=sys.stderr, flush=True)
  res = {'case': args.case, 'switch': args.switch, 'steps': args.steps, 'rounds': args.rounds,
         'off_ms': round(1e3 * statistics.median(times[False]), 1),
         'on_ms': round(1e3 * statistics.median(times[True]), 1),
         'off_over_on': round(statistics.median(a / b for a, b in zip(times[False], times[True])), 3),
         'compile_s': {'off': round(steps[False].compile_s, 2), 'on': round(steps[True].compile_s, 2)}}
  print(json.dumps(res))
  return res


if __name__ == '__main__':
  main()
