"""DCGANs for 64x64 (and any 16k x 16k) images: SPEC S3a and seed 003's 5x5 variant S3b.

  G: z -> Dense(s*s*8ngf, no bias) -> reshape [s, s, 8ngf] -> BN -> ReLU  (s = image_size / 16)
     -> 3 x [UpConv(4ngf, 2ngf, ngf; k x k, stride 2) -> BN -> ReLU]
     -> UpConv(C, k x k, stride 2) -> tanh
  D: Conv(ndf, k x k, s2) -> LReLU(0.2) -> 3 x [Conv(2ndf, 4ndf, 8ndf; s2) -> norm -> LReLU]
     -> flatten [the features] -> Dense(1) [logit]

With k = 4 this is the 64x64 DCGAN of the PyTorch examples (bench/torch_reference.py's
G64/D64): its first ConvTranspose from a 1x1 input is exactly a Dense to 4x4x8ngf, and
its last 4x4 VALID Conv on a 4x4 map exactly a Dense of the flattened map. With k = 5
it is seed 003's architecture (G dense 4x4x512 + BN + ReLU, four 5x5 stride-2 transposed
convs 256, 128, 64, C; D four 5x5 stride-2 convs 64..512, BN on all but the first).

Checked against torch_reference.py's G64/D64 (2026-11-26): same layers, widths, kernel
sizes, paddings (4x4 stride 2 'SAME' is PyTorch's padding 1, both ways), no convolution
biases, BatchNorm after every layer except G's output layer, D's first layer and D's
output. G's first BN normalises each of the 8ngf channels over (N, s, s), as PyTorch's
BatchNorm2d(ngf * 8) after its 1x1 -> 4x4 ConvTranspose does (and TF DCGAN's BN after
the reshape), not each of the s*s*8ngf Dense outputs on its own (BatchNorm1d-style, 16x
the scale parameters), which would not be the reference network.
Differences left, none of which changes the function class or the FLOPs: NHWC instead
of NCHW (D's flattened features are ordered (h, w, c)), and PyTorch's ConvTranspose
kernel is the spatially flipped, in/out-swapped HWIO kernel of lax.conv_transpose
(weights copied across need that permutation).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.nets import layers
from jaxgan.nets.dcgan28 import gen_norm, normalization


class DCGANGenerator(layers.ConvGenerator):
  """z [N, latent] -> images [N, image_size, image_size, channels] in [-1, 1].

  norm='virtual' replaces BatchNorm by virtual batch normalisation; the step then runs
  G with a fixed reference batch (steps.generate).
  """
  image_size: int = 64
  channels: int = 3
  ngf: int = 64
  kernel_size: int = 4

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    init = layers.dcgan_init()
    s = self.image_size // 16
    x = layers.dense(s * s * 8 * self.ngf, use_bias=False, kernel_init=init, dtype=self.dtype)(z)
    # BN per channel of the s x s map (PyTorch's BatchNorm2d after its 1x1 -> 4x4 ConvTranspose).
    x = x.reshape(z.shape[0], s, s, 8 * self.ngf)
    x = nn.relu(gen_norm(self.norm, train, self.dtype, self.bn_impl)(x))
    for mult in (4, 2, 1):
      x = layers.UpConv(mult * self.ngf, self.kernel_size, 2, use_bias=False,
                        impl=self.upconv_impl, conv_impl=self.conv_impl, kernel_init=init,
                        dtype=self.dtype)(x)
      x = nn.relu(gen_norm(self.norm, train, self.dtype, self.bn_impl)(x))
    x = layers.UpConv(self.channels, self.kernel_size, 2, use_bias=False, impl=self.upconv_impl,
                      conv_impl=self.conv_impl, kernel_init=init, dtype=self.dtype)(x)
    # float32 images whatever the compute dtype: the losses and D's input see float32.
    return jnp.tanh(x.astype(jnp.float32))


class DCGANDiscriminator(layers.ConvNet):
  """images [N, S, S, C] -> (logit [N], features [N, (S/16)^2 * 8ndf])."""
  ndf: int = 64
  kernel_size: int = 4

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True, num_groups: int = 1):
    init = layers.dcgan_init()
    k = (self.kernel_size, self.kernel_size)
    x = layers.Conv(self.ndf, k, 2, padding='SAME', use_bias=False, conv_impl=self.conv_impl,
                    kernel_init=init, dtype=self.dtype)(x)
    x = nn.leaky_relu(x, 0.2)
    for mult in (2, 4, 8):
      x = layers.Conv(mult * self.ndf, k, 2, padding='SAME', use_bias=False,
                      conv_impl=self.conv_impl, kernel_init=init, dtype=self.dtype)(x)
      x = nn.leaky_relu(normalization(self.norm, train, num_groups, self.dtype, self.bn_impl)(x), 0.2)
    feats = x.reshape(x.shape[0], -1)
    logit = layers.dense(1, use_bias=False, kernel_init=init, dtype=self.dtype)(feats)
    # float32 at the outputs: the losses and MMD^2 (jaxgan/steps.py) then run in float32.
    return logit[:, 0].astype(jnp.float32), feats.astype(jnp.float32)
