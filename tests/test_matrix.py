"""Network x adversarial loss x penalty, two steps each (compare_gan's test matrix).

The penalties are one program's members: a sweep over train.gp_weight and
train.r1_weight gives the members none, gradient penalty, R1 and both, so one
compilation per (network, loss) covers the penalty axis, and each member's D loss must
be its own weighted sum of the terms every member computes.

The full product runs on the 2-D toy networks, whose steps compile fastest; PacGAN's
2-D networks and the MNIST DCGAN run one loss that no config of theirs trains, since a
penalised sweep step of a convolutional network takes half a minute to compile on CI's
two cores. tests/golden.py runs every config's own loss (the maxout MLP's included);
AC-GAN's D has BatchNorm, so it takes no penalty.
"""
import jax
import numpy as np
import pytest

from jaxgan import sweep, systems
from jaxgan.config_util import load_config_file
from tests.conftest import REPO

# network -> (data shape, model fields at tiny widths).
NETWORKS = {
    'dcgan28': ((28, 28, 1), dict(gen_width=8, disc_width=4, feature_dim=4, disc_norm='layer')),
    'toy': ((2,), dict(hidden=8, gen_norm='none')),
    'toy_pacgan': ((2,), dict(hidden=8, maxout_units=8)),
}
LOSSES = {  # (d_loss, g_loss, clip)
    'non_saturating': ('bce', 'non_saturating', 0.0),
    'minimax': ('bce', 'minimax', 0.0),
    'wasserstein_clip': ('wasserstein', 'wasserstein', 0.01),
}
PENALTIES = 'train.gp_weight=0,2; train.r1_weight=0,3'


def _config(network, loss):
  shape, model = NETWORKS[network]
  config = load_config_file(REPO / 'configs' / 'default.py')
  config.model.update(name=network, **model)
  d_loss, g_loss, clip = LOSSES[loss]
  config.train.update(d_loss=d_loss, g_loss=g_loss, clip=clip)
  config.data.batch_size = 8
  config.sweep = PENALTIES
  return config, shape


CASES = ([('toy', loss) for loss in sorted(LOSSES)]
         + [('toy_pacgan', 'minimax'), ('dcgan28', 'minimax')])


@pytest.mark.parametrize('network,loss', CASES)
def test_two_steps_of_network_loss_and_penalty(network, loss):
  config, shape = _config(network, loss)
  members = sweep.members(config)
  for m in members:
    systems.validate(m.config)
  models = systems.build_models(config, shape)
  step = systems.compile_step(config, models)
  first = [systems.create_state(m.config, models, shape) for m in members]
  states = sweep.stack(first)
  rng = np.random.default_rng(0)
  for _ in range(2):
    if len(shape) == 1:
      batch = {'images': rng.normal(size=(1, 8) + shape).astype(np.float32)}
    else:
      batch = {'images': rng.integers(0, 256, (1, 8) + shape).astype(np.uint8)}
    states, metrics = step(states, batch)
  metrics = {k: np.asarray(v) for k, v in metrics.items()}
  assert all(np.isfinite(v).all() for v in metrics.values()), metrics
  assert np.asarray(states.step).tolist() == [2] * len(members)
  for i, m in enumerate(members):
    t = m.config.train
    want = metrics['d_adv'][i] + t.gp_weight * metrics['gp'][i] + t.r1_weight * metrics['r1'][i]
    np.testing.assert_allclose(metrics['d_loss'][i], want, rtol=1e-5, atol=1e-6)
    after = sweep.unstack(states, i)
    for net in ('gen', 'disc'):
      moved = [not np.allclose(a, b) for a, b in
               zip(_leaves(getattr(first[i], net).params), _leaves(getattr(after, net).params))]
      assert any(moved), f'{m.name}: {net} did not train'
  # Members (gp, r1) = (0, 0), (0, 3), (2, 0), (2, 3): each penalty changes D's update.
  d = [_leaves(sweep.unstack(states, i).disc.params) for i in range(len(members))]
  for i in (1, 2):
    assert any(not np.array_equal(a, b) for a, b in zip(d[0], d[i])), members[i].name


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]
