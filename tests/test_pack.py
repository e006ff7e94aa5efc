"""Packing (PacGAN: model.pack) and PacGAN's 2-D networks (configs/toy2d_pacgan.py)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import nets, systems
from jaxgan.config_util import load_config_file
from jaxgan.data import toy
from jaxgan.errors import UserError
from jaxgan.nets.pack import Packed, pack
from tests.conftest import REPO
from tests.solo import solo_step


class Spy(nn.Module):
  """A discriminator that records the batch it receives and returns it as its features."""

  @nn.compact
  def __call__(self, x, train=True, num_groups=1):
    self.sow('intermediates', 'input', x)
    flat = x.reshape(x.shape[0], -1)
    return flat.sum(-1), flat


def _spy_input(m, x, num_groups=1):
  (logit, feats), inter = Packed(Spy(), m).apply({}, x, num_groups=num_groups,
                                                 mutable=['intermediates'])
  return logit, feats, np.asarray(inter['intermediates']['input'][0])


def _reference_pack(x, m):
  """Pack i = x[m*i], ..., x[m*i+m-1] concatenated along the last axis (numpy)."""
  return np.stack([np.concatenate([x[m * i + j] for j in range(m)], axis=-1)
                   for i in range(len(x) // m)])


def _dcgan28(pack_field=1):
  model = load_config_file(REPO / 'configs' / 'default.py').model
  model.update(name='dcgan28', latent_dim=8, gen_width=8, feature_dim=4, disc_width=4,
               pack=pack_field)
  return model


def _pacgan_config(**model):
  config = load_config_file(REPO / 'configs' / 'toy2d_pacgan.py')
  config.model.update(model)
  return config


@pytest.mark.parametrize('shape,m,packed', [((12, 4, 5, 3), 3, (4, 4, 5, 9)),
                                            ((12, 2), 2, (6, 4)), ((12, 2), 4, (3, 8))])
def test_packed_d_sees_packs_in_order(shape, m, packed):
  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  logit, feats, seen = _spy_input(m, jnp.asarray(x))
  assert seen.shape == packed
  assert logit.shape == (shape[0] // m,) and feats.shape == (shape[0] // m, np.prod(packed[1:]))
  # Pack i holds samples m*i .. m*i+m-1, in that order, along the last axis.
  np.testing.assert_array_equal(seen, _reference_pack(x, m))
  np.testing.assert_array_equal(pack(jnp.asarray(x), m), seen)


def test_grouped_call_packs_real_and_fake_apart():
  real = np.arange(1, 13, dtype=np.float32).reshape(6, 2)     # positive
  fake = -real                                                   # negative
  _, _, seen = _spy_input(3, jnp.concatenate([real, fake]), num_groups=2)
  assert seen.shape == (4, 6)
  assert (seen[:2] > 0).all() and (seen[2:] < 0).all()
  np.testing.assert_array_equal(seen, _reference_pack(np.concatenate([real, fake]), 3))
  # Halves of 3 cannot be packed 2 at a time without mixing real and fake.
  with pytest.raises(ValueError, match='within each group'):
    _spy_input(2, jnp.zeros((6, 2)), num_groups=2)
  with pytest.raises(ValueError, match='within each group'):
    _spy_input(4, jnp.zeros((6, 2)))


@pytest.mark.parametrize('mode', ['grouped', 'separate'])
def test_disc_pair_splits_packed_outputs_into_real_and_fake(mode):
  """The step's D call hands back N/m real packs and N/m fake packs."""
  from jaxgan import steps  # pylint: disable=g-import-not-at-top
  real = jnp.arange(1, 13, dtype=jnp.float32).reshape(6, 2)
  ro, fo, _ = steps.disc_pair(Packed(Spy(), 3), {}, {}, real, -real, mode=mode, rngs={})
  assert ro['logit'].shape == fo['logit'].shape == (2,)
  assert (ro['features'] > 0).all() and (fo['features'] < 0).all()


