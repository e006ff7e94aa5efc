r"""Train-step speed of jaxgan against the PyTorch reference, measured in the same run.

  python benchmarks/step_speed.py --case mnist_mmd_b100 --json [--steps N] [--no-torch]

builds the step exactly as training does (configs/*.py -> jaxgan.systems), times it
(compilation and warm-up excluded; compile time reported apart) and, when `import
torch` works, times ../shared/bench/torch_reference.py's same case in a subprocess
(`--threads 2`). Shared machines drift 15-20% from minute to minute, so the two sides
alternate `--rounds` times (default 3) and the reported ratio is the median of the
per-round ratios jaxgan / torch; the img/s figures are the medians of the rounds.

Prints one JSON line with --json:
  {"case", "jaxgan_img_s", "jaxgan_ms_step", "compile_s", "torch_eager_img_s", "ratio",
   "device", "jax", "rounds": [...], ...}
and a readable table otherwise. `--xla-flags "..."` appends to XLA_FLAGS before jax is
imported (for trying XLA options; the default measures what training runs).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_TORCH_REF = REPO.parent / 'shared' / 'bench' / 'torch_reference.py'

# A case: the config file and overrides that make the step, the data shape, and the
# torch_reference.py case that is its peer. Add dcgan64_b64 etc. here.
CASES: dict[str, dict[str, Any]] = {
    'mnist_mmd_b100': dict(
        config='configs/mmd_dcgan.py',
        overrides={'data.batch_size': 100, 'train.eta': 10.0},
        shape=(28, 28, 1),
        torch_case='mnist_mmd_b100'),
}


def _set(config, dotted: str, value) -> None:
  node = config
  *path, leaf = dotted.split('.')
  for p in path:
    node = node[p]
  node[leaf] = value


class JaxStep:
  """The compiled train step of one case, its state and a fixed batch."""

  def __init__(self, case: dict[str, Any]):
    import jax  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    from jaxgan import systems  # pylint: disable=g-import-not-at-top
    from jaxgan.config_util import load_config_file  # pylint: disable=g-import-not-at-top

    self.jax = jax
    config = load_config_file(REPO / case['config'])
    for k, v in case['overrides'].items():
      _set(config, k, v)
    shape = tuple(case['shape'])
    self.batch_size = config.data.batch_size
    models = systems.build_models(config, shape)
    self.state = systems.create_state(config, models, shape)
    self.key = systems.train_key(config)
    pixels = np.random.RandomState(0).randint(
        0, 256, (config.train.n_disc, self.batch_size) + shape).astype(np.uint8)
    self.batch = {'images': jax.device_put(pixels)}
    t = time.perf_counter()
    # Ahead-of-time compilation: compile_s is tracing + XLA, without any execution.
    self.step = systems.make_step(config, models).lower(self.state, self.batch, self.key).compile()
    self.compile_s = time.perf_counter() - t
    self.run(2)  # warm-up: first executions allocate and fault in buffers

  def run(self, steps: int) -> float:
    """Runs `steps` steps; returns seconds per step."""
    t = time.perf_counter()
    for _ in range(steps):
      self.state, metrics = self.step(self.state, self.batch, self.key)
    self.jax.block_until_ready((self.state, metrics))
    return (time.perf_counter() - t) / steps


def torch_available() -> bool:
  return importlib.util.find_spec('torch') is not None


def run_torch(ref: pathlib.Path, case: str, steps: int, threads: int) -> dict[str, Any]:
  """torch_reference.py's case in a subprocess -> {'step_ms', 'img_s'} (+ 'torch')."""
  cmd = [sys.executable, str(ref), '--steps', str(steps), '--threads', str(threads),
         '--cases', case]
  out = subprocess.run(cmd, check=True, capture_output=True, text=True)
  line = [l for l in out.stdout.splitlines() if l.startswith('{')][-1]
  res = json.loads(line)
  if 'error' in res[case]:
    raise RuntimeError(f'torch_reference.py {case}: {res[case]["error"]}')
  return dict(res[case], torch=res.get('torch'))


