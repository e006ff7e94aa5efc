"""jaxgan.nets.layers against flax's own layers, in float64 (values and gradients).

Every fast formulation (sub-pixel UpConv, im2col + matmul Conv, grouped BatchNorm)
must compute the same function as the flax layer it replaces, with the same
parameters: compared here in float64 so that any real difference stands out from
rounding (tolerance 1e-10).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.nets import conv_forms, conv_ops, layers, norm_ops
from jaxgan.nets.dcgan28 import Discriminator28, Generator28

TOL = 1e-10


def _rand(rng, *shape):
  return jnp.asarray(rng.standard_normal(shape), jnp.float64)


def _values_and_grads(modules, params, x, cotangent):
  """[(y, d<y, cot>/dx, d<y, cot>/dparams) for each module], all in one jit (one
  compilation per test case keeps the file fast)."""
  @jax.jit
  def run(params, x, cotangent):
    out = []
    for module in modules:
      y, vjp = jax.vjp(lambda p, x, m=module: m.apply({'params': p}, x), params, x)
      d_params, d_x = vjp(cotangent)
      out.append((y, d_x, d_params))
    return out
  return run(params, x, cotangent)


def _assert_close(a, b):
  chex_a, chex_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(chex_a) == len(chex_b)
  for u, v in zip(chex_a, chex_b):
    assert u.shape == v.shape
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=0, atol=TOL)


def test_resolve_conv_impl():
  for impl in ('xla', 'matmul', 'hybrid'):
    assert conv_ops.resolve_conv_impl(impl) == impl
    assert conv_ops.resolve_conv_impl(impl, transposed=True) == impl
  cpu = jax.default_backend() == 'cpu'
  assert conv_ops.resolve_conv_impl('auto') == ('matmul' if cpu else 'xla')
  assert conv_ops.resolve_conv_impl('auto', transposed=True) == ('hybrid' if cpu else 'xla')
  with pytest.raises(ValueError, match='conv_impl'):
    conv_ops.resolve_conv_impl('fft')


def test_auto_upconv_avoids_xla_conv_when_the_kernel_outgrows_the_image():
  # VT-GAN's first UpConv: 2x2 input, 5x5 stride 2 (3x3 sub-pixel taps). On CPU 'auto'
  # takes the matmul form there (XLA's convolution was ~100x slower); same function.
  rng = np.random.default_rng(0)
  x, k = _rand(rng, 2, 2, 2, 6), _rand(rng, 5, 5, 6, 4)
  prims = lambda x, k: str(jax.make_jaxpr(lambda x, k: conv_ops.conv_transpose(x, k, 2))(x, k))
  if jax.default_backend() == 'cpu':
    assert 'conv_general_dilated' not in prims(x, k)
    assert 'conv_general_dilated' in prims(_rand(rng, 2, 4, 4, 6), k)  # hybrid as before
  with jax.enable_x64(True):
    x, k = _rand(rng, 2, 2, 2, 6), _rand(rng, 5, 5, 6, 4)
    want = jax.lax.conv_transpose(x, k, (2, 2), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    np.testing.assert_allclose(np.asarray(conv_ops.conv_transpose(x, k, 2)), np.asarray(want),
                               rtol=0, atol=TOL)


def test_same_params_as_flax():
  """Conv / UpConv create nn.Conv's / nn.ConvTranspose's parameters: names, shapes,
  and (same key) values."""
  x = jnp.zeros((1, 6, 6, 1))   # tiny kernels: XLA:CPU compiles 4-D random draws slowly
  pairs = [(layers.Conv(2, 4, 2), nn.Conv(2, (4, 4), (2, 2))),
           (layers.Conv(2, 3, 1, use_bias=False), nn.Conv(2, (3, 3), use_bias=False)),
           (layers.UpConv(2, 4, 2), nn.ConvTranspose(2, (4, 4), (2, 2), padding='SAME'))]
  inits = jax.jit(lambda: [(a.init(jax.random.key(0), x), b.init(jax.random.key(0), x))
                           for a, b in pairs])()
  for ours, ref in inits:
    _assert_close(ours, ref)


# Inputs are size x (size + 1): one odd and one even side per case.
@pytest.mark.parametrize('kernel,stride,size', [(4, 2, 5), (4, 2, 6), (5, 2, 5), (3, 2, 6),
                                                (4, 1, 5)])
def test_upconv_equals_flax_conv_transpose(kernel, stride, size):
  """UpConv == nn.ConvTranspose(..., padding='SAME'): values, d/dx, d/dkernel, d/dbias,
  for both UpConv impls and every conv_impl of the sub-pixel form. Two channel counts:
  3 -> 4 takes the sub-pixel im2col, 8 -> 1 the col2im form (overlap_add_conv_transpose)
  in 'matmul' and in 'hybrid''s weight gradient."""
  rng = np.random.default_rng(kernel * 100 + stride * 10 + size)
  with jax.enable_x64(True):
    cases = []
    for c_in, c_out in ((3, 4), (8, 1)):
      x = _rand(rng, 2, size, size + 1, c_in)   # H != W catches a swapped axis
      params = {'kernel': _rand(rng, kernel, kernel, c_in, c_out), 'bias': _rand(rng, c_out)}
      cot = _rand(rng, 2, stride * size, stride * (size + 1), c_out)
      ref = nn.ConvTranspose(c_out, (kernel, kernel), (stride, stride), padding='SAME')
      # Only conv_impl='matmul' switches form with the channel counts.
      variants = ([('subpixel', 'xla'), ('subpixel', 'matmul'), ('subpixel', 'hybrid'),
                   ('transpose', 'auto')]
                  if c_out > 1 else [('subpixel', 'matmul'), ('subpixel', 'hybrid')])
      ours = [layers.UpConv(c_out, kernel, stride, impl=impl, conv_impl=conv_impl)
              for impl, conv_impl in variants]
      cases.append(([ref] + ours, params, x, cot))
    for modules, params, x, cot in cases:
      want, *got = _values_and_grads(modules, params, x, cot)
      assert want[0].shape == cot.shape
      for g in got:
        _assert_close(g, want)


