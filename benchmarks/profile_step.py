r"""Where a training step's time goes: per-operation profiles of jaxgan and PyTorch.

  python benchmarks/profile_step.py --case mnist_mmd_b100 [--steps 5] [--no-torch]
                                    [--out benchmarks/results] [--xla-flags "..."]

jaxgan side: the step exactly as step_speed.py times it (the training config, compiled
ahead of time), run `--steps` times under `jax.profiler`; the trace's XLA events (one
per executed HLO instruction or fusion, on every XLA thread) are summed per
instruction and mapped back to the compiled HLO: the instruction's category (what its
fusion computes: convolution, matmul, reduction, data movement, element-wise) and the
network layer and direction its `op_name` metadata names (e.g. "G UpConv_0 bwd").
Each instant of the profiled steps is shared among the ops running at that moment on
XLA's threads (one op spread over both cores gets all of it, two ops side by side half
each), so the per-op ms add up to the wall time. Some ops run asynchronously: an Eigen
convolution's traced span is only its hand-off to the thread pool, and its work runs in
untraced pool tasks until the executor marks it ended ("end: <name>"). A moment with no
traced op running goes to the ops handed off and not yet marked ended then; with none,
it is 'idle' (the executor's dispatch and synchronisation).

PyTorch side (cases with a torch_reference.py peer): the reference's eager step
(torch_variants.make_step, 'default') under `torch.profiler`, ops by self CPU time
(PyTorch's intra-op threads run inside an op's span, so its op times are wall time;
what the ops leave of the wall time is 'idle': Python and dispatch), in the same
categories.

Prints the tables and writes results/<date>-<device>-profile-<case>.json and .md: the
categories side by side, jaxgan by layer, and each side's top operations. The profiler
adds overhead (a few %): compare shares, and take speeds from step_speed.py / run.py.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import glob
import os
import pathlib
import re
import sys
import tempfile
import time
from typing import Any

import step_speed

CATEGORIES = ('convolution', 'matmul', 'batchnorm', 'reduction', 'element-wise',
              'data movement', 'optimizer', 'rng', 'other', 'idle')
_INSTR = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*.*?\s([a-z][a-z0-9\-]*)\((.*)$')
_COMP = re.compile(r'^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$')
_LAYER = re.compile(r'(Generator\w*|Discriminator\w*)\)*/([A-Za-z]+_\d+)')
_MOVES = {'copy', 'transpose', 'bitcast', 'pad', 'slice', 'concatenate', 'dynamic-slice',
          'dynamic-update-slice', 'reshape', 'broadcast', 'parameter', 'tuple',
          'get-tuple-element', 'constant', 'iota', 'gather', 'scatter', 'reverse'}
IDLE = '(no op running)'
_END = 'end: '  # the thunk executor's marker where an (asynchronous) op completes
_RNG = ('threefry', '_normal', '_uniform', 'random_bits', 'rng')


class Hlo:
  """The compiled module's instructions: name -> (opcode, op_name, called computations),
  and each computation's instruction names, from `compiled.as_text()`."""

  def __init__(self, text: str):
    self.instrs: dict[str, tuple[str, str, list[str]]] = {}
    self.comps: dict[str, list[str]] = collections.defaultdict(list)
    self.roots: dict[str, str] = {}
    comp = None
    for line in text.splitlines():
      m = _INSTR.match(line)
      if m and comp is not None:
        name, opcode, rest = m.groups()
        meta = re.search(r'op_name="([^"]*)"', rest)
        calls = re.findall(r'(?:calls|to_apply|body|condition)=%?([\w.\-]+)', rest)
        self.instrs[name] = (opcode, meta.group(1) if meta else '', calls)
        self.comps[comp].append(name)
        if line.lstrip().startswith('ROOT'):
          self.roots[comp] = name
        continue
      c = _COMP.match(line)
      if c and '=' not in line.split('{')[0]:
        comp = c.group(1)

  def _opcodes(self, name: str, depth: int = 0) -> set[str]:
    opcode, _, calls = self.instrs.get(name, ('?', '', []))
    out = {opcode}
    if opcode == 'fusion' and depth < 3:
      for c in calls:
        for n in self.comps.get(c, []):
          out |= self._opcodes(n, depth + 1)
    return out

  def control_flow(self) -> frozenset[str]:
    """Loops, conditionals and calls: their bodies' instructions are traced one by one."""
    return frozenset(n for n, (op, _, _) in self.instrs.items()
                     if op in ('while', 'conditional', 'call'))

  def op_name(self, name: str) -> str:
    """The instruction's op_name, else its fusion root's, else any in the fusion."""
    opcode, meta, calls = self.instrs.get(name, ('?', '', []))
    if meta or opcode != 'fusion':
      return meta
    for c in calls:
      root = self.roots.get(c)
      if root and self.instrs[root][1]:
        return self.instrs[root][1]
      for n in self.comps.get(c, []):
        if self.instrs[n][1]:
          return self.instrs[n][1]
    return ''

  def classify(self, name: str) -> tuple[str, str, str]:
    """(category, layer, kind) of a top-level instruction that ran. kind is what the
    instruction computes (its fusion's opcodes); category puts everything a layer runs
    under that layer's kind, so the convolution category holds a convolution layer's
    XLA convolutions, im2col matmuls and patch copies alike, as PyTorch's convolution
    ops hold oneDNN's internal reorders."""
    if name == IDLE:
      return 'idle', '', 'idle'
    ops = self._opcodes(name) - {'fusion'}
    op_name = self.op_name(name)
    layer = jax_layer(op_name)
    if 'convolution' in ops:
      kind = 'convolution'
    elif 'dot' in ops:  # YNNPACK/oneDNN fusions hold element-wise work and reductions too
      kind = 'matmul'
    elif any(k in op_name for k in _RNG):
      kind = 'rng'
    elif ops & {'reduce', 'reduce-window', 'select-and-scatter'}:
      kind = 'reduction'
    elif ops and ops <= _MOVES:
      kind = 'data movement'
    elif ops - _MOVES:
      kind = 'element-wise'
    else:
      kind = 'other'
    unit = layer.split(' ')[1] if layer else ''
    if 'Conv' in unit:
      cat = 'convolution'
    elif 'Dense' in unit or kind == 'matmul':  # a dense matmul with BatchNorm fused in
      cat = 'matmul'
    elif 'BatchNorm' in unit:
      cat = 'batchnorm'
    else:
      cat = kind
    return cat, layer, kind


