r"""Train-step speed of jaxgan against the PyTorch reference, measured in the same run.

  python benchmarks/step_speed.py --case mnist_mmd_b100 --json [--steps N] [--no-torch]
  python benchmarks/step_speed.py --case dcgan64_b256 --dtype bfloat16

builds the step exactly as training does (configs/*.py -> jaxgan.systems), times it
(compilation and warm-up excluded; compile time reported apart), counts its FLOPs from
its jaxpr (benchmarks/flops.py, the same on every backend) and measures the machine's matmul peak in the
same run, and, when `import torch` works and ../shared/bench/torch_reference.py has the
case, times that script's same case in a subprocess (`--threads 2`), eagerly and with
`--compile` (torch.compile of both networks; time-boxed, a failure is recorded as null
with its reason). Shared machines drift 15-20% from minute to minute, so the sides
alternate `--rounds` times (default 3): the img/s figures are the medians of the
rounds and `ratio` is the median of the per-round ratios jaxgan / torch eager.

Cases (CASES below): mnist_mmd_b100, dcgan64_b64, dcgan64_b256 (torch_reference.py's
names), wgan_gp (n_critic 5) and vtgan (no torch peer), and sweep8 (an 8-member eta
sweep of mnist_mmd_b100 in one vmapped program; compare its aggregate img/s with
mnist_mmd_b100's, which 8 sequential solo runs would reach). img/s counts the
real training images a step consumes (n_disc x batch; for a sweep, x members): an epoch
takes dataset size / img/s.

Prints one JSON line with --json:
  {"case", "jaxgan_img_s", "jaxgan_ms_step", "compile_s", "step_gflop", "gflop_s",
   "matmul_peak_gflop_s", "pct_peak", "torch_eager_img_s", "torch_compile_img_s",
   "ratio", "ratio_vs_best_torch", "device", "jax", "torch", "dtype", "rounds": [...], ...}
and a readable table otherwise. `--xla-flags "..."` appends to XLA_FLAGS before jax is
imported, `--conv-impl` overrides the networks' convolution formulation, `--dtype`
their compute dtype, and `--set KEY=VALUE` any config field (for trying options and
for shrinking a case in tests; the defaults measure what training runs). `--layers`
instead times each convolution of the MNIST step alone, per formulation
(docs/performance.md). benchmarks/run.py runs every case and writes the table.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_TORCH_REF = REPO.parent / 'shared' / 'bench' / 'torch_reference.py'

# A case: the config file and overrides that make the step, the data shape [H, W, C],
# the torch_reference.py case that is its peer (None: no peer), and for a sweep its
# number of members (build_step: systems.compile_step, what main.py trains).
CASES: dict[str, dict[str, Any]] = {
    'mnist_mmd_b100': dict(
        config='configs/mmd_dcgan.py', overrides={'data.batch_size': 100, 'train.eta': 10.0},
        shape=(28, 28, 1), torch_case='mnist_mmd_b100'),
    'dcgan64_b64': dict(
        config='configs/dcgan.py', overrides={'data.batch_size': 64},
        shape=(64, 64, 3), torch_case='dcgan64_b64'),
    'dcgan64_b256': dict(
        config='configs/dcgan.py', overrides={'data.batch_size': 256},
        shape=(64, 64, 3), torch_case='dcgan64_b256'),
    'wgan_gp': dict(
        config='configs/wgan_gp.py', overrides={'data.batch_size': 64, 'train.n_disc': 5},
        shape=(28, 28, 1), torch_case=None),
    'vtgan': dict(  # MNIST padded to 32x32 (configs/acgan.py: data.pad_to = 32)
        config='configs/vtgan.py', overrides={'data.batch_size': 100},
        shape=(32, 32, 1), torch_case=None),
    # An 8-member eta sweep of the MNIST MMD step in one compiled program (build_step).
    'sweep8': dict(
        config='configs/mmd_dcgan.py', overrides={'data.batch_size': 100, 'train.eta': 10.0},
        shape=(28, 28, 1), torch_case=None, members=8),
}


class CaseUnavailable(Exception):
  """A case that cannot be measured here (its message says why); callers skip it."""


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
  """['model.gen_width=16', "data.name='mnist'"] -> {'model.gen_width': 16, ...}.

  Values are Python literals where they parse as one, strings otherwise.
  """
  out = {}
  for item in items or []:
    key, sep, text = item.partition('=')
    if not sep:
      raise SystemExit(f'--set needs KEY=VALUE, got {item!r}')
    try:
      out[key.strip()] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      out[key.strip()] = text
  return out


def case_config(case: dict[str, Any], dtype: str | None = None,
                overrides: dict[str, Any] | None = None):
  """The case's config: its file, its overrides, then dtype and the caller's overrides."""
  from jaxgan.config_util import load_config_file, set_field  # pylint: disable=g-import-not-at-top
  config = load_config_file(REPO / case['config'])
  extra = dict(overrides or {})
  if dtype:
    extra['model.compute_dtype'] = dtype
  for k, v in {**case['overrides'], **extra}.items():
    set_field(config, k, v)
  return config


@dataclasses.dataclass
class StepParts:
  """What build_step returns: the jitted step fn(state, *args) -> (state, metrics) (the
  state donated), its first state and the other arguments (held fixed while timing),
  how many real training images a step consumes and how many steps a call runs."""
  fn: Callable
  state: Any
  args: tuple
  images_per_step: int
  steps_per_call: int = 1


def _models_and_batch(case: dict[str, Any], config, conv_impl: str | None):
  """The config's networks (conv_impl overridden if given) and one fixed random batch."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxgan import systems  # pylint: disable=g-import-not-at-top

  shape = tuple(case['shape'])
  models = systems.build_models(config, shape)
  if conv_impl:  # time another (equal) convolution formulation than the nets' default
    for net in (models.gen, models.disc):
      if not hasattr(net, 'conv_impl'):
        raise CaseUnavailable(f'{type(net).__name__} has no conv_impl to override')
    models = models._replace(gen=models.gen.clone(conv_impl=conv_impl),
                             disc=models.disc.clone(conv_impl=conv_impl))
  n_disc, batch_size = config.train.n_disc, config.data.batch_size
  rng = np.random.RandomState(0)
  batch = {'images': jax.device_put(
      rng.randint(0, 256, (n_disc, batch_size) + tuple(shape)).astype(np.uint8))}
  if systems.is_conditional(config):
    batch['labels'] = jax.device_put(
        rng.randint(0, config.model.num_classes, (n_disc, batch_size)).astype(np.int32))
  return models, batch


