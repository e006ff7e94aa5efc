r"""The MNIST generator's first transposed convolution, piece by piece, against PyTorch.

  python benchmarks/upconv_grads.py [--batch 100] [--reps 7] [--threads 2]

G UpConv_0 ([N, 7, 7, 256] -> [N, 14, 14, 128], 4x4 stride 2) is the largest layer of
the MNIST step's profile (docs/performance.md). This times, best of --reps, each part
of jaxgan's default ('hybrid') gradient on its own: the whole VJP (input and weight
gradients), the input gradient (a strided convolution of g), the weight gradient (the
sub-pixel im2col^T @ du), du alone (g in the sub-pixel layout), and the bare matmul of
the weight gradient's shape; then PyTorch's ConvTranspose2d of the same shape, forward
and forward + both gradients, with --threads threads (when torch is installed).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import step_speed


def best_ms(fn, *args, reps: int) -> float:
  fn(*args)
  best = float('inf')
  for _ in range(reps):
    t = time.perf_counter()
    fn(*args)
    best = min(best, time.perf_counter() - t)
  return round(best * 1e3, 1)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--batch', type=int, default=100)
  p.add_argument('--reps', type=int, default=7)
  p.add_argument('--threads', type=int, default=2, help='torch threads')
  args = p.parse_args(argv)
  args.xla_flags = ''
  step_speed.setup_environment(args)
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jaxgan.nets import conv_forms, conv_ops, layers  # pylint: disable=g-import-not-at-top

  n, rng = args.batch, np.random.RandomState(0)
  x = jnp.asarray(rng.randn(n, 7, 7, 256), jnp.float32)
  k = jnp.asarray(rng.randn(4, 4, 256, 128) * 0.02, jnp.float32)
  g = jnp.asarray(rng.randn(n, 14, 14, 128), jnp.float32)
  taps = conv_forms.phase_taps(4, 2)[0]
  lo, hi = conv_forms.subpixel_padding(4, 2)
  side = 7 + lo + hi - taps + 1
  u_shape = jax.ShapeDtypeStruct((n, side, side, 4 * 128), jnp.float32)
  to_space = lambda u: conv_forms.phases_to_space(u, 7, 7, 4, 2)
  a = jnp.asarray(rng.randn(n * side * side, taps * taps * 256), jnp.float32)
  b = jnp.asarray(rng.randn(n * side * side, 4 * 128), jnp.float32)
  run = lambda f: (lambda *xs: jax.block_until_ready(f(*xs)))
  jit = lambda f: run(jax.jit(f))
  out = {'batch': n, 'jaxgan_ms': {
      'vjp (dx and dw)': best_ms(jit(lambda x, k, g: jax.vjp(
          lambda x, k: conv_ops.conv_transpose(x, k, 2, impl='hybrid'), x, k)[1](g)), x, k, g, reps=args.reps),
      'dx: strided convolution of g': best_ms(jit(
          lambda g, k: conv_ops.conv_transpose_input_grad(g, k, 2)), g, k, reps=args.reps),
      'dw: sub-pixel im2col^T @ du': best_ms(jit(
          lambda x, g: conv_ops.subpixel_weight_grad(x, g, k.shape, 2)), x, g, reps=args.reps),
      'du alone': best_ms(jit(lambda g: jax.linear_transpose(to_space, u_shape)(g)[0]), g,
                          reps=args.reps),
      f'bare matmul {list(a.shape)}^T @ {list(b.shape)}': best_ms(
          jit(lambda a, b: a.T @ b), a, b, reps=args.reps)}}
  if step_speed.torch_available():
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(args.threads)
    conv = torch.nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False)
    tx = torch.randn(n, 256, 7, 7, requires_grad=True)
    tg = torch.randn(n, 128, 14, 14)
    grads = lambda: torch.autograd.grad(conv(tx), (tx, conv.weight), tg)
    out['torch_ms'] = {'forward': best_ms(lambda: conv(tx), reps=args.reps),
                       'forward + dx + dw': best_ms(grads, reps=args.reps)}
    out['torch_threads'] = args.threads
  for side_name in ('jaxgan_ms', 'torch_ms'):
    for name, ms in out.get(side_name, {}).items():
      print(f'{side_name[:-3]:7s} {name:45s} {ms:8.1f} ms', file=sys.stderr)
  print(json.dumps(out))
  return out


if __name__ == '__main__':
  main()
