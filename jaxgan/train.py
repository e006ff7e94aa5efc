"""The host loop: data, compiled step, logging, sample grids and checkpoints."""
from __future__ import annotations

import math
import pathlib
import sys
import time
from typing import Any

import jax
import numpy as np
from absl import logging

from jaxgan import pipeline, steps, systems
from jaxgan.data import toy
from jaxgan import workdir as wd
from jaxgan.checkpoint import Checkpointer
from jaxgan.errors import UserError


class NonFiniteLoss(UserError):
  """Training produced a non-finite loss; the last good checkpoint is kept."""
  exit_code = 3


def _progress(total: int, initial: int):
  """A tqdm bar on a terminal; None elsewhere (log lines carry the same numbers)."""
  try:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  if not sys.stderr.isatty():
    return None
  return tqdm(total=total, initial=initial, unit='step', dynamic_ncols=True)


class _Interval:
  """Metrics of the steps since the last log line, still on the device until flushed."""

  def __init__(self, first_step: int):
    self.first_step = first_step
    self.metrics: list[dict] = []
    self.t0 = time.perf_counter()

  def summarise(self, batch_size: int) -> dict:
    """Fetches the metrics (one host sync), checks them, returns their means."""
    host = jax.device_get(self.metrics)
    for i, m in enumerate(host):
      bad = [k for k, v in m.items() if not np.isfinite(v)]
      if bad:
        raise NonFiniteLoss(
            f'non-finite {", ".join(bad)} at step {self.first_step + i + 1}; training stopped '
            'and the last good checkpoint was kept: lower optim.learning_rate or train.eta, '
            'or change the seed')
    elapsed = time.perf_counter() - self.t0
    out = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
    out['img_s'] = len(host) * batch_size / max(elapsed, 1e-9)
    return out


def _write_samples(config: Any, workdir: pathlib.Path, samples: np.ndarray, step: int) -> dict:
  """The per-epoch picture: an image grid, or for 2-D data a scatter plot over the true
  means plus the PacGAN mode statistics (returned, to be logged)."""
  if config.data.name in pipeline.TOY_DATASETS:
    stats = toy.mode_stats(samples, config.data.name)
    wd.plot_points(samples, toy.mixture_means(config.data.name),
                   workdir / 'samples' / f'step_{step:07d}.png',
                   title=f'step {step}: {stats["modes_covered"]} modes, '
                         f'{100 * stats["high_quality_fraction"]:.1f}% high quality')
    return {'modes_covered': int(stats['modes_covered']),
            'high_quality': float(stats['high_quality_fraction'])}
  wd.save_png(workdir / 'samples' / f'step_{step:07d}.png', wd.image_grid(samples))
  return {}


def _sample_count(config: Any) -> int:
  # The PacGAN protocol scores 2,500 samples of a 2-D mixture.
  return 2500 if config.data.name in pipeline.TOY_DATASETS else config.sample.num


