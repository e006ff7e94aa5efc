"""train.steps_per_call: k steps in one compiled call (a lax.scan) equal k single steps."""
import chex
import jax
import numpy as np
import pytest

from jaxgan import sweep, systems, train
from jaxgan.checkpoint import Checkpointer
from tests.conftest import tiny_config

SHAPE = (28, 28, 1)


def _batches(n, n_disc=1, seed=0):
  rng = np.random.default_rng(seed)
  return [{'images': rng.integers(0, 256, (n_disc, 16) + SHAPE).astype(np.uint8)}
          for _ in range(n)]


@pytest.mark.parametrize('sweep_axes', ['', 'train.eta=0,10; seed=0,1'])
def test_k_steps_in_one_call_are_bit_identical_to_k_single_calls(sweep_axes):
  config = tiny_config(**{'train.steps_per_call': 3, 'sweep': sweep_axes})
  models = systems.build_models(config, SHAPE)
  step = systems.compile_step(config, models)
  streams = len(step.data_seeds)
  batches = [_batches(3, seed=i) for i in range(streams)]  # one stream a data seed
  init = lambda: sweep.stack([systems.create_state(m.config, models, SHAPE) for m in step.members])
  one_by_one, singles = init(), []
  for s in range(3):
    one_by_one, m = step.run(one_by_one, step.put_chunk([[b[s] for b in batches]]))
    singles.append(m)
  chunked, metrics = step.run(init(), step.put_chunk([[b[s] for b in batches] for s in range(3)]))
  chex.assert_trees_all_equal(jax.device_get(chunked), jax.device_get(one_by_one))
  for s in range(3):  # every step's metrics come back, [k, M]
    chex.assert_trees_all_equal(jax.tree.map(lambda v: v[s], metrics),
                                jax.tree.map(lambda v: v[0], singles[s]))


@pytest.mark.slow
def test_resume_inside_a_chunk_equals_an_uninterrupted_run(tmp_path, data_dir):
  """k = 4 with 16 steps an epoch: a run stopped at step 6 (calls of 4, 1, 1) and resumed
  to 10 (one call of 4) ends where a run of 10 (4, 4, 1, 1) does."""
  fields = {'data.dir': str(data_dir), 'data.limit': 256, 'train.steps_per_call': 4,
            'eval.monitor': False, 'log_every_steps': 100}
  train.train(tiny_config(**fields, **{'train.num_steps': 6}), tmp_path / 'a')
  train.train(tiny_config(**fields, **{'train.num_steps': 10}), tmp_path / 'a')
  train.train(tiny_config(**fields, **{'train.num_steps': 10}), tmp_path / 'b')
  config = tiny_config(**fields)
  models = systems.build_models(config, SHAPE)
  like = systems.create_state(config, models, SHAPE)
  a, b = (Checkpointer(tmp_path / w / 'checkpoints').restore(like) for w in 'ab')
  assert int(a.step) == int(b.step) == 10
  chex.assert_trees_all_equal(a, b)
