"""The MNIST 28x28 DCGAN of docs/spec.md (system S3c, the network of the MMD-DCGAN S4).

  G: z(100) -> Dense(7*7*256, no bias) -> BN -> ReLU -> 7x7x256
     -> ConvT(128, 4x4, s2, SAME, no bias) -> BN -> ReLU -> ConvT(C, 4x4, s2, SAME) -> tanh
  D: Conv(64, 4x4, s2, SAME) -> LReLU(0.2) -> Conv(128, 4x4, s2, SAME, no bias) -> BN
     -> LReLU(0.2) -> flatten -> Dense(feature_dim) -> LReLU(0.2)  [MMD features]
     -> Dense(1)  [logit]

Weights N(0, 0.02), BatchNorm scale N(1, 0.02) (DCGAN). BatchNorm uses PyTorch's
epsilon 1e-5 and momentum 0.1 (flax momentum 0.9), as in bench/torch_reference.py.

`conv_impl` (model.conv_impl: 'auto' | 'xla' | 'matmul' | 'matmul_autodiff' | 'hybrid',
see conv_ops.conv2d) picks how every convolution runs; 'auto' avoids XLA's convolution
gradients on CPU, where they are slow. `bn_impl` (model.bn_impl: 'autodiff' | 'vjp',
layers.BatchNorm.impl) picks how every BatchNorm is differentiated.
Neither changes the parameters or the function.

`dtype` (config.model.compute_dtype: None = float32, or bfloat16) is the compute dtype
of every layer; parameters, BatchNorm statistics and the outputs stay float32.

G's `norm` (config.model.gen_norm) 'virtual' replaces both of its BatchNorms by virtual
batch normalisation (Salimans et al. 2016, SPEC S9); the step then runs G with a fixed
reference batch (steps.generate).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.nets import layers, tricks


def batch_norm(train: bool, dtype: Any = None, num_groups: int = 1,
               impl: str = 'autodiff') -> layers.BatchNorm:
  """BatchNorm with DCGAN init and PyTorch's defaults (eps 1e-5, momentum 0.1); `impl`
  is config.model.bn_impl (layers.BatchNorm)."""
  return layers.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                          num_groups=num_groups, scale_init=layers.bn_scale_init(), dtype=dtype,
                          impl=impl)


def normalization(kind: str, train: bool, num_groups: int = 1, dtype: Any = None,
                  bn_impl: str = 'autodiff'):
  """D's normalisation: 'batch' (grouped BatchNorm), 'layer' (over (H, W, C) of each
  example: WGAN-GP's critic, Gulrajani et al.) or 'none'."""
  if kind == 'batch':
    return batch_norm(train, dtype, num_groups, bn_impl)
  if kind == 'layer':
    return nn.LayerNorm(epsilon=1e-5, reduction_axes=(-3, -2, -1), feature_axes=-1, dtype=dtype)
  if kind == 'none':
    return lambda x: x
  raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {kind!r}")


def gen_norm(kind: str, train: bool, dtype: Any = None, bn_impl: str = 'autodiff'):
  """G's normalisation (config.model.gen_norm): 'batch' (BatchNorm), 'virtual' (virtual
  batch norm, S9, with the same DCGAN scale init) or 'none'."""
  if kind == 'virtual':
    return tricks.VirtualBatchNorm(scale_init=layers.bn_scale_init(), dtype=dtype)
  if kind == 'batch':
    return batch_norm(train, dtype, impl=bn_impl)
  if kind == 'none':
    return lambda x: x
  raise ValueError(f"gen_norm must be 'batch', 'virtual' or 'none', got {kind!r}")


class Generator28(layers.ConvGenerator):
  """z [N, latent] -> images [N, 28, 28, channels] in [-1, 1]."""
  channels: int = 1
  base_width: int = 256

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    init = layers.dcgan_init()
    x = layers.dense(7 * 7 * self.base_width, use_bias=False, kernel_init=init, dtype=self.dtype)(z)
    x = nn.relu(gen_norm(self.norm, train, self.dtype, self.bn_impl)(x))
    x = x.reshape(x.shape[0], 7, 7, self.base_width)
    x = layers.UpConv(self.base_width // 2, 4, 2, use_bias=False, impl=self.upconv_impl,
                      conv_impl=self.conv_impl, kernel_init=init, dtype=self.dtype)(x)
    x = nn.relu(gen_norm(self.norm, train, self.dtype, self.bn_impl)(x))
    x = layers.UpConv(self.channels, 4, 2, impl=self.upconv_impl, conv_impl=self.conv_impl,
                      kernel_init=init, dtype=self.dtype)(x)
    # float32 images whatever the compute dtype: D's input and the MMD side see float32.
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator28(layers.ConvNet):
  """images [N, 28, 28, C] -> (logit [N], features [N, feature_dim]).

  `num_groups` BatchNorm statistics groups along the batch (2 for concat([real, fake])).
  """
  feature_dim: int = 20
  width: int = 64

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True,
               num_groups: int = 1) -> tuple[jax.Array, jax.Array]:
    init = layers.dcgan_init()
    # layers.Conv: nn.Conv's parameters (same names Conv_0, Conv_1), conv_impl's speed.
    x = layers.Conv(self.width, 4, 2, padding='SAME', conv_impl=self.conv_impl,
                    kernel_init=init, dtype=self.dtype)(x)
    x = nn.leaky_relu(x, 0.2)
    x = layers.Conv(2 * self.width, 4, 2, padding='SAME', use_bias=False,
                    conv_impl=self.conv_impl, kernel_init=init, dtype=self.dtype)(x)
    x = nn.leaky_relu(normalization(self.norm, train, num_groups, self.dtype, self.bn_impl)(x), 0.2)
    x = x.reshape(x.shape[0], -1)
    feats = nn.leaky_relu(layers.dense(self.feature_dim, kernel_init=init, dtype=self.dtype)(x), 0.2)
    logit = layers.dense(1, kernel_init=init, dtype=self.dtype)(feats)
    # float32 at the outputs: the BCE and MMD^2 code (steps.py, kernels.py) then runs in
    # float32 whatever the compute dtype.
    return logit[:, 0].astype(jnp.float32), feats.astype(jnp.float32)
