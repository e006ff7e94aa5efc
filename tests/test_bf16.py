"""Mixed precision (config.model.compute_dtype = 'bfloat16'): bf16 compute, float32
parameters, optimiser state, BatchNorm statistics, network outputs, losses, MMD^2 and
gradient penalty.

Tolerances. bfloat16 keeps 8 significant bits, so each product or activation carries a
relative rounding error of up to 2^-9 ~ 0.2%; through the 4-6 layers of these
networks (float32 accumulation in every matmul) the logits and features differ from
float32 by ~0.5-1%, and a loss that averages them by about as much. After a few Adam
steps (lr 2e-4: parameters move by ~2e-4 per step, in nearly the same direction in
both dtypes) the losses still differ by that forward rounding, not by diverged
training. So losses are compared with rtol 3% + atol 2e-3 (the atol for terms that
are near zero, such as MMD^2 ~ 0.05 and the gradient penalty): a factor ~3 of margin
over the ~1% seen, far below the O(1) changes a dtype bug (a float32 op silently run in
bf16 accumulation, a wrong cast of the logits) produces.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import penalties, systems
from jaxgan.config_util import load_config_file
from jaxgan.nets import conv_forms, conv_ops, layers
from tests.conftest import REPO, tiny_config
from tests.solo import solo_step

RTOL, ATOL = 3e-2, 2e-3


def _run_steps(config, shape, n_steps=3):
  """n_steps of the config's compiled step on fixed random pixels -> (state, [metrics])."""
  models = systems.build_models(config, shape)
  state = systems.create_state(config, models, shape)
  step = solo_step(config, models)
  rng = np.random.RandomState(0)
  history = []
  for _ in range(n_steps):
    images = rng.randint(0, 256, (config.train.n_disc, config.data.batch_size) + shape)
    state, metrics = step(state, {'images': images.astype(np.uint8)})
    history.append(jax.device_get(metrics))
  return state, history


