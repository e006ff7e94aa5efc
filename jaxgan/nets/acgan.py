"""AC-GAN (S7, Odena et al. 2017) and VT-GAN (S8, seed 001) networks.

Seed 001's tables (sections 3.2, 3.3), for 32x32 images (MNIST is padded to 32x32):
  D: Conv 5/s2/16 (no BN) -> 5/s1/32 -> 3/s2/64 -> 5/s1/128 -> 3/s2/256 -> 3/s1/512 (no BN),
     BN where marked, LeakyReLU(0.2) after each -> flatten [features]
     -> [VT-GAN: minibatch discrimination, concatenated] -> source logit and class logits
  G: [z, one_hot(y)] -> Dense(s*s*512) -> LeakyReLU  (s = image_size / 16, no BN)
     -> 3 x [ConvT 5x5 s2 (256, 128, 64) -> BN -> LeakyReLU] -> ConvT 5x5 s2 C -> tanh
The class label enters G by concatenating its one-hot code to z (a choice: the seed
does not say how; see BUILD_NOTES.md).

The seed's text writes LeakyReLU with slope 0.01 and "activation followed by Batch
Normalization". By default these nets use slope 0.2 and normalise before the
activation, as DCGAN (Radford et al. 2015), on which the seed says its nets are
modelled, and Odena et al.'s AC-GAN code do; `leaky_slope` = 0.01 with `norm_first` =
False gives the seed's letter (config.model.leaky_slope, config.model.norm_first).

G's `norm` (config.model.gen_norm) 'virtual' replaces its three BatchNorms by virtual
batch normalisation (Salimans et al. 2016, SPEC S9); the step then runs G on a fixed
reference batch of noise and labels first (steps.vbn_reference, steps.generate).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.nets import layers
from jaxgan.nets.dcgan28 import batch_norm, gen_norm

# (kernel, stride, filters, batch norm) of seed 001's discriminator table.
DISC_TABLE = ((5, 2, 16, False), (5, 1, 32, True), (3, 2, 64, True),
              (5, 1, 128, True), (3, 2, 256, True), (3, 1, 512, False))


def norm_act(x: jax.Array, norm: nn.Module | None, slope: float, norm_first: bool) -> jax.Array:
  """LeakyReLU(slope) with the normalisation `norm` (None: none) before or after it."""
  if norm is None:
    return nn.leaky_relu(x, slope)
  if norm_first:
    return nn.leaky_relu(norm(x), slope)
  return norm(nn.leaky_relu(x, slope))


class ConditionalGenerator(layers.ConvGenerator):
  """(z [N, latent], labels [N]) -> images [N, image_size, image_size, channels]."""
  num_classes: int = 10
  image_size: int = 32
  channels: int = 1
  width: int = 512
  leaky_slope: float = 0.2
  norm_first: bool = True     # normalise, then LeakyReLU (False: the seed's order)

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array, train: bool = True) -> jax.Array:
    init = layers.dcgan_init()
    s = self.image_size // 16
    x = jnp.concatenate([z, jax.nn.one_hot(labels, self.num_classes, dtype=z.dtype)], axis=-1)
    x = nn.leaky_relu(layers.dense(s * s * self.width, kernel_init=init, dtype=self.dtype)(x),
                      self.leaky_slope)
    x = x.reshape(z.shape[0], s, s, self.width)
    for div in (2, 4, 8):
      # A convolution followed by a normalisation needs no bias: the norm's shift replaces
      # it. With the activation in between it does.
      x = layers.UpConv(self.width // div, 5, 2, use_bias=not self.norm_first,
                        impl=self.upconv_impl, conv_impl=self.conv_impl, kernel_init=init,
                        dtype=self.dtype)(x)
      x = norm_act(x, gen_norm(self.norm, train, self.dtype, self.bn_impl), self.leaky_slope,
                   self.norm_first)
    x = layers.UpConv(self.channels, 5, 2, impl=self.upconv_impl, conv_impl=self.conv_impl,
                      kernel_init=init, dtype=self.dtype)(x)
    # float32 images whatever the compute dtype.
    return jnp.tanh(x.astype(jnp.float32))


class AuxClassifierDiscriminator(nn.Module):
  """images -> (source logit [N], features [N, F], class logits [N, K]).

  `minibatch_kernels` > 0 adds Salimans et al.'s minibatch discrimination layer (VT-GAN)
  on the flattened features; it compares the examples of the batch it is given, so the
  step feeds real and fake batches in separate calls.
  """
  num_classes: int = 10
  width_mult: float = 1.0
  minibatch_kernels: int = 0
  minibatch_dim: int = 5
  conv_impl: str = 'auto'
  leaky_slope: float = 0.2
  norm_first: bool = True     # as in ConditionalGenerator
  bn_impl: str = 'autodiff'   # layers.BatchNorm.impl
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True, num_groups: int = 1):
    init = layers.dcgan_init()
    for kernel, stride, filters, use_bn in DISC_TABLE:
      x = layers.Conv(max(1, int(filters * self.width_mult)), kernel, stride, padding='SAME',
                      use_bias=not (use_bn and self.norm_first), conv_impl=self.conv_impl,
                      kernel_init=init, dtype=self.dtype)(x)
      norm = batch_norm(train, self.dtype, num_groups, self.bn_impl) if use_bn else None
      x = norm_act(x, norm, self.leaky_slope, self.norm_first)
    # The convolutions run in the compute dtype; from the features on everything is
    # float32 (the minibatch layer sums exponentials, the heads feed the losses), and
    # the features are returned float32 for feature matching.
    feats = x.reshape(x.shape[0], -1).astype(jnp.float32)
    h = feats
    if self.minibatch_kernels:
      from jaxgan.nets.tricks import MinibatchDiscrimination  # pylint: disable=g-import-not-at-top
      h = MinibatchDiscrimination(self.minibatch_kernels, self.minibatch_dim)(h)
    logit = nn.Dense(1, kernel_init=init)(h)[:, 0]
    class_logits = nn.Dense(self.num_classes, kernel_init=init)(h)
    return logit, feats, class_logits
