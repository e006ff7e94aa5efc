"""The R1 penalty (Mescheder et al. 2018) against a float64 loop over examples.

The 2-D toy D is D(x) = relu(x K1 + b1) K2 + b2, whose input gradient has the closed
form  grad_x D(x) = K1 (K2 * [x K1 + b1 > 0]),  so the reference needs no autodiff.
"""
import jax
import numpy as np
import pytest

from jaxgan import penalties, systems
from tests import golden
from tests.solo import solo_step

SHAPE = (2,)


def _r1_64(params, x):
  """0.5 mean_i |grad_x D(x_i)|^2, example by example, in float64."""
  k1 = np.asarray(params['Dense_0']['kernel'], np.float64)
  b1 = np.asarray(params['Dense_0']['bias'], np.float64)
  k2 = np.asarray(params['Dense_1']['kernel'], np.float64)[:, 0]
  total = 0.0
  for xi in np.asarray(x, np.float64):
    g = k1 @ (k2 * (xi @ k1 + b1 > 0))
    total += g @ g
  return 0.5 * total / len(x)


def _setup(r1_weight):
  config = golden.tiny_config('toy2d')
  config.train.r1_weight = r1_weight
  systems.validate(config)
  models = systems.build_models(config, SHAPE)
  return config, models


def test_r1_penalty_and_its_parameter_gradient_match_float64():
  config, models = _setup(1.0)
  params = systems.create_state(config, models, SHAPE).disc.params
  x = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)

  def r1(p):
    return penalties.r1_penalty(lambda v: models.disc.apply({'params': p}, v)[0], x)
  np.testing.assert_allclose(float(r1(params)), _r1_64(params, x), rtol=1e-5)
  # d R1 / d K2 by central differences of the float64 loop (R1 is quadratic in K2).
  grad = np.asarray(jax.grad(r1)(params)['Dense_1']['kernel'])
  eps = 1e-4
  for j in (0, 3, 7):
    up, down = (jax.tree.map(lambda a: np.array(a, np.float64), params) for _ in range(2))
    up['Dense_1']['kernel'][j, 0] += eps
    down['Dense_1']['kernel'][j, 0] -= eps
    fd = (_r1_64(up, x) - _r1_64(down, x)) / (2 * eps)
    np.testing.assert_allclose(grad[j, 0], fd, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('gamma', [5.0])
def test_r1_enters_the_d_loss_on_the_steps_real_batch_with_its_weight(gamma):
  config, models = _setup(gamma)
  before = systems.create_state(config, models, SHAPE)
  real = np.random.default_rng(1).normal(size=(1, golden.BATCH, 2)).astype(np.float32)
  after, m = solo_step(config, models)(systems.create_state(config, models, SHAPE),
                                       {'images': real})
  np.testing.assert_allclose(float(m['r1']), _r1_64(before.disc.params, real[0]), rtol=1e-5)
  np.testing.assert_allclose(float(m['d_loss']), float(m['d_adv']) + gamma * float(m['r1']),
                             rtol=1e-5)
  # Without it (gamma 0), D's update is another.
  config0, models0 = _setup(0.0)
  plain, m0 = solo_step(config0, models0)(systems.create_state(config0, models0, SHAPE),
                                          {'images': real})
  assert 'r1' not in m0
  assert not np.allclose(plain.disc.params['Dense_0']['kernel'],
                         after.disc.params['Dense_0']['kernel'])