@pytest.mark.parametrize('kernel,size', [(4, 7), (5, 4)])
def test_phases_upconv_equals_flax_conv_transpose(kernel, size):
  """UpConv(impl='phases') == nn.ConvTranspose(..., padding='SAME'), stride 2: values
  and all gradients, per conv_impl. (4, 7): the MNIST generator's 7x7 input (7 x 8
  here), where the sub-pixel form crops 8x8 phase outputs. (A few-output layer keeps
  the sub-pixel form, tested above.)"""
  rng = np.random.default_rng(20 + kernel)
  with jax.enable_x64(True):
    x = _rand(rng, 2, size, size + 1, 3)
    params = {'kernel': _rand(rng, kernel, kernel, 3, 4), 'bias': _rand(rng, 4)}
    cot = _rand(rng, 2, 2 * size, 2 * (size + 1), 4)
    ref = nn.ConvTranspose(4, (kernel, kernel), (2, 2), padding='SAME')
    # 'hybrid' (the CPU default) everywhere; the other two on the MNIST geometry only.
    conv_impls = ('xla', 'matmul', 'hybrid') if kernel == 4 else ('hybrid',)
    ours = [layers.UpConv(4, kernel, 2, impl='phases', conv_impl=c) for c in conv_impls]
    jaxpr = jax.make_jaxpr(lambda x, k: conv_ops.conv_transpose(x, k, 2, 'hybrid', form='phases'))
    assert str(jaxpr(x, params['kernel'])).count('conv_general_dilated') == 4  # one per phase
    want, *got = _values_and_grads([ref] + ours, params, x, cot)
    for g in got:
      _assert_close(g, want)