def _assert_float32_state(state):
  """Parameters, optimiser state and BatchNorm statistics are all float32."""
  for part in (state.gen, state.disc):
    for name, tree in (('params', part.params), ('opt_state', part.opt_state),
                       ('batch_stats', part.batch_stats)):
      floats = [x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
      assert floats or name == 'batch_stats', name  # a LayerNorm critic has no batch_stats
      assert all(d == jnp.float32 for d in floats), (name, set(map(str, floats)))


def _compare(config32, config16, shape, keys):
  state32, hist32 = _run_steps(config32, shape)
  state16, hist16 = _run_steps(config16, shape)
  _assert_float32_state(state16)
  for m32, m16 in zip(hist32, hist16):
    for k in keys:
      assert np.isfinite(m16[k]), (k, m16[k])
      np.testing.assert_allclose(m16[k], m32[k], rtol=RTOL, atol=ATOL, err_msg=k)
  # The dtype must change the computation (else this test compares float32 with itself).
  assert any(m16[k] != m32[k] for m32, m16 in zip(hist32, hist16) for k in keys)


def test_mmd_dcgan_bf16_steps_close_to_float32():
  _compare(tiny_config(), tiny_config(**{'model.compute_dtype': 'bfloat16'}), (28, 28, 1),
           ('d_loss', 'g_loss', 'mmd2', 'd_real', 'd_fake'))


def _tiny_wgan_gp(dtype):
  config = load_config_file(REPO / 'configs' / 'wgan_gp.py')
  config.model.update(gen_width=16, disc_width=8, feature_dim=4, compute_dtype=dtype)
  config.data.batch_size = 8
  return config


def test_wgan_gp_bf16_steps_close_to_float32():
  _compare(_tiny_wgan_gp('float32'), _tiny_wgan_gp('bfloat16'), (28, 28, 1),
           ('d_loss', 'g_loss', 'gp', 'd_real', 'd_fake'))


def test_network_outputs_are_float32_in_bf16():
  """The losses, MMD^2 and the penalty read float32 logits, features and images."""
  config = tiny_config(**{'model.compute_dtype': 'bfloat16'})
  models = systems.build_models(config, (28, 28, 1))
  state = systems.create_state(config, models, (28, 28, 1))
  z = jnp.zeros((4, config.model.latent_dim))
  v = {'params': state.gen.params, 'batch_stats': state.gen.batch_stats}
  images = models.gen.apply(v, z, train=False)
  v = {'params': state.disc.params, 'batch_stats': state.disc.batch_stats}
  logit, feats = models.disc.apply(v, images, train=False)
  assert images.dtype == logit.dtype == feats.dtype == jnp.float32
  # ... while the layers inside compute in bfloat16.
  jaxpr = jax.make_jaxpr(lambda x: models.disc.apply(v, x, train=False))(images)
  assert any(str(var.aval.dtype) == 'bfloat16' for eqn in jaxpr.jaxpr.eqns for var in eqn.outvars)


def test_gradient_penalty_is_float32_for_a_bf16_critic():
  """The interpolates, the input gradient and the norm stay float32 (the critic casts
  to bf16 inside): the penalty of a linear critic keeps its analytic value."""
  w = jnp.full((2, 2, 1), 0.25)
  seen = []

  def critic(x):
    seen.append(x.dtype)
    return jnp.sum(x.astype(jnp.bfloat16) * w.astype(jnp.bfloat16), axis=(1, 2, 3))

  gp = penalties.gradient_penalty(critic, jnp.zeros((4, 2, 2, 1), jnp.bfloat16),
                                  jnp.ones((4, 2, 2, 1), jnp.bfloat16), jax.random.key(0))
  assert gp.dtype == jnp.float32 and set(seen) == {jnp.dtype(jnp.float32)}
  np.testing.assert_allclose(gp, 0.25, rtol=1e-6)  # |grad| = 0.5 -> (0.5 - 1)^2


DOTS = [((5, 7), (7, 3), (((1,), (0,)), ((), ()))),              # x @ W
        ((2, 4, 5, 6), (6, 3), (((3,), (0,)), ((), ()))),          # NHWC @ W (im2col rows)
        ((4, 3, 2, 6), (4, 3, 2, 5), (((0, 1, 2), (0, 1, 2)), ((), ()))),  # weight gradient
        ((3, 5, 4, 2), (3, 2, 6, 4), (((2, 3), (3, 1)), ((0,), (0,))))]   # batch, permuted


@pytest.mark.parametrize('a_shape,b_shape,dims', DOTS)
def test_lowp_dot_gradients_match_float32(a_shape, b_shape, dims):
  """conv_forms.dot in bf16: value, both gradients and a second derivative (the gradient
  penalty differentiates the critic twice) within bf16 rounding of float32; and its
  gradient products are themselves bf16 x bf16 -> float32 (not float32 matmuls)."""
  rng = np.random.RandomState(0)
  a = jnp.asarray(rng.randn(*a_shape), jnp.float32)
  b = jnp.asarray(rng.randn(*b_shape), jnp.float32)
  f32 = lambda a, b: jax.lax.dot_general(a, b, dims)
  bf16 = lambda a, b: conv_forms.dot(a.astype(jnp.bfloat16), b.astype(jnp.bfloat16),
                                    dims).astype(jnp.float32)
  y = f32(a, b)
  g = jnp.asarray(rng.randn(*y.shape), jnp.float32)
  scale = lambda x: float(jnp.max(jnp.abs(x)))
  np.testing.assert_allclose(jax.jit(bf16)(a, b), y, atol=2e-2 * scale(y))
  vjp = jax.jit(lambda a, b, g, f: jax.vjp(f, a, b)[1](g), static_argnums=3)
  for want, got in zip(vjp(a, b, g, f32), vjp(a, b, g, bf16)):
    np.testing.assert_allclose(got, want, atol=2e-2 * scale(want))
  second = lambda f: jax.jit(jax.grad(
      lambda a: jnp.sum(jax.grad(lambda b: jnp.sum(jnp.sin(f(a, b))))(b) ** 2)))(a)
  want = second(f32)
  np.testing.assert_allclose(second(bf16), want, atol=6e-2 * scale(want))
  if jax.default_backend() == 'cpu':
    jaxpr = jax.make_jaxpr(lambda a, b, g: jax.vjp(bf16, a, b)[1](g))(a, b, g)
    dots = []

    def walk(j):
      for eqn in j.eqns:
        if eqn.primitive.name == 'dot_general':
          dots.append(tuple(str(v.aval.dtype) for v in eqn.invars))
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
          walk(sub)
    walk(jaxpr.jaxpr)
    assert len(dots) == 3 and set(dots) == {('bfloat16', 'bfloat16')}, dots


@pytest.mark.parametrize('impl', conv_ops.CONV_IMPLS)
def test_every_conv_impl_runs_in_bf16(impl):
  """conv2d and conv_transpose, values and both gradients, in bf16 for every conv_impl,
  within bf16 rounding of the float32 'xla' result."""
  rng = np.random.RandomState(1)
  cases = [(lambda x, w, i: conv_ops.conv2d(x, w, 2, 'SAME', i), (4, 14, 14, 8), (4, 4, 8, 16)),
           (lambda x, w, i: conv_ops.conv_transpose(x, w, 2, i), (4, 7, 7, 16), (4, 4, 16, 8)),
           (lambda x, w, i: conv_ops.conv_transpose(x, w, 2, i), (4, 7, 7, 16), (4, 4, 16, 1))]
  for fn, x_shape, w_shape in cases:
    x = jnp.asarray(rng.randn(*x_shape), jnp.float32)
    w = jnp.asarray(0.1 * rng.randn(*w_shape), jnp.float32)

    def loss(x, w, i, dtype):
      y = fn(x.astype(dtype), w.astype(dtype), i)
      assert y.dtype == dtype
      return jnp.sum(jnp.sin(y.astype(jnp.float32)))

    want = jax.value_and_grad(loss, (0, 1))(x, w, 'xla', jnp.float32)
    got = jax.jit(jax.value_and_grad(loss, (0, 1)), static_argnums=(2, 3))(x, w, impl, jnp.bfloat16)
    for wv, gv in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
      assert gv.dtype == jnp.float32  # gradients wrt the float32 inputs come back float32
      np.testing.assert_allclose(gv, wv, atol=3e-2 * float(jnp.max(jnp.abs(wv))) + 1e-3)