def jax_layer(op_name: str) -> str:
  """'G UpConv_0 fwd' / 'D Conv_1 bwd' from an op_name (gradients run under
  transpose(jvp(...))); '' outside the networks (losses, MMD, optimiser, RNG)."""
  m = _LAYER.search(op_name)
  if not m:
    return ''
  net = 'G' if m.group(1).startswith('Generator') else 'D'
  direction = 'bwd' if 'transpose(' in op_name[:m.start()] else 'fwd'
  return f'{net} {m.group(2)} {direction}'


def torch_category(name: str) -> str:
  """The category of a PyTorch op name (aten::..., Optimizer.step#...)."""
  n = name.lower()
  if 'conv' in n:
    return 'convolution'
  if re.fullmatch(r'aten::(mm|addmm|bmm|matmul|linear|baddbmm)', n):
    return 'matmul'
  if 'batch_norm' in n:
    return 'batchnorm'
  if 'foreach' in n or 'optim' in n or 'adam' in n:
    return 'optimizer'
  if re.fullmatch(r'aten::(sum|mean|max|min|amax|amin|norm|trace|logsumexp)', n):
    return 'reduction'
  if re.fullmatch(r'aten::(copy_|cat|contiguous|clone|transpose|permute|view|reshape|t|'
                  r'expand|as_strided|select|slice|narrow|unsqueeze|squeeze|empty\w*|'
                  r'zeros\w*|ones\w*|fill_|zero_|to|_to_copy|detach|resolve_\w+|stack)', n):
    return 'data movement'
  if re.search(r'rand|normal_|uniform_', n):
    return 'rng'
  return 'element-wise' if n.startswith('aten::') else 'other'


def _torch_classify(name: str) -> tuple[str, str, str]:
  cat = 'idle' if name == IDLE else torch_category(name)
  return cat, '', cat