def test_overlap_add_conv_transpose_equals_lax():
  """The col2im form alone, for every (K, s) used and a few odd ones."""
  rng = np.random.default_rng(8)
  with jax.enable_x64(True):
    for k, s in [(4, 2), (5, 2), (3, 2), (4, 1), (5, 3), (2, 2)]:
      x, w = _rand(rng, 2, 5, 6, 3), _rand(rng, k, k, 3, 2)
      want = jax.lax.conv_transpose(x, w, (s, s), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
      _assert_close(conv_forms.overlap_add_conv_transpose(x, w, s), want)


@pytest.mark.parametrize('kernel,stride,padding', [
    (4, 2, 'SAME'), (5, 2, 'SAME'), (3, 1, 'SAME'), (4, 1, 'VALID'), (3, 2, ((0, 2), (1, 0)))])
def test_conv_equals_flax_conv(kernel, stride, padding):
  """Conv == nn.Conv: values and both gradients, for every conv_impl."""
  rng = np.random.default_rng(kernel * 10 + stride)
  with jax.enable_x64(True):
    x = _rand(rng, 3, 9, 10, 5)
    params = {'kernel': _rand(rng, kernel, kernel, 5, 6), 'bias': _rand(rng, 6)}
    ref = nn.Conv(6, (kernel, kernel), (stride, stride), padding=padding)
    y_shape = jax.eval_shape(lambda: ref.apply({'params': params}, x)).shape
    cot = _rand(rng, *y_shape)
    ours = [layers.Conv(6, kernel, stride, padding=padding, conv_impl=c)
            for c in ('xla', 'matmul', 'hybrid')]
    want, *got = _values_and_grads([ref] + ours, params, x, cot)
    for g in got:
      _assert_close(g, want)


def test_conv2d_single_channel_input():
  """The D's first layer: 1 input channel, im2col rows of kh*kw values."""
  rng = np.random.default_rng(7)
  with jax.enable_x64(True):
    x, w = _rand(rng, 2, 28, 28, 1), _rand(rng, 4, 4, 1, 8)
    want = jax.lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (1, 1)),
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    _assert_close(conv_ops.conv2d(x, w, 2, 'SAME', 'matmul'), want)


def test_dcgan28_conv_impls_agree():
  """Generator28 / Discriminator28 compute the same function with either conv_impl,
  and D keeps nn.Conv's parameter names (float32: this checks the plumbing)."""
  rng = np.random.default_rng(3)
  z = jnp.asarray(rng.standard_normal((2, 100)), jnp.float32)
  x = jnp.asarray(rng.standard_normal((2, 28, 28, 1)), jnp.float32)
  nets = {c: (Generator28(base_width=16, conv_impl=c),
              Discriminator28(feature_dim=5, width=8, conv_impl=c)) for c in ('xla', 'auto')}
  gen, disc = nets['xla']
  gv, dv = jax.jit(lambda: (gen.init(jax.random.key(0), z, train=False),
                            disc.init(jax.random.key(1), x, train=False)))()
  assert set(dv['params']) == {'Conv_0', 'Conv_1', 'BatchNorm_0', 'Dense_0', 'Dense_1'}
  assert set(dv['params']['Conv_1']) == {'kernel'}   # no bias before BatchNorm
  outs = jax.jit(lambda: {c: (g.apply(gv, z, train=False), d.apply(dv, x, train=False))
                          for c, (g, d) in nets.items()})()
  for a, b in zip(jax.tree.leaves(outs['xla']), jax.tree.leaves(outs['auto'])):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def _bn_apply(bn, variables, x):
  y, upd = bn.apply(variables, x, mutable=['batch_stats'])
  return y, upd['batch_stats']


def test_grouped_batchnorm_equals_separate_calls():
  """num_groups=2 on concat([a, b]) normalises a and b with their own statistics; its
  running statistics are the mean of the two separate calls' updates."""
  rng = np.random.default_rng(4)
  with jax.enable_x64(True):
    a, b = _rand(rng, 5, 3, 4, 6), 3.0 + 2.0 * _rand(rng, 5, 3, 4, 6)
    grouped = layers.BatchNorm(num_groups=2, momentum=0.9)
    single = layers.BatchNorm(num_groups=1, momentum=0.9)
    variables = {'params': {'scale': _rand(rng, 6), 'bias': _rand(rng, 6)},
                 'batch_stats': {'mean': _rand(rng, 6), 'var': 1.0 + jnp.abs(_rand(rng, 6))}}
    y, stats = _bn_apply(grouped, variables, jnp.concatenate([a, b]))
    y_a, stats_a = _bn_apply(single, variables, a)
    y_b, stats_b = _bn_apply(single, variables, b)
    _assert_close(y, jnp.concatenate([y_a, y_b]))
    _assert_close(stats, jax.tree.map(lambda u, v: (u + v) / 2, stats_a, stats_b))


