"""Layers shared by the generators and discriminators.

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
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


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
                            precision: Any = None) -> jax.Array:
  """'SAME' strided transposed convolution, x [N, H, W, C_in] -> [N, sH, sW, C_out].

  Equal to `lax.conv_transpose(x, kernel, (s, s), 'SAME')` (flax's ConvTranspose).
  """
  n, h, w, _ = x.shape
  c_out = kernel.shape[3]
  num_taps, d0, _ = _phase_taps(kernel.shape[0], stride)
  lo = max(0, -min(d0))
  hi = max(d + num_taps - 1 for d in d0)
  u = jax.lax.conv_general_dilated(
      x, subpixel_kernel(kernel, stride).astype(x.dtype), (1, 1),
      ((lo, hi), (lo, hi)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      precision=precision)
  u = u.reshape(n, u.shape[1], u.shape[2], stride, stride, c_out)
  rows = []
  for a in range(stride):
    oy = d0[a] + lo
    cols = [u[:, oy:oy + h, d0[b] + lo:d0[b] + lo + w, a, b, :] for b in range(stride)]
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
  """
  features: int
  kernel_size: int = 4
  strides: int = 2
  use_bias: bool = True
  impl: str = 'subpixel'
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
      y = subpixel_conv_transpose(x, kernel.astype(dtype), self.strides)
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


def conv_dims(shape: Sequence[int]) -> int:
  """Product of the non-batch dims of a shape (flattened feature size)."""
  return int(np.prod(shape[1:]))


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
    ra_mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable('batch_stats', 'var', lambda: jnp.ones((c,), jnp.float32))
    scale = self.param('scale', self.scale_init, (c,), jnp.float32)
    bias = self.param('bias', self.bias_init, (c,), jnp.float32)
    if self.use_running_average:
      mean, var = ra_mean.value, ra_var.value
      xg = x.astype(jnp.float32)
    else:
      g = self.num_groups
      xg = x.astype(jnp.float32).reshape((g, x.shape[0] // g) + x.shape[1:])
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