def build_step(case: dict[str, Any], config, conv_impl: str | None) -> StepParts:
  """The training step of a config as main.py trains it (systems.compile_step).

  A case with `members` = M is an M-member eta sweep of its config (eta = 0, 5, ...,
  5 (M-1)), all members in one vmapped program as `--config.sweep` trains them
  (jaxgan/sweep.py), on one shared batch (common random numbers). img/s is then the
  aggregate over the members: M sequential solo runs would reach the solo case's img/s,
  so the ratio of the two rows is the sweep's speed-up. With train.steps_per_call = k > 1
  (e.g. --set train.steps_per_call=16) a call runs k steps on k copies of the batch, as
  training's CompiledStep.run does."""
  import jax  # pylint: disable=g-import-not-at-top
  from jaxgan import parallel, sweep, systems  # pylint: disable=g-import-not-at-top

  members = int(case.get('members', 1))
  if members > 1:
    config.sweep = 'train.eta=' + ','.join(str(5 * i) for i in range(members))
  models, batch = _models_and_batch(case, config, conv_impl)
  shape = tuple(case['shape'])
  step = systems.compile_step(config, models, parallel.make_mesh(1))
  state = jax.device_put(sweep.stack([systems.create_state(m.config, models, shape)
                                      for m in step.members]))
  images = members * config.train.n_disc * config.data.batch_size
  k = int(config.train.steps_per_call) or 1
  if k == 1:
    return StepParts(step.fn, state, (batch,), images)
  chunk = jax.tree.map(lambda x: jax.numpy.stack([x] * k), batch)
  return StepParts(step.chunk_fn, state, (chunk,), images, k)


