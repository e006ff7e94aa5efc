"""Generators and discriminators (linen modules only), built by name from the config."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxgan.errors import UserError
from jaxgan.nets.dcgan28 import Discriminator28, Generator28


def _dcgan28(model: Any, image_shape: tuple[int, ...], dtype: Any) -> tuple[nn.Module, nn.Module]:
  if tuple(image_shape[:2]) != (28, 28):
    raise UserError(f'model dcgan28 needs 28x28 images, the data has {image_shape[0]}x{image_shape[1]}; '
                    'pick a 28x28 dataset (mnist, fashion_mnist)')
  gen = Generator28(channels=image_shape[2], base_width=model.gen_width,
                    upconv_impl=model.upconv_impl, dtype=dtype)
  disc = Discriminator28(feature_dim=model.feature_dim, width=model.disc_width, dtype=dtype)
  return gen, disc


NETWORKS = {'dcgan28': _dcgan28}


def build_networks(model: Any, image_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) for config.model on images of shape [H, W, C]."""
  if model.name not in NETWORKS:
    raise UserError(f'unknown model {model.name!r}: choose one of {sorted(NETWORKS)}')
  dtype = {'float32': None, 'bfloat16': jnp.bfloat16}[model.get('compute_dtype', 'float32')]
  return NETWORKS[model.name](model, tuple(image_shape), dtype)
