"""FLOPs of a step, counted from its program, and the machine's measured matmul peak.

Used by step_speed.py and run.py to put a step's speed next to what the hardware can do:
achieved FLOP/s = step FLOPs / step time, as a percentage of the best float32 (or
bfloat16) matmul rate measured in the same run. The step's FLOPs come from its jaxpr
(`program_flops`), the same count on every backend; XLA's cost analysis (`xla_flops`)
is kept to check it on CPU, the one backend where it counts convolutions.

Why `xla_flops` unrolls scans: XLA's cost analysis counts the body of a while loop once,
whatever its trip count (a 5-step lax.scan of a matmul reports the FLOPs of one
matmul), and jaxgan's step runs its n_disc critic updates and n_gen generator updates
as lax.scan loops. For a step with a scan longer than one iteration the FLOPs are
taken from a second compilation of the same program with every scan fully unrolled
(the jaxpr's scan equations re-bound with unroll = length), which XLA then counts
exactly. That compilation is for counting only; the timed step is the real one.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
try:  # internal jaxpr types: the jaxpr walk and xla_flops' scan unrolling need them
  from jax.extend import core as jcore
except ImportError:  # pragma: no cover  (a jax without jax.extend.core)
  jcore = None

LOOP_PRIMITIVES = ('scan', 'while')


def cost_flops(compiled: Any) -> float | None:
  """FLOPs from `compiled.cost_analysis()`, or None where the backend gives none.

  jax has returned a dict (0.4.30+) and a list with one dict per program (older
  versions); both are accepted.
  """
  try:
    ca = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(ca, (list, tuple)):
    ca = ca[0] if ca else None
  if not ca or 'flops' not in ca:
    return None
  return float(ca['flops'])


def _loops(jaxpr) -> list[tuple[str, int]]:
  """(primitive, trip count or -1) of every loop in jaxpr and its sub-jaxprs."""
  out = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'scan':
      out.append(('scan', int(eqn.params['length'])))
    elif eqn.primitive.name == 'while':
      out.append(('while', -1))
    for sub in jcore.jaxprs_in_params(eqn.params):
      out.extend(_loops(sub))
  return out


def _unrolled(jaxpr):
  """The same jaxpr with every scan fully unrolled (recursively)."""
  eqns = []
  for eqn in jaxpr.eqns:
    params = {k: _unrolled_param(v) for k, v in eqn.params.items()}
    if eqn.primitive.name == 'scan':
      params['unroll'] = max(int(params['length']), 1)
    eqns.append(eqn.replace(params=params))
  return jaxpr.replace(eqns=eqns)


def _unrolled_param(value):
  if isinstance(value, jcore.ClosedJaxpr):
    return value.replace(jaxpr=_unrolled(value.jaxpr))
  if isinstance(value, jcore.Jaxpr):
    return _unrolled(value)
  if isinstance(value, tuple) and any(isinstance(v, (jcore.ClosedJaxpr, jcore.Jaxpr))
                                      for v in value):
    return tuple(_unrolled_param(v) for v in value)
  return value


def xla_flops(fn: Callable, compiled: Any, args: tuple) -> tuple[float | None, str]:
  """(FLOPs of one call of fn(*args) by XLA's cost analysis, how they were counted): the
  cross-check of `program_flops` on CPU (tests/test_benchmarks.py).

  fn is the jitted step, compiled its compiled form for args. Loop-free programs and
  programs whose scans all run once are counted from `compiled` directly; otherwise
  from an unrolled recompilation (module docstring). A `while` loop with a data-
  dependent trip count cannot be unrolled: its body is then counted once, and the
  source says so.
  """
  flops = cost_flops(compiled)
  if flops is None:
    return None, 'unavailable (no cost analysis on this backend)'
  try:
    return _counted(fn, flops, args)
  except Exception as e:  # pylint: disable=broad-except
    # The unrolling walks jax's internal jaxpr types, which change between versions:
    # keep the (lower-bound) count rather than lose the step's timing.
    return flops, (f'xla cost analysis (scan unrolling failed: {type(e).__name__}; '
                   'loop bodies counted once: a lower bound)')


def _counted(fn: Callable, flops: float, args: tuple) -> tuple[float, str]:
  closed = jax.make_jaxpr(fn)(*args)
  loops = _loops(closed.jaxpr)
  if not any(kind == 'while' or n > 1 for kind, n in loops):
    return flops, 'xla cost analysis'
  if any(kind == 'while' for kind, _ in loops):
    return flops, 'xla cost analysis (while-loop bodies counted once: a lower bound)'
  specs = [jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(args)]
  unrolled = closed.replace(jaxpr=_unrolled(closed.jaxpr))
  c2 = jax.jit(jcore.jaxpr_as_fun(unrolled)).lower(*specs).compile()
  counted = cost_flops(c2)
  if counted is None:
    return flops, 'xla cost analysis (scan bodies counted once: a lower bound)'
  return counted, 'xla cost analysis (scans unrolled)'


# --- FLOPs from the program ---------------------------------------------------------
# XLA's cost analysis depends on the backend: on a GPU the convolutions that become
# cuDNN custom calls count nothing, which once put DCGAN-64 at 4.46 GFLOP a step. The
# count below reads the jaxpr instead, the same on every backend, by XLA's CPU
# conventions: 2 x the multiply-adds of every conv_general_dilated and dot_general (a
# convolution's taps counted only where the window reads real input, not padding or the
# holes of an input dilation), one FLOP an element of elementwise arithmetic and of a
# reduction's input, each scan's body times its trip count.
#
# Which program: a step's FLOPs are the model's, counted on the step with XLA's own
# convolutions (model.conv_impl=xla, upconv_impl=transpose; `canonical_overrides`).
# The CPU's im2col and sub-pixel forms multiply zero padding too (1.2-1.3x the
# multiply-adds), which XLA partly simplifies away; counting the model instead gives the
# same number on every backend and for every form, the useful work a step does.
CANONICAL_OVERRIDES = {'model.conv_impl': 'xla', 'model.upconv_impl': 'transpose'}
ELEMENTWISE = frozenset({
    'add', 'add_any', 'sub', 'mul', 'div', 'neg', 'max', 'min', 'abs', 'sign', 'square',
    'integer_pow', 'pow', 'sqrt', 'rsqrt', 'exp', 'exp2', 'log', 'log1p', 'tanh',
    'logistic', 'erf', 'erf_inv', 'select_n', 'eq', 'ne', 'gt', 'ge', 'lt', 'le', 'clamp'})
REDUCTIONS = frozenset({'reduce_sum', 'reduce_max', 'reduce_min', 'argmax', 'argmin'})


def _conv_taps(in_size: int, window: int, stride: int, pad: tuple[int, int],
               lhs_dil: int, rhs_dil: int, out_size: int) -> int:
  """(output position, window tap) pairs of one spatial axis that read an input value."""
  span = (in_size - 1) * lhs_dil  # last position of the dilated input
  count = 0
  for o in range(out_size):
    for k in range(window):
      p = o * stride + k * rhs_dil - pad[0]
      count += 0 <= p <= span and p % lhs_dil == 0
  return count


def conv_flops(eqn) -> float:
  """2 x multiply-adds of a conv_general_dilated equation."""
  prm = eqn.params
  lhs, rhs = (v.aval.shape for v in eqn.invars[:2])
  out = eqn.outvars[0].aval.shape
  dn = prm['dimension_numbers']
  lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
  macs = out[out_spec[0]] * out[out_spec[1]] * rhs[rhs_spec[1]]  # batch x out feat x in feat/group
  nsp = len(lhs_spec) - 2
  for d in range(nsp):
    macs *= _conv_taps(lhs[lhs_spec[2 + d]], rhs[rhs_spec[2 + d]], prm['window_strides'][d],
                       tuple(prm['padding'][d]), (prm['lhs_dilation'] or (1,) * nsp)[d],
                       (prm['rhs_dilation'] or (1,) * nsp)[d], out[out_spec[2 + d]])
  return 2.0 * macs


def dot_flops(eqn) -> float:
  """2 x multiply-adds of a dot_general equation: each output element sums over the
  contracting axes."""
  (contract, _), _ = eqn.params['dimension_numbers']
  lhs = eqn.invars[0].aval.shape
  k = 1
  for axis in contract:
    k *= lhs[axis]
  n_out = 1
  for size in eqn.outvars[0].aval.shape:
    n_out *= size
  return 2.0 * n_out * k


def _size(var) -> int:
  n = 1
  for d in getattr(var.aval, 'shape', ()):
    n *= d
  return n


def jaxpr_flops(jaxpr) -> tuple[float, bool]:
  """(FLOPs of the jaxpr, whether a while loop's body was counted once)."""
  total, approx = 0.0, False
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'conv_general_dilated':
      total += conv_flops(eqn)
    elif name == 'dot_general':
      total += dot_flops(eqn)
    elif name in ELEMENTWISE:
      total += _size(eqn.outvars[0])
    elif name in REDUCTIONS:
      total += _size(eqn.invars[0])
    subs = list(jcore.jaxprs_in_params(eqn.params))
    if name == 'cond':  # one branch runs: count the dearest
      counts = [jaxpr_flops(sub) for sub in subs]
      total += max(c for c, _ in counts)
      approx = approx or any(a for _, a in counts)
      continue
    times = int(eqn.params['length']) if name == 'scan' else 1
    approx = approx or name == 'while'
    for sub in subs:
      count, a = jaxpr_flops(sub)
      total += times * count
      approx = approx or a
  return total, approx


def program_flops(fn: Callable, args: tuple) -> tuple[float, str]:
  """(FLOPs of one call of fn(*args) from its jaxpr, how they were counted)."""
  count, approx = jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)
  return count, 'jaxpr' + (' (while-loop bodies counted once)' if approx else '')


class MatmulPeak:
  """Best-of-`reps` rate of an n x n x n matmul in `dtype` on the default device.

  float32 runs at the backend's default precision (TF32 on NVIDIA GPUs, as the
  benchmarked steps do); bfloat16 multiplies bf16 inputs into a float32 result, the
  form jaxgan's layers use (nets/layers.py `_dot`). Call `measure()` between the
  benchmark's timed blocks; `.best` keeps the highest rate seen (a peak is a maximum).
  """

  def __init__(self, dtype: str = 'float32', n: int | None = None, reps: int = 5):
    if n is None:  # big enough to be compute-bound; 2048^3 already takes ~0.1 s on CPU
      n = 2048 if jax.default_backend() == 'cpu' else 8192
    self.n, self.reps, self.dtype = n, reps, dtype
    dt = jnp.bfloat16 if dtype == 'bfloat16' else jnp.float32
    k1, k2 = jax.random.split(jax.random.key(0))
    self.a = jax.random.normal(k1, (n, n), dt)
    self.b = jax.random.normal(k2, (n, n), dt)
    self.fn = jax.jit(lambda a, b: jax.lax.dot_general(
        a, b, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32))
    jax.block_until_ready(self.fn(self.a, self.b))  # compile and warm up
    self.best = 0.0

  def measure(self) -> float:
    """Runs `reps` matmuls; returns the best GFLOP/s seen so far."""
    for _ in range(self.reps):
      t = time.perf_counter()
      jax.block_until_ready(self.fn(self.a, self.b))
      self.best = max(self.best, 2.0 * self.n ** 3 / (time.perf_counter() - t) / 1e9)
    return self.best
