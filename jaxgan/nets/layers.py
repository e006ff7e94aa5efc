"""Flax modules shared by the generators and discriminators.

`Conv` and `UpConv` are drop-ins for `nn.Conv` and `nn.ConvTranspose(..., 'SAME')` with
the same parameters, whose arithmetic is one of the exact forms of `conv_ops` (chosen
by `conv_impl`; see jaxgan/nets/conv_ops.py for why each exists). `dense` is `nn.Dense`
with float32 accumulation of bfloat16 products on CPU; `BatchNorm` normalises each
group of a grouped batch on its own; `dcgan_init` and `bn_scale_init` are Radford et
al.'s N(0, 0.02) initialisers. `ConvNet` and `ConvGenerator` hold the fields that every
convolutional network takes, for the networks to inherit.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.nets import conv_forms, conv_ops, norm_ops
from jaxgan.nets.conv_forms import Padding

def dense(features: int, *, dtype: Any = None, **kwargs: Any) -> nn.Dense:
  """`nn.Dense` (same parameters and names) whose matmul goes through `conv_forms.dot`, so that
  on CPU bfloat16 products (and their gradients) accumulate into float32."""
  return nn.Dense(features, dtype=dtype, dot_general=conv_forms.dot, **kwargs)


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
    kh, kw = conv_forms.pair(self.kernel_size)
    kernel = self.param('kernel', self.kernel_init, (kh, kw, x.shape[-1], self.features),
                        self.param_dtype)
    dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
    y = conv_ops.conv2d(x.astype(dtype), kernel.astype(dtype), self.strides, self.padding,
               self.conv_impl, self.precision)
    if self.use_bias:
      bias = self.param('bias', self.bias_init, (self.features,), self.param_dtype)
      y = y + bias.astype(dtype)
    return y


class UpConv(nn.Module):
  """Drop-in for `nn.ConvTranspose(features, (k, k), (s, s), padding='SAME')`.

  Attributes:
    features: output channels.
    kernel_size: K (square kernels).
    strides: s.
    use_bias: add a bias.
    impl: 'subpixel' (default: the exact sub-pixel decomposition of conv_forms'
      docstring, run as `conv_ops.conv_transpose(..., conv_impl)`), 'phases' (the
      same decomposition as one convolution per output phase with no cropped outputs,
      conv_forms.phase_conv_transpose; the steps ran no faster with it,
      docs/performance.md) or 'transpose' (lax.conv_transpose and its
      autodiff, kept for comparison and benchmarks).
    conv_impl: 'auto', 'xla', 'matmul' or 'hybrid': how the sub-pixel form runs (see
      `conv_transpose`); ignored by impl='transpose'.
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
    if self.impl in conv_ops.UPCONV_FORMS:
      y = conv_ops.conv_transpose(x, kernel.astype(dtype), self.strides, self.conv_impl,
                                  form=self.impl)
    elif self.impl == 'transpose':
      y = jax.lax.conv_transpose(x, kernel.astype(dtype), (self.strides, self.strides),
                                 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    else:
      raise ValueError(f"UpConv.impl must be 'subpixel', 'phases' or 'transpose', got {self.impl!r}")
    if self.use_bias:
      bias = self.param('bias', self.bias_init, (self.features,), self.param_dtype)
      y = y + bias.astype(dtype)
    return y


class ConvNet(nn.Module):
  """Base of the convolutional networks: the fields that say how their layers run.

  Attributes:
    norm: the normalisation after the convolutions (dcgan28.normalization for D,
      dcgan28.gen_norm for G).
    conv_impl: how every convolution runs (conv_ops.CONV_IMPLS).
    bn_impl: how every BatchNorm is differentiated (BatchNorm.impl, BN_IMPLS).
    dtype: the compute dtype of every layer (None: float32).
  """
  norm: str = 'batch'
  conv_impl: str = 'auto'
  bn_impl: str = 'autodiff'
  dtype: Any = None


class ConvGenerator(ConvNet):
  """Base of the convolutional generators: a ConvNet that upsamples with UpConv, whose
  `impl` is `upconv_impl`."""
  upconv_impl: str = 'subpixel'


def dcgan_init(stddev: float = 0.02) -> Callable:
  """DCGAN weight initialiser N(0, stddev) (Radford et al. 2015).

  Draws the values as one flat vector and reshapes: the same numbers as
  nn.initializers.normal(stddev)(key, shape) (JAX draws flat and reshapes too), but
  XLA:CPU compiles the flat draw in a fraction of the time (a [4, 4, 8, 16] normal took
  4.8 s to compile, a [2048] one 0.4 s), which dominated create_state and the tests.
  """
  normal = nn.initializers.normal(stddev)

  def init(key, shape, dtype=jnp.float32):
    return normal(key, (int(np.prod(shape)),), dtype).reshape(shape)
  return init


def bn_scale_init(stddev: float = 0.02) -> Callable:
  """DCGAN BatchNorm scale initialiser N(1, stddev)."""
  def init(key, shape, dtype=jnp.float32):
    return 1.0 + stddev * jax.random.normal(key, shape, dtype)
  return init


BN_IMPLS = ('autodiff', 'vjp')


class BatchNorm(nn.Module):
  """BatchNorm over the batch and spatial axes, with separate statistics per batch group.

  `num_groups` > 1 splits the batch into that many equal, consecutive groups and
  normalises each with its own statistics: D(concat([real, fake])) with num_groups=2
  equals D(real) and D(fake) called separately (the DCGAN practice), yet every
  convolution runs once on the whole batch. (vmapping D over a stacked [2, N] pair does
  the same forward, but its weight gradients become grouped convolutions, which
  XLA:CPU runs ~10x slower.) Running statistics average the groups' statistics.
  Parameter and statistic names match flax.linen.BatchNorm (scale, bias / mean, var).

  `impl` (config.model.bn_impl) says how training mode is differentiated: 'autodiff'
  (JAX's autodiff of the formula) or 'vjp' (norm_ops.batch_norm_train, the textbook
  backward written out); the same function either way. 'autodiff' is the default: 'vjp'
  ran the layers alone 1.9-5.7x faster but the training steps no faster
  (docs/performance.md, "What was tried").
  """
  use_running_average: bool = False
  momentum: float = 0.9
  epsilon: float = 1e-5
  num_groups: int = 1
  scale_init: Callable = nn.initializers.ones_init()
  bias_init: Callable = nn.initializers.zeros_init()
  dtype: Any = None
  impl: str = 'autodiff'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.impl not in BN_IMPLS:
      raise ValueError(f'BatchNorm.impl must be one of {BN_IMPLS}, got {self.impl!r}')
    c = x.shape[-1]
    # Statistics in float32 even for bfloat16 activations (float64 stays float64).
    f32 = jnp.promote_types(x.dtype, jnp.float32)
    ra_mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable('batch_stats', 'var', lambda: jnp.ones((c,), jnp.float32))
    scale = self.param('scale', self.scale_init, (c,), jnp.float32)
    bias = self.param('bias', self.bias_init, (c,), jnp.float32)
    g = self.num_groups
    if self.impl == 'vjp' and not self.use_running_average:
      y, mean, var = norm_ops.batch_norm_train(x, scale, bias, g, self.epsilon)
      if not self.is_initializing():
        self._update_running(ra_mean, ra_var, mean, var, x.size // (g * c))
      return y.astype(self.dtype or x.dtype)
    if self.use_running_average:
      mean, var = ra_mean.value, ra_var.value
      xg = x.astype(f32)
    else:
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
        self._update_running(ra_mean, ra_var, mean.reshape(g, c), var.reshape(g, c),
                             xg.size // (g * c))
    y = (xg - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias
    return y.reshape(x.shape).astype(self.dtype or x.dtype)

  def _update_running(self, ra_mean, ra_var, mean: jax.Array, var: jax.Array, n: int) -> None:
    """Running averages from the groups' statistics mean, var [g, C] (n elements each)."""
    unbiased = var.mean(0) * n / max(n - 1, 1)  # PyTorch tracks the unbiased variance
    ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean.mean(0)
    ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * unbiased
