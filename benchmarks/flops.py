"""FLOPs of a compiled step (XLA's cost analysis) and the machine's measured matmul peak.

Used by step_speed.py and run.py to put a step's speed next to what the hardware can do:
achieved FLOP/s = step FLOPs / step time, as a percentage of the best float32 (or
bfloat16) matmul rate measured in the same run.

Why the scans are unrolled: XLA's cost analysis counts the body of a while loop once,
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
try:  # internal jaxpr types: only the scan unrolling needs them (step_flops falls back)
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


def step_flops(fn: Callable, compiled: Any, args: tuple) -> tuple[float | None, str]:
  """(FLOPs of one call of fn(*args), how they were counted).

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
