"""Run by tests/test_parallel.py in a fresh process with JAX_NUM_CPU_DEVICES=8.

For each config: 3 train steps jitted on one device, one step a call, and the same 3
steps in one call (systems.CompiledStep.run, as train.steps_per_call=3 runs them)
sharded over an 8-device 'data' mesh (jaxgan.parallel), on the same global batches and
the same initial state. Prints one JSON line: per config, the largest absolute and relative
parameter difference and the metrics of both.
"""
import json
import sys

import jax
import numpy as np

sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[1]))
from jaxgan import parallel, sweep, systems  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxgan.config_util import load_config_file, set_field  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO = __import__('pathlib').Path(__file__).resolve().parents[1]
SMALL_DCGAN28 = {'model.gen_width': 16, 'model.disc_width': 8, 'data.batch_size': 16}
# Shrunk networks (same code paths as the full configs), global batch 16 = 2 per device:
# the MMD term and VT-GAN's minibatch features couple examples across the shards. (WGAN-GP's
# per-example penalty left this list for CI's time budget: it couples nothing across them.)
CASES = {
    'mmd_dcgan': ('mmd_dcgan', (28, 28, 1), {**SMALL_DCGAN28, 'model.feature_dim': 4}),
    'vtgan': ('vtgan', (32, 32, 3), {'model.gen_width': 32, 'model.disc_width_mult': 0.125,
                                     'data.batch_size': 16}),
}


def tiny_config(config_name: str, **overrides):
  config = load_config_file(REPO / 'configs' / f'{config_name}.py')
  for k, v in overrides.items():
    set_field(config, k, v)
  return config
STEPS = 3


def run(name: str, config_name: str, shape: tuple, overrides: dict) -> dict:
  config = tiny_config(config_name, **overrides)
  num_classes = 10 if systems.is_conditional(config) else None
  models = systems.build_models(config, shape, num_classes)
  rng = np.random.RandomState(0)
  n, k = config.data.batch_size, config.train.n_disc
  batches = []
  for _ in range(STEPS):
    b = {'images': rng.randint(0, 256, (k, n) + shape).astype(np.uint8)}
    if num_classes:
      b['labels'] = rng.randint(0, num_classes, (k, n)).astype(np.int32)
    batches.append(b)

  results = {}
  for label, mesh in (('one', parallel.make_mesh(1)), ('sharded', parallel.make_mesh(8))):
    state = parallel.put_replicated(sweep.stack([systems.create_state(config, models, shape)]), mesh)
    step = systems.compile_step(config, models, mesh)
    if label == 'one':  # one step a call
      for b in batches:
        state, metrics = step(state, parallel.put_batch(b, mesh, 1))
    else:  # every step in one call (train.steps_per_call), the chunk split over the devices
      state, metrics = step.run(state, step.put_chunk([[b] for b in batches]))
      metrics = jax.tree.map(lambda v: v[-1], metrics)
    results[label] = (sweep.unstack(jax.device_get(state), 0), sweep.unstack(jax.device_get(metrics), 0))
  a = jax.tree.leaves(results['one'][0].gen.params) + jax.tree.leaves(results['one'][0].disc.params)
  b = jax.tree.leaves(results['sharded'][0].gen.params) + jax.tree.leaves(results['sharded'][0].disc.params)
  abs_diff = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))
  scale = max(float(np.max(np.abs(x))) for x in a)
  return {'max_abs_diff': abs_diff, 'max_abs_param': scale, 'devices': 8,
          'metrics_one': {k: float(v) for k, v in results['one'][1].items()},
          'metrics_sharded': {k: float(v) for k, v in results['sharded'][1].items()}}


if __name__ == '__main__':
  assert jax.device_count() == 8, jax.device_count()
  print(json.dumps({name: run(name, *case) for name, case in CASES.items()}))