def profile_jax(case: dict[str, Any], steps: int, dtype: str | None,
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
  import jax  # pylint: disable=g-import-not-at-top
  from jax.profiler import ProfileData  # pylint: disable=g-import-not-at-top

  js = step_speed.JaxStep(case, dtype=dtype, overrides=overrides, count_flops=False)
  hlo = Hlo(js.step.as_text())
  js.run(2)
  with tempfile.TemporaryDirectory() as tmp:
    jax.profiler.start_trace(tmp)
    wall = js.run(steps)
    jax.profiler.stop_trace()
    files = glob.glob(os.path.join(tmp, '**', '*.xplane.pb'), recursive=True)
    if not files:
      raise RuntimeError(f'jax.profiler wrote no trace under {tmp}')
    data = ProfileData.from_file(files[0])
  spans, end_marks = [], []
  for plane in data.planes:
    for line in plane.lines:
      if not line.name.startswith('tf_XLA'):  # XLA's own threads, not Python's
        continue
      for ev in line.events:  # executor waits ("ThunkExecutor::...") are neither
        if ev.name in hlo.instrs:
          spans.append((ev.start_ns, ev.start_ns + ev.duration_ns, ev.name))
        elif ev.name.startswith(_END) and ev.name[len(_END):] in hlo.instrs:
          end_marks.append((ev.start_ns + ev.duration_ns, ev.name[len(_END):]))
  per_op = wall_time_per_op(spans, pending_spans(spans, end_marks, hlo.control_flow()))
  return _summary(per_op, wall * 1e3, steps, hlo.classify,
                  extra={'compile_s': round(js.compile_s, 2), 'dtype': js.dtype,
                         'images_per_step': js.images_per_step,
                         'time': 'wall time, shared among the ops running at once'})


def pending_spans(spans: list[tuple[float, float, str]], end_marks: list[tuple[float, str]],
                  skip: frozenset[str] = frozenset()) -> list[tuple[float, float, str]]:
  """(end of its traced span, its "end: <name>" marker, name) for each op run that the
  executor marks ended later than its span ends.

  XLA:CPU's thunk executor runs some thunks asynchronously: an Eigen convolution's traced
  span covers only handing the work to the intra-op thread pool (0.1 ms of a ~40 ms
  convolution); the work runs in untraced pool tasks until the executor records the
  marker, which can come well after the work is done (the executor was running another
  thunk). Each run takes the first marker of its name at or after its start and before
  the name's next start (one instruction's runs do not overlap). Names in `skip` (loops
  and calls, whose bodies are traced op by op) are left out."""
  by_name: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
  marks: dict[str, list[float]] = collections.defaultdict(list)
  for start, end, name in spans:
    if name not in skip:
      by_name[name].append((start, end))
  for t, name in end_marks:
    marks[name].append(t)
  out = []
  for name, runs in by_name.items():
    runs.sort()
    ends = sorted(marks.get(name, ()))
    j = 0
    for i, (start, end) in enumerate(runs):
      nxt = runs[i + 1][0] if i + 1 < len(runs) else float('inf')
      while j < len(ends) and ends[j] < start:
        j += 1
      if j < len(ends) and ends[j] <= nxt:
        if ends[j] > end:
          out.append((end, ends[j], name))
        j += 1
  return out


def wall_time_per_op(events: list[tuple[float, float, str]],
                     pending: list[tuple[float, float, str]] = ()) -> dict[str, float]:
  """ms of wall time per op name from (start_ns, end_ns, name) events on several threads.

  Each instant of the timeline is shared equally among the distinct ops running then
  (an op split over both cores gets the whole instant; two ops side by side get half
  each). An instant where no traced op runs goes to the ops `pending` then (handed to the
  thread pool, not yet marked ended: their untraced work is what runs), else to IDLE
  (dispatch, synchronisation). The result adds up to the profiled span."""
  bounds = []
  for kind, items in ((0, events), (1, pending)):
    for start, end, name in items:
      if end > start:
        bounds += [(start, 1, kind, name), (end, -1, kind, name)]
  bounds.sort(key=lambda b: (b[0], b[1]))
  out: dict[str, float] = collections.Counter()
  active = (collections.Counter(), collections.Counter())  # running, pending
  prev = bounds[0][0] if bounds else 0
  for t, delta, kind, name in bounds:
    if t > prev:
      running = [n for n, k in active[0].items() if k > 0]
      owners = running or [n for n, k in active[1].items() if k > 0] or [IDLE]
      for n in owners:
        out[n] += (t - prev) / 1e6 / len(owners)
      prev = t
    active[kind][name] += delta
  return out


def profile_torch(ref_path: pathlib.Path, torch_case: str, steps: int, threads: int) -> dict[str, Any]:
  import torch  # pylint: disable=g-import-not-at-top
  import torch_variants  # pylint: disable=g-import-not-at-top

  if threads:
    torch.set_num_threads(threads)
  torch.manual_seed(0)
  ref = torch_variants.load_reference(ref_path)
  step, batch = torch_variants.make_step(ref, torch, torch_case, 'default')
  for _ in range(3):
    step()
  with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    t = time.perf_counter()
    for _ in range(steps):
      step()
    wall = (time.perf_counter() - t) / steps
  per_op = {e.key: e.self_cpu_time_total / 1e3 for e in prof.key_averages()
            if e.self_cpu_time_total > 0}
  per_op[IDLE] = max(wall * 1e3 * steps - sum(per_op.values()), 0.0)
  return _summary(per_op, wall * 1e3, steps, _torch_classify,
                  extra={'torch': torch.__version__, 'threads': torch.get_num_threads(),
                         'images_per_step': batch, 'time': 'self CPU time (wall)'})


def _summary(per_op: dict[str, float], wall_ms: float, steps: int, classify,
             extra: dict[str, Any]) -> dict[str, Any]:
  """Per-op ms per step, scaled so the ops add up to the measured wall ms per step."""
  total = sum(per_op.values())
  if total <= 0:
    raise RuntimeError('the profile recorded no operations')
  scale = wall_ms / total
  ops, cats, layers = [], collections.Counter(), collections.Counter()
  conv_kinds = collections.Counter()
  for name, ms in sorted(per_op.items(), key=lambda kv: -kv[1]):
    cat, layer, kind = classify(name)
    step_ms = ms * scale
    cats[cat] += step_ms
    if cat == 'convolution':
      conv_kinds[kind] += step_ms
    layers[layer or '(outside the networks)'] += step_ms
    ops.append({'op': name, 'category': cat, 'kind': kind, 'layer': layer, 'ms': round(step_ms, 4),
                'pct': round(100 * ms / total, 1)})
  return {'wall_ms_per_step': round(wall_ms, 3), 'profiled_ms_per_step': round(total / steps, 1),
          'steps': steps, **extra,
          'categories': {c: round(cats.get(c, 0.0), 3) for c in CATEGORIES},
          'layers': {k: round(v, 3) for k, v in layers.most_common()},
          'convolution_by_kind': {k: round(v, 3) for k, v in conv_kinds.most_common()},
          'ops': ops}


def markdown(report: dict[str, Any], top: int) -> str:
  jx, th = report['jaxgan'], report.get('torch')
  lines = [f"Profiled {report['date']} on {report['device']}: `{report['case']}`, "
           f"{jx['steps']} steps per side; jax {report['jax']}"
           + (f", torch {th['torch']} ({th['threads']} threads)" if th else '') + '.', '',
           f"Command: `{report['command']}`", '',
           'ms per step by category, each side scaled to its measured wall time per step '
           'under the profiler. convolution: all a convolution layer runs (jaxgan: XLA '
           'convolutions, im2col/col2im matmuls and patch copies; PyTorch: its aten '
           'convolution ops, oneDNN reorders included); matmul: dense layers and MMD; '
           'batchnorm: BatchNorm layers; the rest by what the operation computes (XLA '
           "fuses jaxgan's Adam update into element-wise ops, so its optimizer row stays 0):", '']
  head = '| category | jaxgan ms | jaxgan % |' + (' torch eager ms | torch % | jaxgan / torch |' if th else '')
  lines += [head, '|' + '---|' * (head.count('|') - 1)]
  for c in CATEGORIES + ('total',):
    jms = jx['wall_ms_per_step'] if c == 'total' else jx['categories'][c]
    row = f"| {c} | {jms:.1f} | {100 * jms / jx['wall_ms_per_step']:.0f} |"
    if th:
      tms = th['wall_ms_per_step'] if c == 'total' else th['categories'][c]
      ratio = f'{jms / tms:.2f}' if tms >= 0.05 else '-'
      row += f" {tms:.1f} | {100 * tms / th['wall_ms_per_step']:.0f} | {ratio} |"
    lines.append(row)
  kinds = ', '.join(f'{k} {v:.1f} ms' for k, v in jx['convolution_by_kind'].items())
  lines += ['', f'jaxgan convolution layers by what their operations compute: {kinds}.']
  lines += ['', 'jaxgan by layer (fwd: forward passes, bwd: their gradients):', '',
            '| layer | ms | % |', '|---|---|---|']
  for k, v in jx['layers'].items():
    lines.append(f"| {k} | {v:.1f} | {100 * v / jx['wall_ms_per_step']:.0f} |")
  for side, res in (('jaxgan', jx), ('torch eager', th)):
    if not res:
      continue
    lines += ['', f'{side}: top {top} operations', '', '| op | computes | layer | ms | % |',
              '|---|---|---|---|---|']
    for op in res['ops'][:top]:
      lines.append(f"| `{op['op']}` | {op['kind']} | {op['layer'] or '-'} | {op['ms']:.1f} | {op['pct']:.1f} |")
  return '\n'.join(lines) + '\n'


def main(argv=None) -> dict[str, Any]:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--case', default='mnist_mmd_b100', choices=sorted(step_speed.CASES))
  p.add_argument('--steps', type=int, default=5, help='profiled steps per side')
  p.add_argument('--dtype', default=None, choices=['float32', 'bfloat16'])
  p.add_argument('--threads', type=int, default=2, help="torch threads (0: torch's default)")
  p.add_argument('--set', action='append', metavar='KEY=VALUE',
                 help='override a config field of the jaxgan step (the torch peer then is '
                      'no peer: it is left out)')
  p.add_argument('--no-torch', action='store_true', help='profile jaxgan only')
  p.add_argument('--torch-ref', default=str(step_speed.DEFAULT_TORCH_REF))
  p.add_argument('--xla-flags', default='', help='appended to XLA_FLAGS before jax starts')
  p.add_argument('--top', type=int, default=15, help='operations listed per side')
  p.add_argument('--out', default=str(step_speed.REPO / 'benchmarks' / 'results'),
                 help="directory for the JSON and markdown ('' : print only)")
  args = p.parse_args(argv)
  if args.steps < 1:
    sys.exit('profile_step.py: --steps must be at least 1')
  step_speed.setup_environment(args)
  import jax  # pylint: disable=g-import-not-at-top

  case = step_speed.CASES[args.case]
  report: dict[str, Any] = {
      'case': args.case, 'device': step_speed.device_name(jax), 'jax': jax.__version__,
      'date': datetime.datetime.now().strftime('%Y-%m-%d %H:%M'),
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'command': 'python benchmarks/profile_step.py ' + ' '.join(argv if argv is not None else sys.argv[1:])}
  print(f'profiling jaxgan {args.case} ({args.steps} steps)...', file=sys.stderr, flush=True)
  overrides = step_speed.parse_overrides(args.set)
  report['overrides'] = overrides
  report['jaxgan'] = profile_jax(case, args.steps, args.dtype, overrides)
  ref = pathlib.Path(args.torch_ref)
  report['torch'] = None
  if args.no_torch:
    report['torch_note'] = 'not run (--no-torch)'
  elif overrides:
    report['torch_note'] = 'not run: --set changed the jaxgan step, torch_reference.py has no such case'
  elif not case.get('torch_case'):
    report['torch_note'] = 'no peer in torch_reference.py'
  elif not step_speed.torch_available():
    report['torch_note'] = 'torch is not installed'
  elif not ref.is_file():
    report['torch_note'] = f'{ref} not found'
  else:
    print(f'profiling torch eager {case["torch_case"]} ({args.steps} steps)...', file=sys.stderr, flush=True)
    report['torch'] = profile_torch(ref, case['torch_case'], args.steps, args.threads)
  step_speed.publish_report(args.out, step_speed.device_slug(jax), 'profile', args.case,
                            report, markdown(report, args.top))
  return report


if __name__ == '__main__':
  main()