def train(config: Any, workdir: str) -> dict:
  """Trains the config's system in `workdir`, resuming from its last checkpoint.

  Returns the last metrics record written.
  """
  workdir = pathlib.Path(workdir)
  systems.validate(config)
  ds = pipeline.load_train_data(config)
  batches = pipeline.StepBatches(ds, config.data.batch_size, config.seed, config.train.n_disc,
                                 with_labels=systems.is_conditional(config))
  spe = batches.steps_per_epoch
  total = config.train.num_steps or config.train.num_epochs * spe

  workdir.mkdir(parents=True, exist_ok=True)
  wd.check_config(workdir, config)
  models = systems.build_models(config, ds.image_shape, ds.num_classes)
  state = systems.create_state(config, models, ds.image_shape)
  ckpt = Checkpointer(workdir / 'checkpoints', config.checkpoint.max_to_keep)
  if ckpt.latest_step() is not None:
    state = ckpt.restore(state)
  start = int(state.step)
  wd.save_config(workdir, config)
  log = wd.MetricsLog(workdir / 'metrics.jsonl', start)
  if start >= total:
    logging.info('checkpoint is at step %d >= %d: nothing to train', start, total)
    ckpt.close()
    return {}

  step_fn = systems.make_step(config, models)
  key = systems.train_key(config)
  eval_inputs = systems.eval_inputs(config, _sample_count(config))
  sample_fn = systems.make_sampler(config, models)
  batch_size = config.data.batch_size
  logging.info('training %s on %s (%d examples, %d steps/epoch) from step %d to %d in %s',
               config.system, config.data.name, len(ds), spe, start, total, workdir)

  bar = _progress(total, start)
  interval, record = _Interval(start), {}
  try:
    for step in range(start, total):
      state, metrics = step_fn(state, batches.get(step), key)
      interval.metrics.append(metrics)
      if bar is not None:
        bar.update(1)
      done = step + 1
      end_of_epoch = done % spe == 0 or done == total
      if done % config.log_every_steps == 0 or end_of_epoch:
        record = {'step': done, 'epoch': round(done / spe, 4), **interval.summarise(batch_size)}
        if interval.first_step == start:
          record['compile_included'] = True  # this interval's img/s includes compilation
        if end_of_epoch:
          record.update(_write_samples(config, workdir, np.asarray(sample_fn(state, eval_inputs)), done))
        log.write(record)
        msg = ' '.join(f'{k}={record[k]:.4g}' for k in
                       ('d_loss', 'g_loss', 'mmd2', 'modes_covered', 'img_s') if k in record)
        if bar is not None:
          bar.set_postfix_str(msg)
        else:
          logging.info('step %d/%d epoch %.2f %s', done, total, record['epoch'], msg)
      if end_of_epoch:
        ckpt.save(done, state)
      if done % config.log_every_steps == 0 or end_of_epoch:
        interval = _Interval(done)  # img/s excludes the logging, sampling and saving above
  finally:
    if bar is not None:
      bar.close()
    ckpt.close()
    wd.plot_loss_curves(wd.read_metrics(workdir / 'metrics.jsonl'), workdir / 'loss_curves.png')
  logging.info('done: step %d, checkpoint and samples in %s', total, workdir)
  return record


def sample(config: Any, workdir: str) -> pathlib.Path:
  """Writes W/samples.npz (uint8 images, labels when conditional) and W/samples.png
  from the last checkpoint and the run's fixed evaluation noise."""
  workdir = pathlib.Path(workdir)
  systems.validate(config)
  ckpt_dir = workdir / 'checkpoints'
  if not (workdir / 'config.json').exists() or not ckpt_dir.exists():
    raise UserError(f'{workdir} holds no trained run to sample from; train first with --mode=train')
  wd.check_config(workdir, config)
  ds = pipeline.load_train_data(config)
  models = systems.build_models(config, ds.image_shape, ds.num_classes)
  ckpt = Checkpointer(ckpt_dir, config.checkpoint.max_to_keep)
  if ckpt.latest_step() is None:
    raise UserError(f'{ckpt_dir} holds no complete checkpoint; train first with --mode=train')
  state = ckpt.restore(systems.create_state(config, models, ds.image_shape))
  ckpt.close()
  inputs = systems.eval_inputs(config, _sample_count(config))
  out = np.asarray(systems.make_sampler(config, models)(state, inputs))
  arrays = {'step': int(state.step)}
  if config.data.name in pipeline.TOY_DATASETS:
    arrays['points'] = out
  else:
    arrays['images'] = np.clip(np.round((out + 1.0) * 127.5), 0, 255).astype(np.uint8)
  if len(inputs) == 2:
    arrays['labels'] = np.asarray(inputs[1])
  path = workdir / 'samples.npz'
  np.savez_compressed(path, **arrays)
  stats = _write_samples(config, workdir, out, int(state.step))
  (workdir / 'samples' / f'step_{int(state.step):07d}.png').replace(workdir / 'samples.png')
  logging.info('wrote %d samples of step %d to %s %s', len(out), int(state.step), path, stats or '')
  return path


def run(config: Any, workdir: str, mode: str = 'train') -> Any:
  """Entry point of main.py."""
  if config.get('system') == 'classifier':  # the feature network of the metrics
    if mode != 'train':
      raise UserError('a classifier config only trains: drop --mode')
    from jaxgan.metrics.classifier import train_classifier  # pylint: disable=g-import-not-at-top
    return train_classifier(config, workdir)
  if mode == 'train':
    return train(config, workdir)
  if mode == 'sample':
    return sample(config, workdir)
  raise UserError(f"--mode must be 'train' or 'sample', got {mode!r}")