def test_grouped_batchnorm_d_equals_separate_calls_when_packed():
  """A packed DCGAN D with grouped BatchNorm on concat([real, fake]) gives what it gives
  on the real and the fake batch alone: each group's packs are normalised together."""
  _, disc = nets.build_networks(_dcgan28(pack_field=2), (28, 28, 1))
  assert isinstance(disc, Packed)
  rng = np.random.default_rng(0)
  real = jnp.asarray(rng.uniform(-1, 1, (6, 28, 28, 1)), jnp.float32)
  fake = jnp.asarray(rng.uniform(-1, 1, (6, 28, 28, 1)), jnp.float32)
  v = disc.init(jax.random.key(0), jnp.zeros((4, 28, 28, 1)), train=False)
  run = lambda x, g: disc.apply(v, x, train=True, num_groups=g, mutable=['batch_stats'])[0]
  both = run(jnp.concatenate([real, fake]), 2)
  assert both[0].shape == (6,) and both[1].shape == (6, 4)
  for part, sl in ((real, slice(0, 3)), (fake, slice(3, 6))):
    alone = run(part, 1)
    np.testing.assert_allclose(both[0][sl], alone[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(both[1][sl], alone[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('model,shape', [(_dcgan28, (28, 28, 1)),
                                         (lambda pack_field=None: _pacgan_config(
                                             **({} if pack_field is None else {'pack': pack_field})
                                         ).model, (2,))])
def test_pack_1_is_the_plain_discriminator(model, shape):
  _, plain = nets.build_networks(model(), shape)
  _, one = nets.build_networks(model(pack_field=1), shape)
  assert not isinstance(one, Packed) and one == plain
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (4,) + shape), jnp.float32)
  va = plain.init(jax.random.key(0), x, train=False)
  vb = one.init(jax.random.key(0), x, train=False)
  jax.tree.map(np.testing.assert_array_equal, va, vb)
  np.testing.assert_array_equal(plain.apply(va, x, train=False)[0], one.apply(vb, x, train=False)[0])
  # A packed D keeps the plain one's parameter names (only the input width grows).
  _, two = nets.build_networks(model(pack_field=2), shape)
  vc = two.init(jax.random.key(0), jnp.concatenate([x, x]), train=False)
  assert jax.tree.structure(vc) == jax.tree.structure(va)


def _one_line(err):
  text = str(err.value)
  assert '\n' not in text, text
  return text


def test_validate_rejects_bad_packing():
  systems.validate(_pacgan_config(pack=4))                       # 100 = 25 packs of 4
  for overrides, match in (({'pack': 0}, 'integer >= 1'),
                           ({'pack': 3}, r'data.batch_size \(100\) must be divisible'),
                           ({'pack': 2, 'num_classes': 10}, 'unconditional'),
                           ({'pack': 2}, 'gp_weight')):
    config = _pacgan_config(**overrides)
    if match == 'gp_weight':
      config.train.gp_weight = 10.0
    with pytest.raises(UserError, match=match) as err:
      systems.validate(config)
    _one_line(err)
  # The minibatch layer is checked for the toy D as for VT-GAN's.
  config = _pacgan_config(minibatch_kernels=5)
  with pytest.raises(UserError, match='disc_batches=separate'):
    systems.validate(config)
  config.train.disc_batches = 'separate'
  systems.validate(config)


def _kernel_shapes(params):
  return sorted(tuple(leaf.shape) for path, leaf in jax.tree_util.tree_leaves_with_path(params)
                if path[-1].key == 'kernel')


def test_toy2d_pacgan_networks_have_the_papers_widths():
  config = _pacgan_config()
  models = systems.build_models(config, (2,))
  state = systems.create_state(config, models, (2,))
  g, d = state.gen.params, state.disc.params
  assert _kernel_shapes(g) == sorted([(2, 400)] + [(400, 400)] * 3 + [(400, 2)])
  assert sum('BatchNorm' in k for k in g) == 4 and 'bias' not in g['Dense_0']
  assert _kernel_shapes(d) == sorted([(2, 1000), (200, 1000), (200, 1000), (200, 1)])
  z = jnp.zeros((3, 2))
  assert models.gen.apply({'params': g, 'batch_stats': state.gen.batch_stats}, z,
                          train=False).dtype == jnp.float32
  logit, feats = models.disc.apply({'params': d}, jnp.zeros((3, 2)))
  assert logit.shape == (3,) and feats.shape == (3, 200)
  assert logit.dtype == feats.dtype == jnp.float32
  # Packed: the first maxout layer reads pack * 2 inputs.
  config = _pacgan_config(pack=2)
  models = systems.build_models(config, (2,))
  d = systems.create_state(config, models, (2,)).disc.params
  assert d['Maxout_0']['Dense_0']['kernel'].shape == (4, 1000)
  # Minibatch discrimination: 5 features appended before the logit.
  config = _pacgan_config(minibatch_kernels=5)
  models = systems.build_models(config, (2,))
  d = systems.create_state(config, models, (2,)).disc.params
  assert d['Dense_0']['kernel'].shape == (205, 1)
  assert d['MinibatchDiscrimination_0']['kernel'].shape == (200, 25)


@pytest.mark.parametrize('overrides,train', [({}, {}), ({'pack': 2}, {}),
                                             ({'minibatch_kernels': 5},
                                              {'disc_batches': 'separate'})])
def test_toy2d_pacgan_trains_20_steps(overrides, train):
  config = _pacgan_config(**overrides)
  config.train.update(train)
  systems.validate(config)
  models = systems.build_models(config, (2,))
  state = systems.create_state(config, models, (2,))
  step = solo_step(config, models)
  n = config.data.batch_size
  for s in range(20):
    batch = {'images': jnp.asarray(toy.sample_mixture('ring', 0, n, step=s))[None]}
    state, metrics = step(state, batch)
    assert np.isfinite(float(metrics['d_loss'])) and np.isfinite(float(metrics['g_loss']))
  assert int(state.step) == 20
  assert 0 < float(metrics['d_real']) < 1 and 0 < float(metrics['d_fake']) < 1