def test_batchnorm_matches_flax_and_tracks_unbiased_variance():
  """num_groups=1 == nn.BatchNorm (same params) in the output and the running mean;
  the running variance tracks the *unbiased* batch variance, as PyTorch does (flax
  tracks the biased one)."""
  rng = np.random.default_rng(5)
  with jax.enable_x64(True):
    x = 1.0 + _rand(rng, 4, 3, 5, 6)
    momentum, eps = 0.9, 1e-5
    ours = layers.BatchNorm(momentum=momentum, epsilon=eps)
    ref = nn.BatchNorm(use_running_average=False, momentum=momentum, epsilon=eps,
                       param_dtype=jnp.float64)
    variables = {'params': {'scale': _rand(rng, 6), 'bias': _rand(rng, 6)},
                 'batch_stats': {'mean': _rand(rng, 6), 'var': 1.0 + jnp.abs(_rand(rng, 6))}}
    assert jax.tree.structure(ours.init(jax.random.key(0), x)) == \
        jax.tree.structure(ref.init(jax.random.key(0), x))
    y, stats = _bn_apply(ours, variables, x)
    y_ref, stats_ref = _bn_apply(ref, variables, x)
    _assert_close(y, y_ref)
    _assert_close(stats['mean'], stats_ref['mean'])
    n = x.size // x.shape[-1]
    xs = np.asarray(x).reshape(-1, 6)
    want_var = momentum * variables['batch_stats']['var'] + (1 - momentum) * xs.var(0, ddof=1)
    _assert_close(stats['var'], want_var)
    # ... which is flax's biased update with the batch variance scaled by n / (n - 1).
    biased = (stats_ref['var'] - momentum * variables['batch_stats']['var']) / (1 - momentum)
    _assert_close(stats['var'], momentum * variables['batch_stats']['var']
                  + (1 - momentum) * biased * n / (n - 1))
    # Evaluation mode normalises with the running statistics, as flax does.
    ours_eval = layers.BatchNorm(use_running_average=True, epsilon=eps)
    ref_eval = nn.BatchNorm(use_running_average=True, epsilon=eps, param_dtype=jnp.float64)
    _assert_close(ours_eval.apply(variables, x), ref_eval.apply(variables, x))




def _bn_reference(x, scale, bias, num_groups, eps):
  """Grouped batch norm as written in the textbook, float64: per group of consecutive
  examples, the mean and the (two-pass) biased variance per channel."""
  c = x.shape[-1]
  xs = x.reshape(num_groups, -1, c)
  mean = xs.mean(1, keepdims=True)
  var = jnp.square(xs - mean).mean(1, keepdims=True)
  y = (xs - mean) / jnp.sqrt(var + eps) * scale + bias
  return y.reshape(x.shape), mean[:, 0], var[:, 0]


def test_batch_norm_vjp_equals_reference():
  """norm_ops.batch_norm_train: (y, mean, var) and the gradients of all three (their
  cotangents random) w.r.t. x, scale and bias, against autodiff of the float64 formula;
  one and two groups, and a [N, C] input."""
  rng = np.random.default_rng(11)
  with jax.enable_x64(True):
    cases = []
    for shape, num_groups in (((6, 3, 4, 5), 1), ((6, 3, 4, 5), 2), ((8, 5), 1)):
      args = (2.0 + 3.0 * _rand(rng, *shape), _rand(rng, shape[-1]), _rand(rng, shape[-1]))
      cot = (_rand(rng, *shape), _rand(rng, num_groups, shape[-1]),
             _rand(rng, num_groups, shape[-1]))
      cases.append((num_groups, args, cot))

    @jax.jit
    def run(arrays):
      out = []
      for (num_groups, _, _), (args, cot) in zip(cases, arrays):
        for f in (lambda *a: norm_ops.batch_norm_train(*a, num_groups, 1e-5),
                  lambda *a: _bn_reference(*a, num_groups, 1e-5)):
          y, vjp = jax.vjp(f, *args)
          out.append((y, vjp(cot)))
      return out
    out = run([(args, cot) for _, args, cot in cases])
    for got, want in zip(out[::2], out[1::2]):
      _assert_close(got, want)


