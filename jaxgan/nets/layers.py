"""Layers shared by the generators and discriminators.

Convolutions (`conv2d`, `Conv`, `UpConv`) have two implementations, picked by
`conv_impl`:

  'xla'     lax.conv_general_dilated, XLA's own convolution.
  'matmul'  im2col + one matrix multiply (the patches of every output pixel are
            gathered into a row, rows @ kernel.reshape(K*K*C_in, C_out)).
  'auto'    'matmul' on the CPU backend, 'xla' elsewhere (resolved at trace time).

Why 'matmul' on CPU: XLA:CPU computes the *weight gradient* of some convolutions
pathologically slowly (the 2x2 stride-1 convolution inside the MNIST generator's
UpConv, x [100, 7, 7, 256] -> 512 channels: forward 37 ms, weight gradient 10.4 s),
while a matrix multiply and its two gradients (two more matrix multiplies) run at the
CPU's matmul speed. docs/performance.md has the measurements.

`UpConv` is a strided transposed convolution with 'SAME' padding (output = stride *
input), computed as a *sub-pixel* convolution: one stride-1 convolution to
stride^2 * features channels, then a per-phase crop and depth-to-space. It holds the
same `kernel` parameter, with the same layout and initialiser, as
`flax.linen.ConvTranspose(features, (k, k), (s, s), padding='SAME')` and computes the
same function (tested equal in tests/test_layers.py).

Why: XLA:CPU computes the weight gradient of a strided transposed convolution about
40x slower than that of a plain convolution of the same size, and that one gradient
dominated the whole MNIST GAN step (BUILD_NOTES.md, "Sub-pixel upsampling").

The decomposition: `lax.conv_transpose` with stride s dilates the input by s, pads it by
`pad_a` before, and correlates with the kernel w. Output pixel o = s*m + a (phase a)
reads input pixel i = m + d through kernel tap k = s*d + pad_a - a, for every integer d
that puts k inside [0, K). So each phase is a small stride-1 correlation over the
undilated input with taps d = d0(a) .. d0(a) + T - 1. All phases are computed by one
convolution whose output channels are (phase_y, phase_x, feature); phase a's result is
the window of that output starting at d0(a) - min_a d0(a). When K is a multiple of s
(4x4 stride 2, as in every DCGAN here) every phase has exactly K/s taps, so the
convolution does the same multiply-adds as the transposed one, with no zero taps (a
3x3 sub-pixel form would do 2.25x as many).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

CONV_IMPLS = ('auto', 'xla', 'matmul')
Padding = Union[str, int, Sequence[Union[int, tuple[int, int]]]]


def resolve_conv_impl(impl: str) -> str:
  """'auto' -> 'matmul' on the CPU backend, 'xla' on accelerators; others unchanged."""
  if impl not in CONV_IMPLS:
    raise ValueError(f'conv_impl must be one of {CONV_IMPLS}, got {impl!r}')
  if impl == 'auto':
    return 'matmul' if jax.default_backend() == 'cpu' else 'xla'
  return impl


def _pair(v: Union[int, Sequence[int]]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


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


def conv2d(x: jax.Array, kernel: jax.Array, strides: Union[int, Sequence[int]] = 1,
           padding: Padding = 'SAME', impl: str = 'auto', precision: Any = None) -> jax.Array:
  """2-D convolution (cross-correlation), x [N, H, W, C_in], kernel [kh, kw, C_in, C_out].

  Returns [N, Ho, Wo, C_out], equal to
  `lax.conv_general_dilated(x, kernel, strides, padding, ('NHWC', 'HWIO', 'NHWC'))`
  for impl 'xla' and 'matmul' alike (up to float rounding).
  """
  strides = _pair(strides)
  kh, kw, c_in, c_out = kernel.shape
  pads = conv_padding(padding, x.shape[1:3], (kh, kw), strides)
  if resolve_conv_impl(impl) == 'xla':
    return jax.lax.conv_general_dilated(x, kernel, strides, pads,
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                        precision=precision)
  if (kh, kw) == (1, 1) and strides == (1, 1) and pads == ((0, 0), (0, 0)):
    cols = x
  else:
    cols = im2col(x, (kh, kw), strides, pads)
  return jax.lax.dot_general(cols, kernel.reshape(kh * kw * c_in, c_out),
                             (((3,), (0,)), ((), ())), precision=precision)


class Conv(nn.Module):
  """Drop-in for `nn.Conv(features, (k, k), (s, s), padding=...)` on NHWC images.

  Same parameters ('kernel' [kh, kw, C_in, features], 'bias' [features]), the same
  default initialisers, and the same function; the convolution runs through `conv2d`
  with `conv_impl` (see the module docstring).
  """
  features: int
  kernel_size: Union[int, Sequence[int]] = 3
  strides: Union[int, Sequence[int]] = 1
  padding: Padding = 'SAME'
  use_bias: bool = True
  conv_impl: str = 'auto'
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kh, kw = _pair(self.kernel_size)
    kernel = self.param('kernel', self.kernel_init, (kh, kw, x.shape[-1], self.features),
                        self.param_dtype)
    dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
    y = conv2d(x.astype(dtype), kernel.astype(dtype), self.strides, self.padding,
               self.conv_impl, self.precision)
    if self.use_bias:
      bias = self.param('bias', self.bias_init, (self.features,), self.param_dtype)
      y = y + bias.astype(dtype)
    return y


@functools.lru_cache(maxsize=None)
def _phase_taps(kernel: int, stride: int) -> tuple[int, tuple[int, ...], tuple[tuple[int, ...], ...]]:
  """Per-phase taps of a 1-D 'SAME' transposed convolution.

  Returns (T, d0, k_index): T taps per phase (phases with fewer are zero-padded),
  d0[a] the input offset of phase a's first tap, and k_index[a][j] the kernel index
  of phase a's tap j, or -1 for a zero tap.
  """
  pad_len = kernel + stride - 2
  pad_a = kernel - 1 if stride > kernel - 1 else int(np.ceil(pad_len / 2))
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
  num_taps, _, k_index = _phase_taps(k, stride)
  # Gather with index K pointing at an appended zero tap, so missing taps are zeros.
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  idx = np.array([[ki if ki >= 0 else k for ki in row] for row in k_index])  # [s, T]
  # g[a, j, b, l] = padded[idx[a, j], idx[b, l]]
  g = padded[idx[:, :, None, None], idx[None, None, :, :]]  # [s, T, s, T, Cin, Cout]
  g = jnp.transpose(g, (1, 3, 4, 0, 2, 5))                   # [T, T, Cin, s, s, Cout]
  return g.reshape(num_taps, num_taps, kernel.shape[2], stride * stride * kernel.shape[3])


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int,
                            precision: Any = None, conv_impl: str = 'xla') -> jax.Array:
  """'SAME' strided transposed convolution, x [N, H, W, C_in] -> [N, sH, sW, C_out].

  Equal to `lax.conv_transpose(x, kernel, (s, s), 'SAME')` (flax's ConvTranspose);
  the inner stride-1 convolution runs through `conv2d(..., impl=conv_impl)`.
  """
  n, h, w, _ = x.shape
  c_out = kernel.shape[3]
  num_taps, d0, _ = _phase_taps(kernel.shape[0], stride)
  lo = max(0, -min(d0))
  hi = max(d + num_taps - 1 for d in d0)
  u = conv2d(x, subpixel_kernel(kernel, stride).astype(x.dtype), 1, ((lo, hi), (lo, hi)),
             conv_impl, precision)
  u = u.reshape(n, u.shape[1], u.shape[2], stride, stride, c_out)
  rows = []
  for a in range(stride):
    oy = d0[a] + lo
    cols = [u[:, oy:oy + h, d0[b] + lo:d0[b] + lo + w, a, b, :] for b in range(stride)]
    rows.append(jnp.stack(cols, axis=3))          # [N, H, W, s_x, C]
  y = jnp.stack(rows, axis=2)                     # [N, H, s_y, W, s_x, C]
  return y.reshape(n, h * stride, w * stride, c_out)


def overlap_add_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int,
                               precision: Any = None) -> jax.Array:
  """The same transposed convolution as `subpixel_conv_transpose`, in col2im form.

  One matmul gives every input pixel's contribution through every kernel tap,
  P = x [N*H*W, C_in] @ kernel [C_in, K*K*C_out]; output phase (a, b) then sums, for its
  taps (_phase_taps), the slices of P shifted by the taps' input offsets. It does
  exactly the transposed convolution's multiply-adds and materialises K*K*C_out values
  per input pixel (the sub-pixel im2col: T*T*C_in per pixel, plus its zero taps), so it
  is the cheaper matmul form when C_out is small (the last, 1- or 3-channel layer).
  """
  n, h, w, c_in = x.shape
  k, c_out = kernel.shape[0], kernel.shape[3]
  num_taps, d0, k_index = _phase_taps(k, stride)
  wmat = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(c_in, k * k * c_out)
  p = jax.lax.dot_general(x, wmat.astype(x.dtype), (((3,), (0,)), ((), ())),
                          precision=precision).reshape(n, h, w, k, k, c_out)
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


class UpConv(nn.Module):
  """Drop-in for `nn.ConvTranspose(features, (k, k), (s, s), padding='SAME')`.

  Attributes:
    features: output channels.
    kernel_size: K (square kernels).
    strides: s.
    use_bias: add a bias.
    impl: 'subpixel' (default, see module docstring) or 'transpose' (lax.conv_transpose,
      kept for comparison and benchmarks).
    conv_impl: how the sub-pixel form's stride-1 convolution runs: 'auto', 'xla' or
      'matmul' (see `conv2d`); ignored by impl='transpose'. With 'matmul', a layer with
      few output channels (K*K*features < T*T*C_in) uses the equal col2im form,
      `overlap_add_conv_transpose`, instead.
  """
  features: int
  kernel_size: int = 4
  strides: int = 2
  use_bias: bool = True
  impl: str = 'subpixel'
  conv_impl: str = 'auto'
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param('kernel', self.kernel_init, (k, k, x.shape[-1], self.features),
                        self.param_dtype)
    dtype = self.dtype or x.dtype
    x = x.astype(dtype)
    if self.impl == 'subpixel':
      num_taps = _phase_taps(k, self.strides)[0]
      if (resolve_conv_impl(self.conv_impl) == 'matmul'
          and k * k * self.features < num_taps * num_taps * x.shape[-1]):
        # Few output channels: the col2im form materialises less than the sub-pixel
        # im2col (the MNIST G's last layer: 16 vs 512 values per pixel).
        y = overlap_add_conv_transpose(x, kernel.astype(dtype), self.strides)
      else:
        y = subpixel_conv_transpose(x, kernel.astype(dtype), self.strides,
                                    conv_impl=self.conv_impl)
    elif self.impl == 'transpose':
      y = jax.lax.conv_transpose(x, kernel.astype(dtype), (self.strides, self.strides),
                                 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    else:
      raise ValueError(f"UpConv.impl must be 'subpixel' or 'transpose', got {self.impl!r}")
    if self.use_bias:
      bias = self.param('bias', self.bias_init, (self.features,), self.param_dtype)
      y = y + bias.astype(dtype)
    return y


def space_to_depth(x: jax.Array, block: int) -> jax.Array:
  """[N, H, W, C] -> [N, H/b, W/b, b*b*C], channels ordered (row_in_block, col_in_block, c)."""
  n, h, w, c = x.shape
  x = x.reshape(n, h // block, block, w // block, block, c)
  return jnp.transpose(x, (0, 1, 3, 2, 4, 5)).reshape(n, h // block, w // block, block * block * c)


def dcgan_init(stddev: float = 0.02) -> Callable:
  """DCGAN weight initialiser N(0, stddev) (Radford et al. 2015)."""
  return nn.initializers.normal(stddev)


def bn_scale_init(stddev: float = 0.02) -> Callable:
  """DCGAN BatchNorm scale initialiser N(1, stddev)."""
  def init(key, shape, dtype=jnp.float32):
    return 1.0 + stddev * jax.random.normal(key, shape, dtype)
  return init


class BatchNorm(nn.Module):
  """BatchNorm over the batch and spatial axes, with separate statistics per batch group.

  `num_groups` > 1 splits the batch into that many equal, consecutive groups and
  normalises each with its own statistics: D(concat([real, fake])) with num_groups=2
  equals D(real) and D(fake) called separately (the DCGAN practice), yet every
  convolution runs once on the whole batch. (vmapping D over a stacked [2, N] pair does
  the same forward, but its weight gradients become grouped convolutions, which
  XLA:CPU runs ~10x slower.) Running statistics average the groups' statistics.
  Parameter and statistic names match flax.linen.BatchNorm (scale, bias / mean, var).
  """
  use_running_average: bool = False
  momentum: float = 0.9
  epsilon: float = 1e-5
  num_groups: int = 1
  scale_init: Callable = nn.initializers.ones_init()
  bias_init: Callable = nn.initializers.zeros_init()
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    # Statistics in float32 even for bfloat16 activations (float64 stays float64).
    f32 = jnp.promote_types(x.dtype, jnp.float32)
    ra_mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable('batch_stats', 'var', lambda: jnp.ones((c,), jnp.float32))
    scale = self.param('scale', self.scale_init, (c,), jnp.float32)
    bias = self.param('bias', self.bias_init, (c,), jnp.float32)
    if self.use_running_average:
      mean, var = ra_mean.value, ra_var.value
      xg = x.astype(f32)
    else:
      g = self.num_groups
      if g == 1:
        # No leading group axis of size 1: with one, XLA:CPU's (YNNPACK) reduction
        # fusion of the gradient took a ~30x slower path (the generator's
        # [100, 12544] BatchNorm: 150 ms instead of 5 ms, docs/performance.md).
        xg = x.astype(f32)
        axes = tuple(range(xg.ndim - 1))
      else:
        xg = x.astype(f32).reshape((g, x.shape[0] // g) + x.shape[1:])
        axes = tuple(range(1, xg.ndim - 1))
      mean = jnp.mean(xg, axis=axes, keepdims=True)
      # E[x^2] - E[x]^2 in float32, as flax does (one pass over x).
      var = jnp.maximum(jnp.mean(jnp.square(xg), axis=axes, keepdims=True) - jnp.square(mean), 0.0)
      if not self.is_initializing():
        flat_mean = mean.reshape(g, c).mean(0)
        flat_var = var.reshape(g, c).mean(0)
        n = xg.size // (g * c)
        unbiased = flat_var * n / max(n - 1, 1)  # PyTorch tracks the unbiased variance
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * flat_mean
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * unbiased
    y = (xg - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias
    return y.reshape(x.shape).astype(self.dtype or x.dtype)
