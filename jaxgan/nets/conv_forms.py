"""The array-level pieces of the convolutions in `conv_ops`, as pure lax functions.

conv_ops builds from these the implementations that `conv_impl` selects, their custom
VJPs and the dispatch the layers call. What is here does not depend on that choice and
imports nothing from conv_ops: padding arithmetic, im2col, the matmul and XLA forward
forms of a convolution, the `dot` every matmul goes through (its custom VJP keeps
bfloat16 gradients bfloat16 on CPU), and the sub-pixel geometry of a strided 'SAME'
transposed convolution together with its col2im form (`overlap_add_conv_transpose`).

The sub-pixel decomposition (`phase_taps`): `lax.conv_transpose` with stride s dilates
the input by s, pads it by `pad_a` before, and correlates with the kernel w. Output
pixel o = s*m + a (phase a) reads input pixel i = m + d through kernel tap
k = s*d + pad_a - a, for every integer d that puts k inside [0, K). So each phase is a
small stride-1 correlation over the undilated input with taps d = d0(a) .. d0(a) + T - 1.
All phases are computed by one convolution whose output channels are (phase_y, phase_x,
feature); phase a's result is the window of that output starting at d0(a) - min_a d0(a).
When K is a multiple of s (4x4 stride 2, as in every DCGAN here) every phase has exactly
K/s taps, so the convolution does the same multiply-adds as the transposed one, with no
zero taps (a 3x3 sub-pixel form would do 2.25x as many).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

Padding = Union[str, int, Sequence[Union[int, tuple[int, int]]]]


_DN = ('NHWC', 'HWIO', 'NHWC')


def pair(v: Union[int, Sequence[int]]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def same_pad_a(kernel: int, stride: int) -> int:
  """Offset pad_a of lax.conv_transpose(..., 'SAME'): the dilated input is padded by
  pad_a before (see the module docstring)."""
  return kernel - 1 if stride > kernel - 1 else int(np.ceil((kernel + stride - 2) / 2))


def conv_padding(padding: Padding, in_hw: Sequence[int], kernel_hw: Sequence[int],
                 strides: Sequence[int]) -> tuple[tuple[int, int], tuple[int, int]]:
  """Explicit ((top, bottom), (left, right)) padding, as lax / flax.linen.Conv define it.

  'SAME': output = ceil(input / stride), total padding max((out-1)*s + k - in, 0) split
  with the smaller half first; 'VALID': none; an int or a pair per dim: explicit.
  """
  if isinstance(padding, str):
    if padding.upper() == 'VALID':
      return ((0, 0), (0, 0))
    if padding.upper() != 'SAME':
      raise ValueError(f"padding must be 'SAME', 'VALID' or explicit, got {padding!r}")
    pads = []
    for n, k, s in zip(in_hw, kernel_hw, strides):
      total = max((-(-n // s) - 1) * s + k - n, 0)
      pads.append((total // 2, total - total // 2))
    return tuple(pads)
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  pads = tuple((p, p) if isinstance(p, int) else (int(p[0]), int(p[1])) for p in padding)
  if len(pads) != 2:
    raise ValueError(f'padding needs one entry per spatial dim (2), got {padding!r}')
  return pads


def im2col(x: jax.Array, kernel_hw: Sequence[int], strides: Sequence[int],
           pads: Sequence[tuple[int, int]]) -> jax.Array:
  """Patches: x [N, H, W, C] -> [N, Ho, Wo, kh * kw * C], channels ordered (i, j, c).

  Row (n, oh, ow) holds x_padded[n, sh*oh + i, sw*ow + j, c] for every tap (i, j), the
  order of kernel.reshape(kh * kw * C, C_out) for an HWIO kernel.
  """
  kh, kw = kernel_hw
  sh, sw = strides
  n, h, w, c = x.shape
  ho = (h + pads[0][0] + pads[0][1] - kh) // sh + 1
  wo = (w + pads[1][0] + pads[1][1] - kw) // sw + 1
  # Pad (or crop) the far side so the padded size is exactly s * (o + ceil(k/s) - 1):
  # then x reshapes to [N, rows, s, cols, s, C] and tap i = s*q + r of output oh is
  # element [oh + q, r] -- every tap becomes a *contiguous* slice, no strided reads
  # (strided slices concatenated along channels ran ~1.5-2x slower in XLA:CPU).
  qh, qw = -(-kh // sh), -(-kw // sw)
  hp, wp = sh * (ho + qh - 1), sw * (wo + qw - 1)
  x = jax.lax.pad(x, jnp.zeros((), x.dtype),
                  ((0, 0, 0), (pads[0][0], hp - h - pads[0][0], 0),
                   (pads[1][0], wp - w - pads[1][0], 0), (0, 0, 0)))
  if sh == 1 and sw == 1:
    cols = [x[:, i:i + ho, j:j + wo, :] for i in range(kh) for j in range(kw)]
    return jnp.concatenate(cols, axis=-1)
  xr = x.reshape(n, hp // sh, sh, wp // sw, sw, c)
  # [qh, qw, N, Ho, sh, Wo, sw, C]: block (q_i, q_j) of taps, all residues r at once.
  blocks = jnp.stack([jnp.stack([xr[:, a:a + ho, :, b:b + wo, :, :] for b in range(qw)])
                      for a in range(qh)])
  cols = jnp.transpose(blocks, (2, 3, 5, 0, 4, 1, 6, 7))  # [N, Ho, Wo, qh, sh, qw, sw, C]
  cols = cols.reshape(n, ho, wo, qh * sh, qw * sw, c)
  if qh * sh != kh or qw * sw != kw:  # K not a multiple of s: drop the taps past K
    cols = cols[:, :, :, :kh, :kw, :]
  return cols.reshape(n, ho, wo, kh * kw * c)


def dot(a: jax.Array, b: jax.Array, dims, precision: Any = None) -> jax.Array:
  """lax.dot_general; on CPU, low-precision floats (bfloat16) accumulate in float32.

  Why: XLA:CPU multiplies bfloat16 matrices into a bfloat16 result ~5x slower than
  into a float32 one (AMX path: [6400, 1024] @ [1024, 512] 53 ms vs 11 ms); the result
  is cast back to the inputs' dtype, and the gradients are the same kind of product
  (`_lowp_dot`'s VJP). On accelerators a plain bfloat16 dot_general already accumulates
  in float32 inside the matmul unit, and its autodiff stays bfloat16, so it is used
  as is (resolved at trace time, like conv_ops.resolve_conv_impl). Signature of
  lax.dot_general, so it also serves as `nn.Dense(dot_general=...)` (layers.dense).
  """
  if jnp.finfo(a.dtype).bits < 32 and jax.default_backend() == 'cpu':
    # Hashable dimension numbers: they are a static (nondiff) argument of the VJP.
    dims = tuple(tuple(tuple(int(i) for i in axes) for axes in pair) for pair in dims)
    return _lowp_dot(a, b.astype(a.dtype), dims, precision)
  return jax.lax.dot_general(a, b, dims, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _lowp_dot(a: jax.Array, b: jax.Array, dims, precision: Any) -> jax.Array:
  """dot_general of low-precision a, b with float32 accumulation, cast back to a's dtype.

  A custom VJP because JAX's own transpose of this product multiplies the float32
  cotangent with the bfloat16 operand: mixed operands, which XLA runs as a float32
  matmul (both gradient matmuls, two thirds of the FLOPs, then lose the bf16 speed).
  Here the cotangent is rounded to the operands' dtype and both gradients are again
  low-precision products accumulated in float32.
  """
  (a_c, b_c), (a_b, b_b) = dims
  a_m, a_free = _as_matrix(a, a_b, a_c, k_first=False)   # [(B,) M, K]
  b_m, b_free = _as_matrix(b, b_b, b_c, k_first=True)    # [(B,) K, N]
  nb = 1 if a_b else 0
  dims = (((nb + 1,), (nb,)), ((0,), (0,)) if a_b else ((), ()))
  y = jax.lax.dot_general(a_m, b_m, dims, precision=precision, preferred_element_type=jnp.float32)
  batch_shape = tuple(a.shape[d] for d in a_b)
  return y.reshape(batch_shape + a_free + b_free).astype(a.dtype)


def _as_matrix(x: jax.Array, batch, contract, k_first: bool) -> tuple[jax.Array, tuple[int, ...]]:
  """x as [(B,) M, K] (k_first False) or [(B,) K, M] for a dot_general over `contract`
  with batch dims `batch` -> (matrix, the free dims' shape).

  Why: XLA:CPU runs a bfloat16 x bfloat16 -> float32 dot on its bfloat16 kernels
  (YNNPACK) only when both operands end up row-major, [M, K] @ [K, N]; any other dot
  it converts to float32 first (a float32 matmul, ~3x slower than bf16 on this AMX
  CPU). A multi-dimensional dot is worse: it is checked before XLA flattens it and
  then reaches the runtime unconverted ("Unsupported element type for
  DotThunk::Execute: BF16 x BF16 = F32", e.g. [6, 5] x [4, 3, 2, 6] over one axis).
  So every low-precision product is handed to XLA in the plain form, with an explicit
  transpose where the operand's layout differs: the weight gradients (cols^T @ dy)
  then run in bf16. (The input gradients dy @ W^T still run in float32: XLA's
  simplifier folds the explicit transpose of W back into the dot as a column-major
  rhs, which that check rejects; an optimization_barrier around it did not help.)
  """
  free = [d for d in range(x.ndim) if d not in contract and d not in batch]
  order = list(batch) + (list(contract) + free if k_first else free + list(contract))
  if order != list(range(x.ndim)):
    x = jnp.transpose(x, order)
  size = lambda dims: int(np.prod([x.shape[order.index(d)] for d in dims], dtype=np.int64))
  mk = (size(contract), size(free)) if k_first else (size(free), size(contract))
  lead = (size(batch),) if batch else ()
  return x.reshape(lead + mk), tuple(x.shape[order.index(d)] for d in free)


def _lowp_dot_fwd(a, b, dims, precision):
  return _lowp_dot(a, b, dims, precision), (a, b)


def _operand_grad(g: jax.Array, other: jax.Array, dims, precision: Any, lhs: bool,
                  ndim: int) -> jax.Array:
  """d<dot_general(a, b, dims), g> / d(a if lhs else b), as one product of g and the
  other operand. The output of dot_general is laid out [batch, a_free, b_free]; the
  product below gives [batch, own_free, other's contracted dims (ascending)], which a
  transpose puts back into the operand's own layout."""
  (a_c, b_c), (a_b, b_b) = dims
  own_c, oth_c, own_b, oth_b = (a_c, b_c, a_b, b_b) if lhs else (b_c, a_c, b_b, a_b)
  nb = len(a_b)
  own_free = [d for d in range(ndim) if d not in own_c and d not in own_b]
  oth_free = [d for d in range(other.ndim) if d not in oth_c and d not in oth_b]
  # g's axes: batch, then lhs free, then rhs free.
  lhs_free_n = len(own_free) if lhs else len(oth_free)
  g_oth = (tuple(range(nb + lhs_free_n, g.ndim)) if lhs
           else tuple(range(nb, nb + lhs_free_n)))
  out = dot(g, other, ((g_oth, tuple(oth_free)), (tuple(range(nb)), tuple(oth_b))), precision)
  # out's axes: batch (own_b order), own_free, then other's contracted dims in ascending
  # order -- each paired with the own dim it was contracted with.
  src = list(own_b) + own_free + [own_c[list(oth_c).index(d)] for d in sorted(oth_c)]
  return jnp.transpose(out, [src.index(d) for d in range(ndim)])


def _lowp_dot_bwd(dims, precision, res, g):
  a, b = res
  g = g.astype(a.dtype)
  return (_operand_grad(g, b, dims, precision, True, a.ndim),
          _operand_grad(g, a, dims, precision, False, b.ndim))


_lowp_dot.defvjp(_lowp_dot_fwd, _lowp_dot_bwd)


def matmul_conv_plain(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                      pads: tuple[tuple[int, int], tuple[int, int]], precision: Any) -> jax.Array:
  """im2col + one matmul: [N*Ho*Wo, kh*kw*C_in] @ [kh*kw*C_in, C_out] (JAX's autodiff)."""
  kh, kw, c_in, c_out = kernel.shape
  return dot(patches(x, kernel.shape, strides, pads), kernel.reshape(kh * kw * c_in, c_out),
              (((3,), (0,)), ((), ())), precision)


def patches(x, kernel_shape, strides, pads):
  """im2col of x for the kernel, or x itself where a 1x1 stride-1 unpadded kernel needs no copy."""
  kh, kw = kernel_shape[:2]
  if (kh, kw) == (1, 1) and strides == (1, 1) and pads == ((0, 0), (0, 0)):
    return x
  return im2col(x, (kh, kw), strides, pads)


def xla_conv(x, kernel, strides, pads, precision):
  """XLA's convolution of NHWC x with an HWIO kernel, explicit padding."""
  return jax.lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=_DN,
                                      precision=precision)


@functools.lru_cache(maxsize=None)
def phase_taps(kernel: int, stride: int) -> tuple[int, tuple[int, ...], tuple[tuple[int, ...], ...]]:
  """Per-phase taps of a 1-D 'SAME' transposed convolution.

  Returns (T, d0, k_index): T taps per phase (phases with fewer are zero-padded),
  d0[a] the input offset of phase a's first tap, and k_index[a][j] the kernel index
  of phase a's tap j, or -1 for a zero tap.
  """
  pad_a = same_pad_a(kernel, stride)
  taps = []
  for a in range(stride):
    ds = [d for d in range(-kernel, kernel + 1) if 0 <= stride * d + pad_a - a < kernel]
    taps.append(ds)
  num_taps = max(len(ds) for ds in taps)
  d0 = tuple(ds[0] for ds in taps)
  k_index = tuple(
      tuple(stride * (d0[a] + j) + pad_a - a if (d0[a] + j) in taps[a] else -1
            for j in range(num_taps))
      for a in range(stride))
  return num_taps, d0, k_index


def subpixel_kernel(kernel: jax.Array, stride: int) -> jax.Array:
  """Rearranges a ConvTranspose kernel [K, K, C_in, C_out] into the sub-pixel form.

  Returns [T, T, C_in, s * s * C_out], output channels ordered (phase_y, phase_x, c).
  """
  k = kernel.shape[0]
  num_taps, _, k_index = phase_taps(k, stride)
  # Gather with index K pointing at an appended zero tap, so missing taps are zeros.
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  idx = np.array([[ki if ki >= 0 else k for ki in row] for row in k_index])  # [s, T]
  # g[a, j, b, l] = padded[idx[a, j], idx[b, l]]
  g = padded[idx[:, :, None, None], idx[None, None, :, :]]  # [s, T, s, T, Cin, Cout]
  g = jnp.transpose(g, (1, 3, 4, 0, 2, 5))                   # [T, T, Cin, s, s, Cout]
  return g.reshape(num_taps, num_taps, kernel.shape[2], stride * stride * kernel.shape[3])


def subpixel_padding(kernel: int, stride: int) -> tuple[int, int]:
  """Padding (lo, hi) of the sub-pixel form's stride-1 convolution."""
  num_taps, d0, _ = phase_taps(kernel, stride)
  return max(0, -min(d0)), max(d + num_taps - 1 for d in d0)


def phases_to_space(u: jax.Array, h: int, w: int, kernel: int, stride: int) -> jax.Array:
  """Sub-pixel output u [N, Hu, Wu, s*s*C] -> [N, s*H, s*W, C]: crop each phase's
  H x W window (it starts at d0(phase) + lo) and interleave the phases."""
  n, c = u.shape[0], u.shape[3] // (stride * stride)
  _, d0, _ = phase_taps(kernel, stride)
  lo, _ = subpixel_padding(kernel, stride)
  u = u.reshape(n, u.shape[1], u.shape[2], stride, stride, c)
  rows = []
  for a in range(stride):
    oy = d0[a] + lo
    cols = [u[:, oy:oy + h, d0[b] + lo:d0[b] + lo + w, a, b, :] for b in range(stride)]
    rows.append(jnp.stack(cols, axis=3))          # [N, H, W, s_x, C]
  y = jnp.stack(rows, axis=2)                     # [N, H, s_y, W, s_x, C]
  return y.reshape(n, h * stride, w * stride, c)


def overlap_add_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int,
                               precision: Any = None) -> jax.Array:
  """The same transposed convolution as `subpixel_conv_transpose`, in col2im form.

  One matmul gives every input pixel's contribution through every kernel tap,
  P = x [N*H*W, C_in] @ kernel [C_in, K*K*C_out]; output phase (a, b) then sums, for its
  taps (phase_taps), the slices of P shifted by the taps' input offsets. It does
  exactly the transposed convolution's multiply-adds and materialises K*K*C_out values
  per input pixel (the sub-pixel im2col: T*T*C_in per pixel, plus its zero taps), so it
  is the cheaper matmul form when C_out is small (the last, 1- or 3-channel layer).
  """
  n, h, w, c_in = x.shape
  k, c_out = kernel.shape[0], kernel.shape[3]
  num_taps, d0, k_index = phase_taps(k, stride)
  wmat = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(c_in, k * k * c_out)
  p = dot(x, wmat.astype(x.dtype), (((3,), (0,)), ((), ())),
           precision).reshape(n, h, w, k, k, c_out)
  lo = max(0, -min(d0))
  hi = max(0, max(d + num_taps - 1 for d in d0))
  p = jnp.pad(p, ((0, 0), (lo, hi), (lo, hi), (0, 0), (0, 0), (0, 0)))
  rows = []
  for a in range(stride):
    cols = []
    for b in range(stride):
      acc = None
      for j, ky in enumerate(k_index[a]):
        for l, kx in enumerate(k_index[b]):
          if ky < 0 or kx < 0:  # a zero tap of a short phase
            continue
          oy, ox = lo + d0[a] + j, lo + d0[b] + l
          term = p[:, oy:oy + h, ox:ox + w, ky, kx, :]
          acc = term if acc is None else acc + term
      cols.append(acc)
    rows.append(jnp.stack(cols, axis=3))          # [N, H, W, s_x, C]
  y = jnp.stack(rows, axis=2)                     # [N, H, s_y, W, s_x, C]
  return y.reshape(n, h * stride, w * stride, c_out)


def phase_pads(kernel: int, stride: int) -> tuple[tuple[int, int], ...]:
  """Per phase a, the padding (lo, hi) of x that gives phase a's stride-1 correlation
  (taps d0(a) .. d0(a) + T - 1) exactly the input's size: lo = -d0(a), hi = d0(a) + T - 1.
  A negative entry crops x instead."""
  num_taps, d0, _ = phase_taps(kernel, stride)
  return tuple((-d, d + num_taps - 1) for d in d0)


def _pad_or_crop(x: jax.Array, pads_h: tuple[int, int], pads_w: tuple[int, int]):
  """x with its negative paddings applied as crops, and the non-negative rest."""
  crop = lambda p: max(0, -p)
  h, w = x.shape[1], x.shape[2]
  x = x[:, crop(pads_h[0]):h - crop(pads_h[1]), crop(pads_w[0]):w - crop(pads_w[1])]
  keep = lambda p: (max(0, p[0]), max(0, p[1]))
  return x, (keep(pads_h), keep(pads_w))


def phase_kernels(kernel: jax.Array, stride: int) -> jax.Array:
  """The sub-pixel kernel per phase: [T, T, C_in, s, s, C_out]; [..., a, b, :] is phase
  (a, b)'s stride-1 kernel."""
  sub = subpixel_kernel(kernel, stride)
  return sub.reshape(sub.shape[:3] + (stride, stride, kernel.shape[3]))


def interleave_phases(phases: Sequence[Sequence[jax.Array]]) -> jax.Array:
  """phases[a][b] [N, H, W, C] (output pixels (s*m + a, s*n + b)) -> [N, s*H, s*W, C]."""
  s = len(phases)
  n, h, w, c = phases[0][0].shape
  y = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)   # [N, H, s, W, s, C]
  return y.reshape(n, s * h, s * w, c)


def phase_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int, precision: Any = None,
                         conv=None) -> jax.Array:
  """The 'SAME' transposed convolution as s*s stride-1 correlations, one per output
  phase, each of exactly the input's H x W outputs.

  Equal to `subpixel_conv_transpose` and lax.conv_transpose; where that form runs one
  convolution of (H + lo + hi - T + 1)^2 outputs for all phases and crops each phase's
  H x W window (8 x 8 per phase for a 7 x 7 input: 1.31x the multiply-adds), this one
  computes only the H x W each phase keeps. `conv(x, kernel, pads)` runs each
  correlation (default: XLA's convolution).
  """
  conv = conv or (lambda x, k, pads: xla_conv(x, k, (1, 1), pads, precision))
  kp = phase_kernels(kernel, stride).astype(x.dtype)
  pads = phase_pads(kernel.shape[0], stride)
  rows = []
  for a in range(stride):
    row = []
    for b in range(stride):
      xc, p = _pad_or_crop(x, pads[a], pads[b])
      row.append(conv(xc, kp[:, :, :, a, b, :], p))
    rows.append(row)
  return interleave_phases(rows)

