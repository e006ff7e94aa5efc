"""Generators and discriminators (linen modules only), built by name from the config.

Every discriminator maps x [N, ...] to (logit [N], features [N, F]) or, with a class
head, (logit, features, class_logits [N, K]); it takes `train` and `num_groups` (the
number of equal batch groups normalised separately, see layers.BatchNorm).
`model.pack` = m > 1 wraps the discriminator in pack.Packed: it then judges packs of m
samples and returns one logit (and feature row) per pack, [N/m].
`model.gen_norm` is the generator's normalisation; GEN_NORMS lists each network's values.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from jaxgan.errors import UserError
from jaxgan.nets import acgan, dcgan, mlp
from jaxgan.nets.dcgan28 import Discriminator28, Generator28
from jaxgan.nets.pack import Packed


def _need(shape, ok: Callable[[tuple], bool], what: str, name: str) -> None:
  if not ok(shape):
    raise UserError(f'model {name} needs {what}, the data has shape {shape}; '
                    'change data.name / data.image_size or the model')


def _dcgan28(m, shape, num_classes, dtype):
  _need(shape, lambda s: len(s) == 3 and s[:2] == (28, 28), '28x28 images', 'dcgan28')
  conv_impl = m.conv_impl
  return (Generator28(channels=shape[2], base_width=m.gen_width, upconv_impl=m.upconv_impl,
                      conv_impl=conv_impl, norm=gen_norm_of(m), bn_impl=m.bn_impl, dtype=dtype),
          Discriminator28(feature_dim=m.feature_dim, width=m.disc_width, conv_impl=conv_impl,
                          norm=m.disc_norm, bn_impl=m.bn_impl, dtype=dtype))


def _dcgan(m, shape, num_classes, dtype):
  _need(shape, lambda s: len(s) == 3 and s[0] == s[1] and s[0] % 16 == 0,
        'square images with a side divisible by 16 (e.g. 64)', 'dcgan')
  conv_impl = m.conv_impl
  return (dcgan.DCGANGenerator(image_size=shape[0], channels=shape[2], ngf=m.ngf,
                               kernel_size=m.kernel_size, upconv_impl=m.upconv_impl,
                               conv_impl=conv_impl, norm=gen_norm_of(m), bn_impl=m.bn_impl,
                               dtype=dtype),
          dcgan.DCGANDiscriminator(ndf=m.ndf, kernel_size=m.kernel_size, norm=m.disc_norm,
                                   conv_impl=conv_impl, bn_impl=m.bn_impl, dtype=dtype))


def _acgan(m, shape, num_classes, dtype):
  _need(shape, lambda s: len(s) == 3 and s[0] == s[1] and s[0] % 16 == 0,
        'square images with a side divisible by 16 (set data.pad_to=32 for MNIST)', 'acgan')
  if num_classes is not None and num_classes != m.num_classes:
    raise UserError(f'model.num_classes is {m.num_classes} but the data has {num_classes} classes')
  return (acgan.ConditionalGenerator(num_classes=m.num_classes, image_size=shape[0],
                                     channels=shape[2], width=m.gen_width,
                                     upconv_impl=m.upconv_impl, norm=gen_norm_of(m),
                                     leaky_slope=m.leaky_slope, norm_first=m.norm_first,
                                     bn_impl=m.bn_impl, dtype=dtype),
          acgan.AuxClassifierDiscriminator(num_classes=m.num_classes, width_mult=m.disc_width_mult,
                                           minibatch_kernels=m.minibatch_kernels,
                                           minibatch_dim=m.minibatch_dim,
                                           leaky_slope=m.leaky_slope, norm_first=m.norm_first,
                                           bn_impl=m.bn_impl, dtype=dtype))


def _mlp_maxout(m, shape, num_classes, dtype):
  return (mlp.MLPGenerator(out_shape=shape, hidden=tuple(m.gen_hidden), norm=gen_norm_of(m),
                           dtype=dtype),
          mlp.MaxoutDiscriminator(units=m.maxout_units, pieces=m.maxout_pieces,
                                  dropout=m.dropout, input_dropout=m.input_dropout,
                                  dtype=dtype))


def _toy(m, shape, num_classes, dtype):
  _need(shape, lambda s: s == (2,), '2-D points', 'toy')
  return (mlp.ToyGenerator(hidden=m.hidden, dtype=dtype),
          mlp.ToyDiscriminator(hidden=m.hidden, dtype=dtype))


def _toy_pacgan(m, shape, num_classes, dtype):
  _need(shape, lambda s: s == (2,), '2-D points', 'toy_pacgan')
  return (mlp.PacGANToyGenerator(hidden=m.hidden, layers=m.gen_layers, dtype=dtype),
          mlp.PacGANToyDiscriminator(units=m.maxout_units, pieces=m.maxout_pieces,
                                     layers=m.disc_layers, minibatch_kernels=m.minibatch_kernels,
                                     minibatch_dim=m.minibatch_dim, dtype=dtype))


NETWORKS = {'dcgan28': _dcgan28, 'dcgan': _dcgan, 'acgan': _acgan, 'mlp_maxout': _mlp_maxout,
            'toy': _toy, 'toy_pacgan': _toy_pacgan}

# The values of model.gen_norm each generator takes, its own first: how it normalised
# before the field existed (none in Goodfellow's MLP and the 2-D G, BatchNorm in the
# DCGANs and PacGAN's 2-D G), which an old run's config.json lacking the field means.
GEN_NORMS = {'dcgan28': ('batch', 'virtual'), 'dcgan': ('batch', 'virtual'),
             'acgan': ('batch', 'virtual'), 'mlp_maxout': ('none', 'batch', 'virtual'),
             'toy': ('none',), 'toy_pacgan': ('batch',)}


def gen_norm_of(model: Any) -> str:
  """config.model.gen_norm, checked against the values the generator takes."""
  if model.name not in NETWORKS:
    raise UserError(f'unknown model {model.name!r}: choose one of {sorted(NETWORKS)}')
  allowed = GEN_NORMS[model.name]
  kind = model.gen_norm
  if kind not in allowed:
    raise UserError(f'model.gen_norm must be one of {list(allowed)} for model {model.name!r}, '
                    f'got {kind!r}')
  return kind


def disc_couples_examples(model: Any) -> bool:
  """Whether D's output for one example depends on the rest of its batch (BatchNorm in
  training mode, minibatch discrimination). Penalties that differentiate D one example
  at a time (gradient penalty, R1) need a D that does not."""
  if model.minibatch_kernels:
    return True
  batch_norm_disc = {'dcgan28': model.disc_norm == 'batch', 'dcgan': model.disc_norm == 'batch',
                     'acgan': True}
  return batch_norm_disc.get(model.name, False)


def build_networks(model: Any, data_shape: tuple[int, ...],
                   num_classes: int | None = None) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) for config.model on data of shape [H, W, C] or [2]."""
  gen_norm_of(model)  # model.name and model.gen_norm, checked before anything is built
  dtype = {'float32': None, 'bfloat16': jnp.bfloat16}[model.compute_dtype]
  gen, disc = NETWORKS[model.name](model, tuple(data_shape), num_classes, dtype)
  m = model.pack
  return (gen, Packed(disc, m)) if m > 1 else (gen, disc)
