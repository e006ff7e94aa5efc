"""Improved-GAN layers (Salimans et al. 2016, "Improved Techniques for Training GANs").

`MinibatchDiscrimination` (section 3.2; used by VT-GAN, seed 001 section 3.6) lets D
compare the examples of a batch, so a collapsed generator is easy to spot.
`VirtualBatchNorm` (section 3.4; seed 002) normalises each example with the statistics
of a fixed reference batch plus the example itself, so an example's output no longer
depends on the other examples of its batch.

How VirtualBatchNorm gets its reference batch
---------------------------------------------
Only the reference *input* batch is fixed; the statistics at a given layer are those of
the reference batch's activations at that layer under the current parameters, so they
change as the network trains (and carry gradient to it). A network therefore runs
twice, on the reference batch and then on the real input, with the statistics passed
between the two runs as a Flax variable collection, `VBN_COLLECTION` ('vbn_ref'), the
way BatchNorm passes 'batch_stats':

    _, ref_vars = net.apply({'params': p}, ref_batch, mutable=[VBN_COLLECTION])  # pass 1
    out = net.apply({'params': p, **ref_vars}, x)                                   # pass 2
    # or, the same: out = apply_with_reference(net, {'params': p}, ref_batch, x)

Pass 1 (the collection is mutable) normalises the reference batch with its own
statistics and records them; pass 2 (the collection is an input) normalises each
example with the reference statistics combined with its own, at weight 1 / (n + 1).
Why this design:
- the network code is unchanged (swap BatchNorm for VirtualBatchNorm) and no
  (x, ref) tuples are threaded through every layer;
- both passes are plain `apply` calls, so they live inside a pure jitted train step, and
  the statistics are differentiated through like any other activation;
- in pass 2 each output depends on its own example only, so VBN is safe inside the
  per-example `vmap(grad)` of the gradient penalty (jaxgan.penalties), unlike BatchNorm.
The reference batch itself should be a pure function of the config (a fixed noise batch
from `jax.random.key(seed)` for G, or a fixed data batch for D), so it need not live in
the training state and a resumed run uses the same one. `model.init` runs pass 1 on the
init batch; discard or overwrite that 'vbn_ref' before use. VBN costs a second forward
pass of n examples, which is why Salimans et al. used it in the generator only.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan import kernels

VBN_COLLECTION = 'vbn_ref'


class MinibatchDiscrimination(nn.Module):
  """x [N, F] -> concat([x, o(x)]) [N, F + num_kernels] (Salimans et al. 2016, 3.2).

  M_i = x_i T reshaped to [num_kernels B, kernel_dim C], o(x_i)_b = sum_j
  exp(-|M_i,b - M_j,b|_1) (jaxgan.kernels.minibatch_features). The features couple the
  examples of a batch: feed real and fake batches separately (as VT-GAN does) and never
  put this layer in a critic under a gradient penalty.

  Attributes:
    num_kernels: B, the number of minibatch features appended.
    kernel_dim: C, the dimension of each kernel's projection.
    exclude_self: drop the j = i term (the paper keeps it; see jaxgan.kernels).
    kernel_init: initialiser of T [F, B * C]. N(0, 0.02), the DCGAN initialisation of the
      rest of D: with F ~ 100-1000 unit-scale features the projections have std
      0.2-0.6, so the L1 distances over C = 5 start at about 1-4 and c_b = exp(-d) sits
      away from 0, where it and its gradient vanish (Glorot init is 2-3x as wide and
      starts nearer that regime).
    impl: 'fast' (library form) or 'vmap' (reference form); equal, tested.
  """
  num_kernels: int
  kernel_dim: int
  exclude_self: bool = False
  kernel_init: Callable = nn.initializers.normal(0.02)
  impl: str = 'fast'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 2:
      raise ValueError(f'MinibatchDiscrimination expects features [N, F], got {x.shape}; '
                       'flatten first')
    b, c = self.num_kernels, self.kernel_dim
    # No bias: it would cancel in every difference M_i,b - M_j,b.
    t = self.param('kernel', self.kernel_init, (x.shape[-1], b * c), jnp.float32)
    # float32 throughout: o sums N exponentials, which bfloat16's 8-bit mantissa would
    # round to a handful of values.
    m = jnp.dot(x.astype(jnp.float32), t).reshape(x.shape[0], b, c)
    if self.impl == 'fast':
      o = kernels.minibatch_features(m, self.exclude_self)
    elif self.impl == 'vmap':
      o = kernels.minibatch_features_vmap(m, self.exclude_self)
    else:
      raise ValueError(f"unknown impl {self.impl!r}; choose 'fast' or 'vmap'")
    return jnp.concatenate([x, o.astype(x.dtype)], axis=-1)


class VirtualBatchNorm(nn.Module):
  """Virtual batch normalisation over the last (feature) axis (Salimans et al. 2016, 3.4).

  x [N, ..., C] -> [N, ..., C]. Statistics are per feature over the batch and any
  spatial axes. Pass 1 (collection 'vbn_ref' mutable) normalises with the batch's own
  statistics and stores them with n = batch size; pass 2 normalises example i with the
  statistics of the n reference examples together with example i, which gives its own
  values weight 1 / (n + 1):

    mu_i  = n/(n+1) mu_ref + 1/(n+1) m_i
    var_i = n/(n+1) (var_ref + (mu_ref - mu_i)^2) + 1/(n+1) (v_i + (m_i - mu_i)^2)

  with m_i, v_i the mean and variance of example i over its spatial positions (m_i = x_i,
  v_i = 0 for [N, C] inputs). This is exactly the mean and (biased) variance of the
  n + 1 examples stacked, written with the parallel-variance formula rather than
  E[x^2] - E[x]^2, which cancels catastrophically. See the module docstring for how the
  reference batch is supplied.

  Attributes:
    epsilon: added to the variance.
    use_scale, use_bias: learn gamma (init 1) and beta (init 0), named 'scale' and 'bias'
      like every normalisation layer (jaxgan.penalties.clip_weights relies on it).
    dtype: output dtype (default: the input's); statistics are always float32.
  """
  epsilon: float = 1e-5
  use_scale: bool = True
  use_bias: bool = True
  scale_init: Callable = nn.initializers.ones
  bias_init: Callable = nn.initializers.zeros
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = x.shape[-1]
    xf = x.astype(jnp.float32)
    spatial = tuple(range(1, x.ndim - 1))
    if self.is_mutable_collection(VBN_COLLECTION):
      # Pass 1: the reference batch, normalised by its own statistics.
      axes = (0,) + spatial
      mean = jnp.mean(xf, axis=axes)
      var = jnp.mean(jnp.square(xf - mean), axis=axes)
      self.put_variable(VBN_COLLECTION, 'mean', mean)
      self.put_variable(VBN_COLLECTION, 'var', var)
      self.put_variable(VBN_COLLECTION, 'count', jnp.asarray(x.shape[0], jnp.float32))
    else:
      if not self.has_variable(VBN_COLLECTION, 'mean'):
        raise ValueError(
            f'VirtualBatchNorm needs the reference statistics in the {VBN_COLLECTION!r} '
            'collection: run the reference batch first with '
            f'mutable=[{VBN_COLLECTION!r}] (see jaxgan.nets.tricks.apply_with_reference)')
      ref_mean = self.get_variable(VBN_COLLECTION, 'mean')
      ref_var = self.get_variable(VBN_COLLECTION, 'var')
      n = self.get_variable(VBN_COLLECTION, 'count')
      own_mean = jnp.mean(xf, axis=spatial, keepdims=True)      # [N, 1.., C] (= x if no spatial)
      own_var = jnp.mean(jnp.square(xf - own_mean), axis=spatial, keepdims=True)
      w = 1.0 / (n + 1.0)
      mean = (1.0 - w) * ref_mean + w * own_mean
      var = ((1.0 - w) * (ref_var + jnp.square(ref_mean - mean))
             + w * (own_var + jnp.square(own_mean - mean)))
    y = (xf - mean) * jax.lax.rsqrt(var + self.epsilon)
    if self.use_scale:
      y = y * self.param('scale', self.scale_init, (features,), jnp.float32)
    if self.use_bias:
      y = y + self.param('bias', self.bias_init, (features,), jnp.float32)
    return y.astype(self.dtype or x.dtype)


def apply_with_reference(module: nn.Module, variables: Any, ref: Any, x: Any,
                         *args: Any, **kwargs: Any) -> Any:
  """module(x) with every VirtualBatchNorm using the statistics of the batch `ref`.

  Args:
    module: a linen module containing VirtualBatchNorm layers.
    variables: its variables ('params', ...); a stale 'vbn_ref' entry is replaced.
    ref: the reference batch [n, ...] (same trailing shape as x), or a tuple of the
      module's per-example inputs, e.g. (noise, labels) of a conditional generator.
    x: the batch to run [N, ...], or a tuple like ref's.
    *args, **kwargs: passed to both `apply` calls (for modules whose only mutable
      state is 'vbn_ref'; with BatchNorm in training mode too, run the passes by hand).
  Returns:
    module's output on x. Pure and jittable; gradients wrt params flow through both
    passes, as in Salimans et al., where the reference batch is propagated each step.
  """
  ref, x = (v if isinstance(v, tuple) else (v,) for v in (ref, x))
  _, ref_vars = module.apply(variables, *ref, *args, mutable=[VBN_COLLECTION], **kwargs)
  return module.apply({**variables, **ref_vars}, *x, *args, **kwargs)