def test_batch_norm_vjp_bfloat16_input():
  """bfloat16 x: statistics in float32, y float32 (layers.BatchNorm casts), dx bfloat16;
  within bfloat16 rounding of the float64 reference on the same values."""
  rng = np.random.default_rng(12)
  x16 = jnp.asarray(1.0 + 2.0 * rng.standard_normal((8, 3, 3, 4)), jnp.bfloat16)
  scale = jnp.asarray(rng.standard_normal(4), jnp.float32)
  bias = jnp.asarray(rng.standard_normal(4), jnp.float32)
  dy = jnp.asarray(rng.standard_normal(x16.shape), jnp.float32)
  zeros = jnp.zeros((2, 4), jnp.float32)
  @jax.jit
  def run(x16, scale, bias):
    y, vjp = jax.vjp(lambda *a: norm_ops.batch_norm_train(*a, 2, 1e-5), x16, scale, bias)
    return y, vjp((dy, zeros, zeros))
  y, grads = run(x16, scale, bias)
  assert y[0].dtype == jnp.float32 and grads[0].dtype == jnp.bfloat16
  with jax.enable_x64(True):
    as64 = lambda a: jnp.asarray(np.asarray(a, np.float64))
    cot = tuple(map(as64, (dy, zeros, zeros)))

    @jax.jit
    def ref(x, scale, bias):
      y, vjp = jax.vjp(lambda *a: _bn_reference(*a, 2, 1e-5), x, scale, bias)
      return y, vjp(cot)
    y_ref, grads_ref = ref(as64(x16.astype(jnp.float32)), as64(scale), as64(bias))
  for a, b, tol in [(y[0], y_ref[0], 1e-5), (grads[0], grads_ref[0], 2e-2),
                    (grads[1], grads_ref[1], 1e-4), (grads[2], grads_ref[2], 1e-4)]:
    b = np.asarray(b)
    np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=0, atol=tol * np.abs(b).max())


def test_batchnorm_impls_agree(num_groups=2):
  """BatchNorm(impl='vjp') == impl='autodiff': output, running statistics and the
  gradients w.r.t. x and the parameters (float64)."""
  rng = np.random.default_rng(13)
  with jax.enable_x64(True):
    x = 1.0 + _rand(rng, 6, 3, 4, 5)
    cot = _rand(rng, 6, 3, 4, 5)
    variables = {'params': {'scale': _rand(rng, 5), 'bias': _rand(rng, 5)},
                 'batch_stats': {'mean': _rand(rng, 5), 'var': 1.0 + jnp.abs(_rand(rng, 5))}}

    @jax.jit
    def run(params, x):
      out = []
      for impl in ('autodiff', 'vjp'):
        bn = layers.BatchNorm(num_groups=num_groups, impl=impl)
        f = lambda p, x, bn=bn: _bn_apply(bn, {**variables, 'params': p}, x)
        (y, stats), vjp = jax.vjp(f, params, x)
        out.append((y, stats, vjp((cot, jax.tree.map(jnp.zeros_like, stats)))))
      return out
    want, got = run(variables['params'], x)
    _assert_close(got, want)


# (nets.dcgan builds its norms with dcgan28's helpers, as Generator28 does.)
@pytest.mark.parametrize('name,shape', [('dcgan28', (28, 28, 1)), ('acgan', (16, 16, 1))])
def test_bn_impl_reaches_every_batchnorm(name, shape):
  """model.bn_impl='vjp' puts norm_ops.batch_norm_train in every training-mode
  BatchNorm of G and D (traced only), 'autodiff' in none."""
  from configs import default  # pylint: disable=g-import-not-at-top
  from jaxgan import nets  # pylint: disable=g-import-not-at-top
  counts = {}
  for impl in ('autodiff', 'vjp'):
    m = default.get_config().model
    m.update(name=name, bn_impl=impl, gen_width=16, disc_width=8,
             num_classes=10 if name == 'acgan' else 0, disc_width_mult=0.25)
    gen, disc = nets.build_networks(m, shape, m.num_classes or None)
    z, x = jnp.zeros((4, 100)), jnp.zeros((4,) + shape)
    g_args = (z, jnp.zeros((4,), jnp.int32)) if name == 'acgan' else (z,)
    run = lambda gv, dv: (gen.apply(gv, *g_args, mutable=['batch_stats']),
                          disc.apply(dv, x, num_groups=2, mutable=['batch_stats']))
    variables = jax.eval_shape(lambda: (gen.init(jax.random.key(0), *g_args),
                                        disc.init(jax.random.key(1), x)))
    counts[impl] = str(jax.make_jaxpr(run)(*variables)).count('batch_norm_train')
  # G: dcgan28 2, acgan 3 BatchNorms; D: dcgan28 1, acgan 4.
  assert counts == {'autodiff': 0, 'vjp': {'dcgan28': 3, 'acgan': 7}[name]}