class JaxStep:
  """The compiled train step of one case, its state, a fixed batch, and its FLOPs."""

  def __init__(self, case: dict[str, Any], conv_impl: str | None = None,
               dtype: str | None = None, overrides: dict[str, Any] | None = None,
               count_flops: bool = True):
    import jax  # pylint: disable=g-import-not-at-top
    import flops  # pylint: disable=g-import-not-at-top

    self.jax = jax
    config = case_config(case, dtype, overrides)
    self.dtype = config.model.get('compute_dtype', 'float32')
    self.batch_size = config.data.batch_size
    parts = build_step(case, config, conv_impl)
    self.state, self.args = parts.state, parts.args
    self.images_per_step = parts.images_per_step
    self.steps_per_call = parts.steps_per_call
    t = time.perf_counter()
    # Ahead-of-time compilation: compile_s is tracing + XLA, without any execution.
    self.step = parts.fn.lower(self.state, *self.args).compile()
    self.compile_s = time.perf_counter() - t
    self.flops, self.flops_source = None, 'not counted (--no-flops)'
    if count_flops:  # the model's FLOPs: the same step with XLA's own convolutions, traced
      model = build_step(case, case_config(case, dtype, {**(overrides or {}),
                                                         **flops.CANONICAL_OVERRIDES}), None)
      per_call, self.flops_source = flops.program_flops(model.fn,
                                                        (model.state,) + tuple(model.args))
      self.flops = per_call / model.steps_per_call
    self.run(2)  # warm-up: first executions allocate and fault in buffers

  def run(self, steps: int) -> float:
    """Runs `steps` steps (at least one call); returns seconds per step."""
    calls = max(1, steps // self.steps_per_call)
    t = time.perf_counter()
    for _ in range(calls):
      self.state, metrics = self.step(self.state, *self.args)
    self.jax.block_until_ready((self.state, metrics))
    return (time.perf_counter() - t) / (calls * self.steps_per_call)


def torch_available() -> bool:
  return importlib.util.find_spec('torch') is not None


class TorchFailure(Exception):
  """torch_reference.py gave no number for a case (message: why, one line)."""


def run_torch(ref: pathlib.Path, case: str, steps: int, threads: int, compile_nets: bool = False,
              timeout: float | None = None) -> dict[str, Any]:
  """torch_reference.py's case in a subprocess -> {'step_ms', 'img_s', 'torch', 'device'}.

  Raises TorchFailure with the reason when the script fails, reports an error for the
  case (torch.compile can fail on some versions) or runs past `timeout` seconds.
  """
  cmd = [sys.executable, str(ref), '--steps', str(steps), '--threads', str(threads),
         '--cases', case] + (['--compile'] if compile_nets else [])
  try:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    raise TorchFailure(f'timed out after {timeout:.0f} s') from None
  lines = [l for l in out.stdout.splitlines() if l.startswith('{')]
  if out.returncode or not lines:
    tail = (out.stderr.strip().splitlines() or ['no output'])[-1]
    raise TorchFailure(f'exit {out.returncode}: {tail[:200]}')
  res = json.loads(lines[-1])
  if 'error' in res.get(case, {'error': 'case missing from the output'}):
    raise TorchFailure(str(res.get(case, {}).get('error', 'case missing'))[:300])
  return dict(res[case], torch=res.get('torch'), device=res.get('device'))


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


def device_slug(jax) -> str:
  """A short file-name form of the device: 'cpu-2core', 'gpu-nvidia-h100-80gb-hbm3'."""
  dev = jax.devices()[0]
  if dev.platform == 'cpu':
    return f'cpu-{os.cpu_count()}core'
  return re.sub(r'[^a-z0-9]+', '-', f'{dev.platform} {dev.device_kind}'.lower()).strip('-')[:48]


def _torch_peer_problem(jax, torch_device: str | None) -> str | None:
  """Why a torch number is no peer of this jax run (different kinds of device), or None."""
  jax_gpu = jax.devices()[0].platform != 'cpu'
  torch_gpu = bool(torch_device) and torch_device != 'cpu'
  if jax_gpu != torch_gpu:
    return (f'torch ran on {torch_device or "?"} but jax on {jax.devices()[0].platform}: '
            'not a peer')
  return None


def _torch_plan(case: dict[str, Any], opts: Any) -> tuple[str | None, str | None]:
  """(why torch eager is not run, why torch.compile is not run); None = run it."""
  ref = pathlib.Path(opts.torch_ref)
  why = None
  if case['torch_case'] is None:
    why = 'no peer in torch_reference.py'
  elif opts.no_torch:
    why = 'not run (--no-torch)'
  elif not torch_available():
    why = 'torch is not installed'
  elif not ref.is_file():
    why = f'torch reference not found at {ref} (--torch-ref PATH)'
  if why:
    return why, why
  return None, ('not run (--no-compile)' if opts.no_compile else None)


def _run_peer(jax, ref: pathlib.Path, torch_case: str, opts: Any, compile_nets: bool) -> dict:
  """run_torch with the options' limits; a torch on another kind of device is a failure."""
  timeout = opts.compile_timeout if compile_nets else opts.torch_timeout
  t = run_torch(ref, torch_case, opts.steps, opts.threads, compile_nets, timeout)
  problem = _torch_peer_problem(jax, t['device'])
  if problem:
    raise TorchFailure(problem)
  return t


def measure(case_name: str, opts: Any) -> dict[str, Any]:
  """Times one case (jaxgan and its torch peers alternated) -> the result dict.

  opts: the parsed common options (add_common_args). Raises CaseUnavailable for an
  unknown case or one that cannot be built here.
  """
  if case_name not in CASES:
    raise CaseUnavailable(f'unknown case (known: {", ".join(sorted(CASES))})')
  import flops  # pylint: disable=g-import-not-at-top
  case = CASES[case_name]
  overrides = parse_overrides(getattr(opts, 'set', None))
  js = JaxStep(case, opts.conv_impl, opts.dtype, overrides, count_flops=not opts.no_flops)
  jax = js.jax
  peak = flops.MatmulPeak(js.dtype, opts.peak_size)

  eager_why, compile_why = _torch_plan(case, opts)
  ref = pathlib.Path(opts.torch_ref)
  rounds = []
  torch_version = None
  for i in range(opts.rounds):
    r = {'jaxgan_ms_step': 1e3 * js.run(opts.steps)}
    r['jaxgan_img_s'] = js.images_per_step / r['jaxgan_ms_step'] * 1e3
    r['matmul_peak_gflop_s'] = peak.measure()
    if eager_why is None:
      try:
        t = _run_peer(jax, ref, case['torch_case'], opts, compile_nets=False)
        torch_version = t['torch']
        r.update(torch_eager_ms_step=t['step_ms'], torch_eager_img_s=t['img_s'],
                 ratio=r['jaxgan_img_s'] / t['img_s'])
      except TorchFailure as e:  # recorded once; not retried in later rounds
        eager_why = f'failed: {e}'
        compile_why = compile_why or 'not run: torch eager failed'
    if compile_why is None and i < opts.compile_rounds:
      try:
        t = _run_peer(jax, ref, case['torch_case'], opts, compile_nets=True)
        torch_version = t['torch']
        r.update(torch_compile_ms_step=t['step_ms'], torch_compile_img_s=t['img_s'])
      except TorchFailure as e:
        compile_why = f'failed: {e}'
    rounds.append(r)

  def med(key):
    vals = [r[key] for r in rounds if key in r]
    return statistics.median(vals) if vals else None
  rnd = lambda v, n=1: None if v is None else round(v, n)
  img_s, step_s = med('jaxgan_img_s'), med('jaxgan_ms_step') / 1e3
  peak_gflop_s = max(r['matmul_peak_gflop_s'] for r in rounds)
  gflop_s = js.flops / step_s / 1e9 if js.flops else None
  eager, compiled = med('torch_eager_img_s'), med('torch_compile_img_s')
  best_torch = max([v for v in (eager, compiled) if v is not None], default=None)
  return {
      'case': case_name,
      'jaxgan_img_s': rnd(img_s),
      'jaxgan_ms_step': rnd(step_s * 1e3),
      'compile_s': rnd(js.compile_s, 2),
      'step_gflop': rnd(js.flops / 1e9 if js.flops else None, 3),
      'flops_source': js.flops_source,
      'gflop_s': rnd(gflop_s),
      'matmul_peak_gflop_s': rnd(peak_gflop_s),
      'matmul_peak': f'{peak.dtype} {peak.n}^3 matmul, best of {peak.reps * opts.rounds}',
      'pct_peak': rnd(100 * gflop_s / peak_gflop_s if gflop_s else None, 2),
      'torch_eager_img_s': rnd(eager),
      'torch_eager_ms_step': rnd(med('torch_eager_ms_step')),
      'torch_compile_img_s': rnd(compiled),
      'torch_compile_ms_step': rnd(med('torch_compile_ms_step')),
      'torch_eager_note': eager_why,
      'torch_compile_note': compile_why,
      'ratio': rnd(med('ratio'), 3),
      'ratio_vs_best_torch': rnd(img_s / best_torch if best_torch else None, 3),
      'device': device_name(jax),
      'jax': jax.__version__,
      'torch': torch_version,
      'dtype': js.dtype,
      'batch': js.batch_size,
      'images_per_step': js.images_per_step,
      'steps': opts.steps,
      'conv_impl': opts.conv_impl or 'default',
      'overrides': overrides,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'rounds': [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                 for r in rounds],
  }


# The convolutions of the MNIST step (batch 100; D sees real + fake, 200):
# (name, kind, input shape, kernel shape, stride).
MNIST_CONVS = [
    ('G UpConv_0', 'transpose', (100, 7, 7, 256), (4, 4, 256, 128), 2),
    ('G UpConv_1', 'transpose', (100, 14, 14, 128), (4, 4, 128, 1), 2),
    ('D Conv_0', 'conv', (200, 28, 28, 1), (4, 4, 1, 64), 2),
    ('D Conv_1', 'conv', (200, 14, 14, 64), (4, 4, 64, 128), 2),
]


def layer_table(impls: list[str], reps: int, dtype: str = 'float32') -> list[dict[str, Any]]:
  """ms of each MNIST convolution per conv_impl: forward, and forward + both gradients
  (the G-phase pattern: d/dx and d/dkernel of <y, g>), with inputs and kernels in
  `dtype`. Min over `reps` runs, with the implementations interleaved so that machine
  drift hits all alike."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxgan.nets import conv_ops, layers  # pylint: disable=g-import-not-at-top

  rows = []
  rng = np.random.RandomState(0)
  for name, kind, x_shape, k_shape, stride in MNIST_CONVS:
    x = jax.device_put(rng.standard_normal(x_shape).astype(np.float32)).astype(dtype)
    w = jax.device_put((0.02 * rng.standard_normal(k_shape)).astype(np.float32)).astype(dtype)
    fns = {}
    for impl in impls:
      if kind == 'transpose':
        f = lambda x, w, impl=impl: conv_ops.conv_transpose(x, w, stride, impl)
      else:
        f = lambda x, w, impl=impl: conv_ops.conv2d(x, w, stride, 'SAME', impl)
      g = jax.device_put(rng.standard_normal(jax.eval_shape(f, x, w).shape).astype(np.float32))
      g = g.astype(dtype)
      both = lambda x, w, g, f=f: jax.vjp(f, x, w)[1](g)
      fns[(impl, 'fwd')] = (jax.jit(f), (x, w))
      fns[(impl, 'fwd+grads')] = (jax.jit(both), (x, w, g))
    times = {k: [] for k in fns}
    for k, (f, a) in fns.items():  # compile and warm up
      jax.block_until_ready(f(*a))
    for _ in range(reps):
      for k, (f, a) in fns.items():
        if times[k] and times[k][0] > 2.0 and len(times[k]) >= 2:
          continue  # a multi-second formulation: two runs are enough
        t = time.perf_counter()
        jax.block_until_ready(f(*a))
        times[k].append(time.perf_counter() - t)
    for impl in impls:
      rows.append({'layer': name, 'impl': impl,
                   'fwd_ms': round(1e3 * min(times[(impl, 'fwd')]), 1),
                   'fwd_grads_ms': round(1e3 * min(times[(impl, 'fwd+grads')]), 1)})
  return rows


def print_table(res: dict[str, Any]) -> None:
  fmt = lambda v, f: format(v, f) if v is not None else '-'
  print(f"{res['case']} on {res['device']}  (jax {res['jax']}, torch {res['torch']}, "
        f"{res['dtype']}, {res['images_per_step']} images per step, {res['steps']} steps per "
        f"round, compile {res['compile_s']} s)")
  print(f"  step {fmt(res['step_gflop'], '.2f')} GFLOP ({res['flops_source']}): "
        f"{fmt(res['gflop_s'], '.1f')} GFLOP/s = {fmt(res['pct_peak'], '.1f')}% of the measured "
        f"{res['matmul_peak']} ({res['matmul_peak_gflop_s']} GFLOP/s)")
  print(f"{'round':>5}  {'jaxgan ms':>10}  {'jaxgan img/s':>12}  {'eager ms':>9}  "
        f"{'eager img/s':>11}  {'compiled img/s':>14}  {'ratio':>6}")
  for i, r in enumerate(res['rounds']):
    print(f"{i:>5}  {r['jaxgan_ms_step']:>10.1f}  {r['jaxgan_img_s']:>12.1f}  "
          f"{fmt(r.get('torch_eager_ms_step'), '.1f'):>9}  "
          f"{fmt(r.get('torch_eager_img_s'), '.1f'):>11}  "
          f"{fmt(r.get('torch_compile_img_s'), '.1f'):>14}  {fmt(r.get('ratio'), '.3f'):>6}")
  print(f"{'med':>5}  {res['jaxgan_ms_step']:>10.1f}  {res['jaxgan_img_s']:>12.1f}  {'':>9}  "
        f"{fmt(res['torch_eager_img_s'], '.1f'):>11}  {fmt(res['torch_compile_img_s'], '.1f'):>14}  "
        f"{fmt(res['ratio'], '.3f'):>6}")
  for side in ('eager', 'compile'):
    if res[f'torch_{side}_note']:
      print(f"  torch {side}: {res[f'torch_{side}_note']}")


def unused_stem(out: str | pathlib.Path, base: str) -> str:
  """base, or base-2, base-3, ...: the first with neither a .json nor a .md in out, so a
  report never replaces an earlier one."""
  stem, n = base, 1
  while any((pathlib.Path(out) / f'{stem}{ext}').exists() for ext in ('.json', '.md')):
    n += 1
    stem = f'{base}-{n}'
  return stem


def publish_report(out: str, slug: str, kind: str, case: str, report: dict[str, Any],
                   md: str) -> None:
  """Prints the markdown table and writes <out>/<date>-<slug>-<kind>-<case>.json (the
  report) and .md (the table), saying where on stderr; out '' only prints. A second
  report of the same day and case gets a -2, -3, ... suffix instead of replacing the
  first (runs with and without --set are compared side by side)."""
  print(md)
  if not out:
    return
  stem = pathlib.Path(out) / unused_stem(out, f'{time.strftime("%Y-%m-%d")}-{slug}-{kind}-{case}')
  stem.parent.mkdir(parents=True, exist_ok=True)
  stem.with_suffix('.json').write_text(json.dumps(report, indent=1) + '\n')
  stem.with_suffix('.md').write_text(md)
  print(f'wrote {stem}.json and .md', file=sys.stderr)


def add_common_args(p: argparse.ArgumentParser) -> None:
  """The options step_speed.py and run.py share (run.py passes them to `measure`)."""
  p.add_argument('--steps', type=int, default=20, help='timed steps per round and side')
  p.add_argument('--rounds', type=int, default=3, help='alternations jaxgan / torch')
  p.add_argument('--dtype', default=None, choices=['float32', 'bfloat16'],
                 help="networks' compute dtype (config.model.compute_dtype); default: the config's")
  p.add_argument('--set', action='append', metavar='KEY=VALUE',
                 help='override a config field, e.g. --set model.gen_width=16 (repeatable)')
  p.add_argument('--threads', type=int, default=2,
                 help="torch_reference.py's --threads (0: torch's default)")
  p.add_argument('--no-torch', action='store_true', help='time jaxgan only')
  p.add_argument('--no-compile', action='store_true', help='skip the torch.compile peer')
  p.add_argument('--compile-rounds', type=int, default=1,
                 help='rounds that also time torch.compile (each recompiles: minutes on CPU)')
  p.add_argument('--compile-timeout', type=float, default=600.0,
                 help='seconds before a torch.compile run is given up (recorded as null)')
  p.add_argument('--torch-timeout', type=float, default=600.0,
                 help='seconds before a torch eager run is given up')
  p.add_argument('--torch-ref', default=str(DEFAULT_TORCH_REF))
  p.add_argument('--no-flops', action='store_true',
                 help="skip the FLOP count (it recompiles steps with loops, e.g. wgan_gp's)")
  p.add_argument('--peak-size', type=int, default=None,
                 help='n of the n x n x n peak matmul (default 2048 on CPU, 8192 elsewhere)')
  p.add_argument('--xla-flags', default='', help='appended to XLA_FLAGS before jax starts')
  p.add_argument('--conv-impl', default=None, choices=['auto', 'xla', 'matmul', 'hybrid'],
                 help="override the nets' conv_impl (all are the same function)")


def setup_environment(args: argparse.Namespace) -> None:
  """XLA flags before jax is imported; the repo on sys.path for `import jaxgan`."""
  if args.xla_flags:
    os.environ['XLA_FLAGS'] = f"{os.environ.get('XLA_FLAGS', '')} {args.xla_flags}".strip()
  if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--case', default='mnist_mmd_b100', choices=sorted(CASES))
  add_common_args(p)
  p.add_argument('--layers', action='store_true',
                 help="time each MNIST convolution per conv_impl instead of the step")
  p.add_argument('--json', action='store_true', help='print one JSON line')
  args = p.parse_args(argv)
  setup_environment(args)
  if args.layers:
    dtype = args.dtype or 'float32'
    rows = layer_table(['xla', 'matmul', 'hybrid'], reps=max(args.steps // 2, 3), dtype=dtype)
    if args.json:
      print(json.dumps({'layers': rows, 'dtype': dtype, 'xla_flags': os.environ.get('XLA_FLAGS', '')}))
    else:
      print(f"{'layer':12s} {'impl':8s} {'fwd ms':>8s} {'fwd+grads ms':>13s}   ({dtype})")
      for r in rows:
        print(f"{r['layer']:12s} {r['impl']:8s} {r['fwd_ms']:8.1f} {r['fwd_grads_ms']:13.1f}")
    return
  try:
    res = measure(args.case, args)
  except CaseUnavailable as e:
    print(json.dumps({'case': args.case, 'skipped': str(e)}) if args.json
          else f'{args.case}: skipped: {e}')
    sys.exit(3)
  if args.json:
    print(json.dumps(res))
  else:
    print_table(res)


if __name__ == '__main__':
  main()