def device_name(jax) -> str:
  dev = jax.devices()[0]
  if dev.platform != 'cpu':
    return f'{dev.platform}: {dev.device_kind}'
  model = platform.processor() or 'cpu'
  try:
    for line in open('/proc/cpuinfo'):
      if line.startswith('model name'):
        model = line.split(':', 1)[1].strip()
        break
  except OSError:
    pass
  return f'cpu: {model}, {os.cpu_count()} cores'


def measure(args) -> dict[str, Any]:
  case = CASES[args.case]
  js = JaxStep(case)
  jax = js.jax
  use_torch = not args.no_torch and torch_available()
  ref = pathlib.Path(args.torch_ref)
  if use_torch and not ref.is_file():
    raise SystemExit(f'torch reference not found at {ref}: pass --torch-ref PATH or --no-torch')
  rounds = []
  for _ in range(args.rounds):
    r = {'jaxgan_ms_step': 1e3 * js.run(args.steps)}
    r['jaxgan_img_s'] = js.batch_size / r['jaxgan_ms_step'] * 1e3
    if use_torch:
      t = run_torch(ref, case['torch_case'], args.steps, args.threads)
      r.update(torch_eager_ms_step=t['step_ms'], torch_eager_img_s=t['img_s'],
               ratio=r['jaxgan_img_s'] / t['img_s'], torch=t['torch'])
    rounds.append(r)
  med = lambda k: statistics.median(r[k] for r in rounds)
  return {
      'case': args.case,
      'jaxgan_img_s': round(med('jaxgan_img_s'), 1),
      'jaxgan_ms_step': round(med('jaxgan_ms_step'), 1),
      'compile_s': round(js.compile_s, 2),
      'torch_eager_img_s': round(med('torch_eager_img_s'), 1) if use_torch else None,
      'ratio': round(med('ratio'), 3) if use_torch else None,
      'device': device_name(jax),
      'jax': jax.__version__,
      'torch': rounds[0]['torch'] if use_torch else None,
      'batch': js.batch_size,
      'steps': args.steps,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'rounds': [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                  if k != 'torch'} for r in rounds],
  }


def print_table(res: dict[str, Any]) -> None:
  print(f"{res['case']} on {res['device']}  (jax {res['jax']}, torch {res['torch']}, "
        f"batch {res['batch']}, {res['steps']} steps per round, compile {res['compile_s']} s)")
  print(f"{'round':>5}  {'jaxgan ms':>10}  {'jaxgan img/s':>12}  {'torch ms':>9}  "
        f"{'torch img/s':>11}  {'ratio':>6}")
  fmt = lambda v, f: format(v, f) if v is not None else '-'
  for i, r in enumerate(res['rounds']):
    print(f"{i:>5}  {r['jaxgan_ms_step']:>10.1f}  {r['jaxgan_img_s']:>12.1f}  "
          f"{fmt(r.get('torch_eager_ms_step'), '>9.1f'):>9}  "
          f"{fmt(r.get('torch_eager_img_s'), '>11.1f'):>11}  {fmt(r.get('ratio'), '>6.3f'):>6}")
  print(f"{'med':>5}  {res['jaxgan_ms_step']:>10.1f}  {res['jaxgan_img_s']:>12.1f}  {'':>9}  "
        f"{fmt(res['torch_eager_img_s'], '>11.1f'):>11}  {fmt(res['ratio'], '>6.3f'):>6}")


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--case', default='mnist_mmd_b100', choices=sorted(CASES))
  p.add_argument('--steps', type=int, default=20, help='timed steps per round and side')
  p.add_argument('--rounds', type=int, default=3, help='alternations jaxgan / torch')
  p.add_argument('--threads', type=int, default=2, help="torch_reference.py's --threads")
  p.add_argument('--no-torch', action='store_true', help='time jaxgan only')
  p.add_argument('--torch-ref', default=str(DEFAULT_TORCH_REF))
  p.add_argument('--xla-flags', default='', help='appended to XLA_FLAGS before jax starts')
  p.add_argument('--json', action='store_true', help='print one JSON line')
  args = p.parse_args(argv)
  if args.xla_flags:
    os.environ['XLA_FLAGS'] = f"{os.environ.get('XLA_FLAGS', '')} {args.xla_flags}".strip()
  sys.path.insert(0, str(REPO))
  res = measure(args)
  if args.json:
    print(json.dumps(res))
  else:
    print_table(res)


if __name__ == '__main__':
  main()
