"""Convolutions as pure lax functions: the implementations that `conv_impl` selects,
their custom VJPs and the dispatch the layers call (no Flax).

`conv2d` and `conv_transpose` (used by layers.Conv and layers.UpConv) have several exact
implementations, picked by `impl`:

  'xla'     XLA's own convolutions and their autodiff.
  'matmul'  im2col + one matrix multiply (each output pixel's patch gathered into a
            row, rows @ kernel.reshape(K*K*C_in, C_out)); its weight gradient is one
            matmul on an explicitly transposed copy of the patches (a custom VJP).
  'matmul_autodiff'  the same forward with JAX's own autodiff (the A/B baseline).
  'hybrid'  XLA's convolution for the forward pass and the input gradient, matmuls for
            the weight gradient (a custom VJP).
  'auto'    on the CPU backend 'matmul' for Conv and 'hybrid' for UpConv, the fastest
            measured there; 'xla' elsewhere. Resolved at trace time.

Why not XLA's everywhere on CPU: XLA:CPU computes the *weight gradient* of some
convolutions pathologically slowly (the 2x2 stride-1 convolution inside the MNIST
generator's UpConv, x [100, 7, 7, 256] -> 512 channels: forward 37 ms, weight gradient
10.4 s), while a matrix multiply and its gradients (matrix multiplies) run at the CPU's
matmul speed. docs/performance.md has the measurements.

`conv_transpose` (layers.UpConv) is a strided transposed convolution with 'SAME'
padding (output = stride * input), computed as a *sub-pixel* convolution: one stride-1
convolution to stride^2 * features channels, then a per-phase crop and depth-to-space.
It takes the kernel of `flax.linen.ConvTranspose(features, (k, k), (s, s),
padding='SAME')`, with the same layout, and computes the same function (tested equal in
tests/test_layers.py).

Why: XLA:CPU computes the weight gradient of a strided transposed convolution about
40x slower than that of a plain convolution of the same size, and that one gradient
dominated the whole MNIST GAN step (BUILD_NOTES.md, "Sub-pixel upsampling").

The decomposition itself, and the other pieces the implementations share (padding,
im2col, the low-precision `dot`), are in conv_forms.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence, Union

import jax
import jax.numpy as jnp

from jaxgan.nets.conv_forms import (Padding, conv_padding, dot, im2col, matmul_conv_plain,
                                    overlap_add_conv_transpose, pair, patches,
                                    phase_conv_transpose, phase_taps,
                                    phases_to_space, same_pad_a, subpixel_kernel,
                                    subpixel_padding, xla_conv)

CONV_IMPLS = ('auto', 'xla', 'matmul', 'matmul_autodiff', 'hybrid')


def resolve_conv_impl(impl: str, transposed: bool = False) -> str:
  """The implementation `impl` names; 'auto' is resolved (at trace time) per backend.

  'auto' on the CPU backend: 'matmul' for a convolution, 'hybrid' for a transposed
  convolution (each the fastest measured there, docs/performance.md); on accelerators
  'xla'.
  """
  if impl not in CONV_IMPLS:
    raise ValueError(f'conv_impl must be one of {CONV_IMPLS}, got {impl!r}')
  if impl == 'auto':
    if jax.default_backend() != 'cpu':
      return 'xla'
    return 'hybrid' if transposed else 'matmul'
  return impl


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _matmul_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                 pads: tuple[tuple[int, int], tuple[int, int]], precision: Any) -> jax.Array:
  """im2col + one matmul, with the weight gradient written as cols^T @ dy on an
  explicitly transposed copy of the patches (`_matmul_conv_bwd`)."""
  return matmul_conv_plain(x, kernel, strides, pads, precision)


def _matmul_conv_fwd(x, kernel, strides, pads, precision):
  return matmul_conv_plain(x, kernel, strides, pads, precision), (x, kernel)


def _matmul_conv_bwd(strides, pads, precision, res, g):
  """dx: JAX's own gradient of the forward (g @ W^T, then col2im). dW = cols^T @ g with
  cols^T transposed on its own: left to XLA, the transposed operand of that matmul was
  g, fused with its producer (the next layer's col2im and the activation's gradient)
  into one cache-hostile transposing loop -- 619 ms of the 2.8 s DCGAN-64 step
  (`benchmarks/profile_step.py`); with this form the step runs 1.30x faster
  (`benchmarks/switch_ab.py`, impl 'matmul_autodiff' against 'matmul'; docs/performance.md)."""
  x, kernel = res
  kh, kw, c_in, c_out = kernel.shape
  cols = patches(x, kernel.shape, strides, pads).reshape(-1, kh * kw * c_in)
  dw = dot(jnp.transpose(cols), g.reshape(-1, c_out).astype(cols.dtype), (((1,), (0,)), ((), ())),
            precision)
  # (vjp, not linear_transpose: `dot`'s bfloat16 path is itself a custom VJP; XLA drops
  # the unused forward product.)
  dx = jax.vjp(lambda x: matmul_conv_plain(x, kernel, strides, pads, precision), x)[1](g)[0]
  return dx, dw.reshape(kernel.shape).astype(kernel.dtype)


_matmul_conv.defvjp(_matmul_conv_fwd, _matmul_conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _hybrid_conv(x, kernel, strides, pads, precision):
  """XLA's convolution forward, the input gradient as a sub-pixel transposed
  convolution on XLA's convolution (`conv_input_grad`), the weight gradient as one
  matmul (XLA's own weight and input gradients can take a path ~100x slower inside a
  whole train step)."""
  return xla_conv(x, kernel, strides, pads, precision)


def _hybrid_conv_fwd(x, kernel, strides, pads, precision):
  return xla_conv(x, kernel, strides, pads, precision), (x, kernel)


def conv_input_grad(g: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                    pads: tuple[tuple[int, int], tuple[int, int]], in_hw: Sequence[int],
                    precision: Any = None) -> jax.Array:
  """d<conv2d(x, kernel, strides, pads), g>/dx for g [N, Ho, Wo, C_out] -> [N, H, W, C_in].

  The input gradient of a strided convolution is a transposed convolution of g with
  the flipped, in/out-swapped kernel: x pixel i collects g[o] @ w[k]^T wherever
  s*o - lo + k = i, which is lax.conv_transpose(g, w', 'SAME') when K - 1 - lo equals
  'SAME''s offset pad_a (4x4 stride 2 pad 1, and 'SAME' padding generally). It then runs
  as the sub-pixel form on XLA's convolution (fast on CPU), cropped or zero-padded to
  H x W. Other paddings use the gradient of the matmul form.
  """
  kh, kw, _, _ = kernel.shape
  (lo_h, _), (lo_w, _) = pads
  if kh == kw and strides[0] == strides[1] and lo_h == lo_w and kh - 1 - lo_h == same_pad_a(kh, strides[0]):
    w = jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
    dx = subpixel_conv_transpose(g, w, strides[0], precision, conv_impl='xla')
    h, wd = in_hw
    dx = dx[:, :h, :wd]
    return jnp.pad(dx, ((0, 0), (0, h - dx.shape[1]), (0, wd - dx.shape[2]), (0, 0)))
  x_shape = jax.ShapeDtypeStruct((g.shape[0],) + tuple(in_hw) + (kernel.shape[2],), g.dtype)
  return jax.linear_transpose(lambda x: matmul_conv_plain(x, kernel, strides, pads, precision),
                              x_shape)(g)[0]


def _hybrid_conv_bwd(strides, pads, precision, res, g):
  x, kernel = res
  dx = conv_input_grad(g, kernel, strides, pads, x.shape[1:3], precision)
  # dW = im2col(x)^T @ dy: a matmul where XLA:CPU's own weight-gradient convolution
  # can be pathologically slow. (Unused dW, e.g. a frozen D, is removed by XLA.)
  dw = jax.vjp(lambda w: _matmul_conv(x, w, strides, pads, precision), kernel)[1](g)[0]
  return dx, dw


_hybrid_conv.defvjp(_hybrid_conv_fwd, _hybrid_conv_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, strides: Union[int, Sequence[int]] = 1,
           padding: Padding = 'SAME', impl: str = 'auto', precision: Any = None) -> jax.Array:
  """2-D convolution (cross-correlation), x [N, H, W, C_in], kernel [kh, kw, C_in, C_out].

  Returns [N, Ho, Wo, C_out], equal to
  `lax.conv_general_dilated(x, kernel, strides, padding, ('NHWC', 'HWIO', 'NHWC'))`
  (up to float rounding) for every impl:
    'xla'     XLA's convolution and its autodiff.
    'matmul'  im2col + one matmul, the weight gradient as a matmul on an explicitly
              transposed copy of the patches (custom VJP, `_matmul_conv_bwd`).
    'matmul_autodiff'  the same forward with JAX's own autodiff (the A/B baseline of
              `benchmarks/switch_ab.py`).
    'hybrid'  XLA's convolution and input gradient; the weight gradient as a matmul.
    'auto'    'matmul' on CPU, 'xla' elsewhere (see `resolve_conv_impl`).
  """
  strides = pair(strides)
  pads = conv_padding(padding, x.shape[1:3], kernel.shape[:2], strides)
  impl = resolve_conv_impl(impl)
  if impl == 'xla':
    return xla_conv(x, kernel, strides, pads, precision)
  if impl == 'hybrid':
    return _hybrid_conv(x, kernel, strides, pads, precision)
  if impl == 'matmul_autodiff':
    return matmul_conv_plain(x, kernel, strides, pads, precision)
  return _matmul_conv(x, kernel, strides, pads, precision)


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int,
                            precision: Any = None, conv_impl: str = 'xla') -> jax.Array:
  """'SAME' strided transposed convolution, x [N, H, W, C_in] -> [N, sH, sW, C_out].

  Equal to `lax.conv_transpose(x, kernel, (s, s), 'SAME')` (flax's ConvTranspose);
  the inner stride-1 convolution runs through `conv2d(..., impl=conv_impl)`.
  """
  lo, hi = subpixel_padding(kernel.shape[0], stride)
  u = conv2d(x, subpixel_kernel(kernel, stride).astype(x.dtype), 1, ((lo, hi), (lo, hi)),
             conv_impl, precision)
  return phases_to_space(u, x.shape[1], x.shape[2], kernel.shape[0], stride)


def subpixel_weight_grad(x: jax.Array, g: jax.Array, kernel_shape: Sequence[int], stride: int,
                         precision: Any = None) -> jax.Array:
  """d<conv_transpose(x, kernel, s), g>/dkernel through the sub-pixel form, as one matmul.

  dK_sub = im2col(x)^T @ du, with du the sub-pixel layout of g, folded back onto the
  [K, K, C_in, C_out] kernel. du is materialised on its own (optimization_barrier):
  left to fuse with the transpose the matmul wants, XLA:CPU produced it ~5x slower
  (70 ms vs ~15 ms in the MNIST step).
  """
  k, _, c_in, c_out = kernel_shape
  num_taps = phase_taps(k, stride)[0]
  lo, hi = subpixel_padding(k, stride)
  n, h, w, _ = x.shape
  u_shape = (n, h + lo + hi - num_taps + 1, w + lo + hi - num_taps + 1, stride * stride * c_out)
  to_space = lambda u: phases_to_space(u, h, w, k, stride)
  du, = jax.linear_transpose(to_space, jax.ShapeDtypeStruct(u_shape, g.dtype))(g)
  du = jax.lax.optimization_barrier(du)
  cols = im2col(x, (num_taps, num_taps), (1, 1), ((lo, hi), (lo, hi)))
  dk_sub = dot(cols, du, (((0, 1, 2), (0, 1, 2)), ((), ())), precision)
  dk_sub = dk_sub.reshape(num_taps, num_taps, c_in, stride * stride * c_out)
  to_sub = lambda kern: subpixel_kernel(kern, stride)
  dk, = jax.linear_transpose(to_sub, jax.ShapeDtypeStruct(tuple(kernel_shape), g.dtype))(dk_sub)
  return dk


def _few_outputs(kernel_shape: Sequence[int], stride: int) -> bool:
  """Whether the col2im form materialises less than the sub-pixel im2col (K*K*C_out
  against T*T*C_in values per input pixel): the last, few-channel layer."""
  k, _, c_in, c_out = kernel_shape
  num_taps = phase_taps(k, stride)[0]
  return k * k * c_out < num_taps * num_taps * c_in


def _matmul_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int,
                           precision: Any = None) -> jax.Array:
  """The transposed convolution as matmuls: whichever of the two exact forms
  materialises less -- the sub-pixel im2col (T*T*C_in values per input pixel) or the
  col2im products (K*K*C_out per pixel; the last, few-channel layer)."""
  if _few_outputs(kernel.shape, stride):
    return overlap_add_conv_transpose(x, kernel, stride, precision)
  return subpixel_conv_transpose(x, kernel, stride, precision, conv_impl='matmul')


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _hybrid_conv_transpose(x, kernel, stride, precision):
  """Forward: the sub-pixel form on XLA's convolution (XLA:CPU runs it ~1.8x faster
  than im2col + matmul). Input gradient: the gradient of a transposed convolution is a
  plain strided convolution, which XLA:CPU also runs well (~1.7x faster than the
  matmul form's). Weight gradient: matmuls (XLA's takes seconds)."""
  return subpixel_conv_transpose(x, kernel, stride, precision, conv_impl='xla')


def _hybrid_conv_transpose_fwd(x, kernel, stride, precision):
  return _hybrid_conv_transpose(x, kernel, stride, precision), (x, kernel)


def conv_transpose_input_grad(g: jax.Array, kernel: jax.Array, stride: int,
                              precision: Any = None) -> jax.Array:
  """d<conv_transpose(x, kernel, s), g>/dx for g [N, sH, sW, C_out] -> [N, H, W, C_in].

  The transposed convolution adds x[i] @ w[k] into output s*i + pad_a - k, so its
  input gradient is the stride-s correlation dx[i] = sum_k g[s*i + pad_a - k] @ w[k]^T
  with the spatially flipped kernel: a plain strided convolution. The kernel is
  flipped and transposed to HWIO explicitly because XLA:CPU ran the same convolution
  with the [K, K, C_out, C_in] ('01oi') kernel layout that JAX's own transpose rule
  produces ~7x slower (280 ms vs ~40 ms in the MNIST step).
  """
  k = kernel.shape[0]
  pad_a = same_pad_a(k, stride)
  lo = k - 1 - pad_a
  hi = pad_a - stride + 1
  w = jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
  return xla_conv(g, w, (stride, stride), ((lo, hi), (lo, hi)), precision)


def _hybrid_conv_transpose_bwd(stride, precision, res, g):
  x, kernel = res
  dx = conv_transpose_input_grad(g, kernel, stride, precision)
  if _few_outputs(kernel.shape, stride):  # col2im form's gradient
    dw = jax.vjp(lambda w: overlap_add_conv_transpose(x, w, stride, precision), kernel)[1](g)[0]
  else:
    dw = subpixel_weight_grad(x, g, kernel.shape, stride, precision)
  return dx, dw


_hybrid_conv_transpose.defvjp(_hybrid_conv_transpose_fwd, _hybrid_conv_transpose_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _phase_hybrid_conv_transpose(x, kernel, stride, precision):
  """_hybrid_conv_transpose with the forward per output phase
  (conv_forms.phase_conv_transpose): no cropped outputs. The input gradient is the
  same strided convolution, and the weight gradient the sub-pixel form's: its 8x8
  outputs for a 7x7 input are zeros of the cropped du, and the exact per-phase form
  (im2col of each phase, one batched matmul) ran 1.8x slower than it for the MNIST
  G's UpConv_0 (398.8 vs 223.6 ms, loaded machine): it materialises s*s*T*T*C_in
  patch values per input pixel, against T*T*C_in per (H+1)(W+1)/(HW) pixel."""
  return phase_conv_transpose(x, kernel, stride, precision)


def _phase_hybrid_conv_transpose_fwd(x, kernel, stride, precision):
  return _phase_hybrid_conv_transpose(x, kernel, stride, precision), (x, kernel)


def _phase_hybrid_conv_transpose_bwd(stride, precision, res, g):
  x, kernel = res
  dx = conv_transpose_input_grad(g, kernel, stride, precision)
  return dx, subpixel_weight_grad(x, g, kernel.shape, stride, precision).astype(kernel.dtype)


_phase_hybrid_conv_transpose.defvjp(_phase_hybrid_conv_transpose_fwd,
                                    _phase_hybrid_conv_transpose_bwd)

UPCONV_FORMS = ('subpixel', 'phases')


def conv_transpose(x: jax.Array, kernel: jax.Array, stride: int, impl: str = 'auto',
                   precision: Any = None, form: str = 'subpixel') -> jax.Array:
  """'SAME' strided transposed convolution, x [N, H, W, C_in] -> [N, sH, sW, C_out].

  Equal to `lax.conv_transpose(x, kernel, (s, s), 'SAME')` (flax's ConvTranspose), for
  every form and impl. `form` 'subpixel': one stride-1 convolution for all output
  phases, each phase's window cropped from it (conv_forms' module docstring);
  'phases': one convolution per phase of exactly its H x W outputs
  (conv_forms.phase_conv_transpose), except where C_out is small (below). The impls:
    'xla'     the sub-pixel form on XLA's convolution, and its autodiff.
    'matmul'  matmuls only: the sub-pixel im2col, or the col2im form when C_out is small.
    'hybrid'  XLA forward and input gradient, matmul weight gradient (custom VJP).
    'auto'    'hybrid' on CPU, 'xla' elsewhere (see `resolve_conv_impl`); on CPU
              'matmul' when the sub-pixel kernel is larger than the input (below).
  """
  requested, impl = impl, resolve_conv_impl(impl, transposed=True)
  if (requested == 'auto' and impl == 'hybrid'
      and phase_taps(kernel.shape[0], stride)[0] > min(x.shape[1], x.shape[2])):
    # XLA:CPU's convolution takes a pathological path when its kernel is larger than
    # the image: VT-GAN's first UpConv (2x2x512 input, 5x5 stride 2: 3x3 sub-pixel
    # taps) took 3.9 s per forward, 90% of the VT-GAN step (benchmarks/profile_step.py
    # --case vtgan); with the matmul form the step runs 5.9x faster (docs/performance.md).
    impl = 'matmul'
  if form not in UPCONV_FORMS:
    raise ValueError(f'form must be one of {UPCONV_FORMS}, got {form!r}')
  # The few-channel last layer keeps the sub-pixel form: per phase its convolutions have
  # C_out (1 or 3) output channels, which XLA:CPU ran 2.5x slower than the one
  # convolution to s*s*C_out (MNIST G's UpConv_1 forward, 30.2 vs 12.1 ms, loaded machine).
  if form == 'phases' and not _few_outputs(kernel.shape, stride):
    if impl == 'xla':
      return phase_conv_transpose(x, kernel, stride, precision)
    if impl == 'hybrid':
      return _phase_hybrid_conv_transpose(x, kernel, stride, precision)
    return phase_conv_transpose(
        x, kernel, stride, precision,
        conv=lambda x, k, pads: conv2d(x, k, 1, pads, impl, precision))
  if impl == 'xla':
    return subpixel_conv_transpose(x, kernel, stride, precision, conv_impl='xla')
  if impl == 'hybrid':
    return _hybrid_conv_transpose(x, kernel, stride, precision)
  return _matmul_conv_transpose(x, kernel, stride, precision)
