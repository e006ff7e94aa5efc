"""The host loop: data, compiled step, logging, sample grids and checkpoints."""
from __future__ import annotations

import os
import pathlib
import signal
import sys
import threading
import time
from typing import Any

import jax
import numpy as np
from absl import logging

from jaxgan import board, evaluate, held_out, parallel, pipeline, steps, sweep, systems
from jaxgan.data import toy
from jaxgan import workdir as wd
from jaxgan.checkpoint import Checkpointer, Failure, warn_failures
from jaxgan.errors import UserError


class NonFiniteLoss(UserError):
  """Training produced a non-finite loss and stopped; train() says what checkpoint, if
  any, is left to resume from."""
  exit_code = 3


class Preempted(SystemExit):
  """SIGTERM or SIGINT stopped training; every member's checkpoint of the stopped step is
  on disk. A SystemExit with status 128 + the signal number (143 SIGTERM, 130 SIGINT: what
  a shell reports for a process the signal ended), so it passes the handlers of errors."""

  def __init__(self, signum: int, step: int):
    self.signum, self.step = signum, step
    self.message = (f'stopped at step {step} on {signal.Signals(signum).name}; '
                    'rerun the same command to resume')
    super().__init__(128 + signum)

  def __str__(self) -> str:
    return self.message


class _StopSignals:
  """While training: SIGTERM and SIGINT ask the loop to stop after the current compiled
  call (the handler only records the signal); a second one ends the process at once.

  The previous handlers come back on exit (tests train in-process). Python delivers
  signals to the main thread only, so elsewhere nothing is installed.
  """
  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.signum = 0
    self._previous = {}

  def __enter__(self) -> '_StopSignals':
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)

  def _handle(self, signum: int, frame: Any) -> None:  # pylint: disable=unused-argument
    if self.signum:
      os.write(2, f'second {signal.Signals(signum).name}: exiting at once, without a '
                  'checkpoint of the current step\n'.encode())
      os._exit(128 + signum)  # pylint: disable=protected-access
    self.signum = signum

  def agreed(self, log_now: bool) -> int:
    """The signal to stop on now, 0 to go on; every process gets the same answer.

    One process: as soon as a signal came. Several: orbax's save is collective, so all
    must stop at the same step, though a signal may reach only some of them; they agree
    (the largest signal number of any process) at log lines only, the steps where every
    process already stops, which keeps the collective off the other calls. So there a
    signal stops training at the next log line, up to log_every_steps steps later, which a
    scheduler's grace period must cover.
    """
    if jax.process_count() == 1:
      return self.signum
    if not log_now:
      return 0
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return int(np.max(multihost_utils.process_allgather(np.int32(self.signum))))


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
  """Metrics of the calls since the last log line ([n, M] arrays: n steps, M members),
  still on the device until flushed."""

  def __init__(self, first_step: int):
    self.first_step = first_step
    self.metrics: list[dict] = []
    self.t0 = time.perf_counter()

  def summarise(self, images_per_step: int, names: list[str]) -> list[dict]:
    """Fetches the metrics (one host sync), checks them, returns each member's means.

    Each metric is an [M] array, one value per member.
    """
    host = [{k: v[i] for k, v in chunk.items()}       # one dict a step, from [n, M] chunks
            for chunk in parallel.to_host(self.metrics)
            for i in range(len(next(iter(chunk.values()))))]
    for i, m in enumerate(host):
      for k, v in m.items():
        bad = ~np.isfinite(np.atleast_1d(v))
        if bad.any():
          who = f' in sweep member {names[int(np.argmax(bad))]}' if len(names) > 1 else ''
          raise NonFiniteLoss(f'non-finite {k} at step {self.first_step + i + 1}{who}; '
                              'training stopped')
    elapsed = time.perf_counter() - self.t0
    img_s = len(host) * images_per_step / max(elapsed, 1e-9)
    means = {k: np.atleast_1d(np.mean([m[k] for m in host], axis=0)) for k in host[0]}
    # Every member trains on the same images per step; a sweep's throughput is M times.
    together = {'sweep_img_s': img_s * len(names)} if len(names) > 1 else {}
    return [{**{k: float(v[i]) for k, v in means.items()}, 'img_s': img_s, **together}
            for i in range(len(names))]


def _write_samples(config: Any, workdir: pathlib.Path, samples: np.ndarray, step: int,
                   path: pathlib.Path | None = None) -> dict:
  """The per-epoch picture: an image grid, or for 2-D data a scatter plot over the true
  means plus the PacGAN mode statistics (returned, to be logged). `path`: the PNG to
  write, W/samples/step_<step>.png (training's) unless given."""
  path = path or wd.grid_path(workdir, step)
  if config.data.name in pipeline.TOY_DATASETS:
    stats = toy.mode_stats(samples, config.data.name)
    wd.plot_points(samples, toy.mixture_means(config.data.name), path,
                   title=f'step {step}: {stats["modes_covered"]} modes, '
                         f'{100 * stats["high_quality_fraction"]:.1f}% high quality')
    return {'modes_covered': int(stats['modes_covered']),
            'high_quality': float(stats['high_quality_fraction']),
            'mode_kl_uniform': stats['mode_kl_uniform'],
            'mode_counts': stats['per_mode_counts'].tolist()}
  wd.save_png(path, wd.image_grid(samples))
  return {}


def _sample_count(config: Any) -> int:
  # The PacGAN protocol scores 2,500 samples of a 2-D mixture.
  return 2500 if config.data.name in pipeline.TOY_DATASETS else config.sample.num


class _Member:
  """One run of a training program: its config, folder, metrics log, TensorBoard
  events and checkpoints."""

  def __init__(self, name: str, config: Any, workdir: pathlib.Path):
    self.name, self.config, self.workdir = name, config, workdir
    self.ckpt = None
    self.log = None
    self.board = None
    self.initial = None
    self.failures = []

  def open(self, models: steps.Models, image_shape: tuple) -> Any:
    """Checks and opens the member's folder; returns its initial state or its newest
    checkpoint that restores (`settle` then sets the newer, damaged ones aside)."""
    self.workdir.mkdir(parents=True, exist_ok=True)
    wd.check_config(self.workdir, self.config)
    self.initial = systems.create_state(self.config, models, image_shape)
    self.ckpt = Checkpointer(self.workdir / 'checkpoints', self.config.checkpoint.max_to_keep)
    state, self.failures = self.ckpt.restore_newest(self.initial)
    return self.initial if state is None else state

  def settle(self, state: Any, step: int) -> Any:
    """The member's state at `step`, the step every member restores, with every newer
    checkpoint moved aside: training writes new ones at those steps."""
    if int(state.step) != step:
      if step not in self.ckpt.all_steps():
        raise UserError(f'the sweep members in {self.workdir.parent} have no checkpoint step in '
                        f'common (this one lacks step {step}): their checkpoints were not written '
                        'together; use a new --workdir')
      state = self.ckpt.restore(self.initial, step)
    reasons = {f.step: f.reason for f in self.failures}
    newer = [s for s in self.ckpt.all_steps() if s > step]
    failures = [Failure(s, reasons.get(s, 'newer than the step every sweep member restores'))
                for s in reversed(newer)]
    moved = {s: self.ckpt.set_aside(s) for s in newer}
    if parallel.is_chief():
      warn_failures(self.ckpt.directory, failures, step if step else None, moved)
    return state

  def start_log(self, start: int, board_dir: pathlib.Path) -> None:
    if parallel.is_chief():
      wd.save_config(self.workdir, self.config)
      self.log = wd.MetricsLog(self.workdir / 'metrics.jsonl', start)
      if self.config.tensorboard:
        self.board = board.Board(board_dir, start)

  def write(self, record: dict, picture: pathlib.Path | None = None) -> None:
    """One metrics record, to metrics.jsonl and TensorBoard, with the epoch's picture
    (the PNG just written, at epoch ends)."""
    if self.log is not None:
      self.log.write(record)
    if self.board is not None:
      self.board.record(record)
      if picture is not None:
        self.board.image('samples', board.read_png(picture), record['step'])

  def close(self) -> None:
    if self.ckpt is not None:
      self.ckpt.close()
    if self.board is not None:
      self.board.close()
    if self.log is not None:
      wd.plot_loss_curves(wd.read_metrics(self.workdir / 'metrics.jsonl'),
                          self.workdir / 'loss_curves.png')


def train(config: Any, workdir: str) -> dict:
  """Trains the config's program in `workdir`, resuming from its last checkpoint.

  The program's members are config.sweep's, trained together by one vmapped step
  (jaxgan/sweep.py), or the solo run alone: the same loop either way. The step runs
  data parallel over config.parallel.num_devices devices (0: all). Returns the last
  metrics record written (of the last member).

  It holds W's lock (workdir.WorkdirLock; a sweep's members live under W) while it
  trains, so a second training run in W is refused; for a W that does not exist yet,
  from when it is created, so that bad input refused before then leaves no folder.

  SIGTERM or SIGINT stops it after the current compiled call with a checkpoint of that
  step: it raises Preempted (exit status 128 + the signal number) after printing one line.
  """
  workdir = pathlib.Path(workdir)
  lock = wd.WorkdirLock(workdir, jax.process_index())
  try:
    if workdir.is_dir():
      lock.acquire()  # before the data is loaded: a busy W is refused at once
    with _StopSignals() as stop:
      return _train(config, workdir, lock, stop)
  except NonFiniteLoss as e:
    raise NonFiniteLoss(f'{e}; {_checkpoint_note(config, workdir)}') from None
  finally:
    lock.release()


def _checkpoint_note(config: Any, workdir: pathlib.Path) -> str:
  """What a stopped run left behind to resume from, and so what may change in a rerun."""
  found = [wd.checkpoint_steps(m.workdir(workdir) / 'checkpoints') for m in sweep.members(config)]
  if all(found):
    return (f'the last good checkpoint (step {min(s[-1] for s in found)}) is kept: a rerun '
            'resumes from it with the same config; to lower optim.learning_rate or train.eta, '
            'or change the seed, use a new --workdir')
  return ('no checkpoint had been written (the first is saved at the end of epoch 1): lower '
          'optim.learning_rate or train.eta, or change the seed, and rerun (this --workdir may '
          'be reused)')


def _train(config: Any, workdir: pathlib.Path, lock: wd.WorkdirLock, stop: '_StopSignals') -> dict:
  """train()'s work; it takes `lock` once W exists, and ends early when `stop` is set."""
  systems.validate(config)
  mesh = parallel.make_mesh(config.parallel.num_devices)
  parallel.check_batch(config.data.batch_size, mesh)
  ds = pipeline.load_train_data(config)
  models = systems.build_models(config, ds.image_shape, ds.num_classes)
  step_fn = systems.compile_step(config, models, mesh)
  members = [_Member(m.name, m.config, m.workdir(workdir)) for m in step_fn.members]
  for m in members:
    systems.validate(m.config)
  # W holds the program's config.json: a sweep's beside W/sweep/, a solo run's own.
  workdir.mkdir(parents=True, exist_ok=True)
  lock.acquire()
  wd.check_config(workdir, config)
  if parallel.is_chief():
    wd.save_config(workdir, config)
  batchers = [pipeline.StepBatches(ds, config.data.batch_size, seed, config.train.n_disc,
                                   with_labels=systems.is_conditional(config))
              for seed in step_fn.data_seeds]
  spe = batchers[0].steps_per_epoch
  total = config.train.num_steps or config.train.num_epochs * spe

  try:
    states = [m.open(models, ds.image_shape) for m in members]
    restored = [int(s.step) for s in states]
    if min(restored) == 0 and max(restored) > 0:
      raise UserError(f'the sweep members in {workdir}/sweep are at different steps '
                      f'({sorted(set(restored))}): their checkpoints were not written together; '
                      'use a new --workdir')
    # A member whose newest checkpoint is damaged restores an older one; all resume there.
    start = min(restored)
    states = [m.settle(s, start) for m, s in zip(members, states)]
  except Exception:
    for m in members:  # an in-process caller goes on: release the opened managers' threads
      if m.ckpt is not None:
        m.ckpt.close()
    raise
  # TensorBoard overlays a sweep's members as runs of W/tensorboard/.
  for m in members:
    m.start_log(start, workdir / 'tensorboard' / (m.name if len(members) > 1 else ''))
  if start >= total:
    logging.info('checkpoint is at step %d >= %d: nothing to train', start, total)
    for m in members:
      m.close()
    return {}
  state = parallel.put_replicated(sweep.stack(states), mesh)

  sample_fn = systems.make_sampler(config, models)
  eval_inputs = [systems.eval_inputs(m.config, _sample_count(config)) for m in members]
  monitor = evaluate.CollapseMonitor(config, ds.image_shape)
  held = held_out.HeldOutLosses(config, models, ds)
  logging.info('training %s on %s (%d examples, %d steps/epoch) from step %d to %d in %s '
               '(%d member(s), up to %d steps a call) on %d device(s)', config.system,
               config.data.name, len(ds), spe, start, total, workdir, len(members),
               step_fn.steps_per_call, mesh.size)

  bar = _progress(total, start) if parallel.is_chief() else None
  interval, record = _Interval(start), {}
  names = [m.name for m in members]
  k, every = step_fn.steps_per_call, config.log_every_steps
  step, stopped = start, 0

  def interval_records(**extra) -> list[dict]:
    """Each member's record of the steps since the last log line (one host sync)."""
    records = []
    for rec in interval.summarise(config.data.batch_size, names):
      record = {'step': step, 'epoch': round(step / spe, 4), **rec, **extra}
      if interval.first_step == start:
        record['compile_included'] = True  # this interval's img/s includes compilation
      records.append(record)
    return records

  try:
    while step < total:
      # A call runs k steps, or one where fewer than k remain before the next log line,
      # epoch end or the last step (so those land between calls): two programs at most.
      n = k if min(total - step, spe - step % spe, every - step % every) >= k else 1
      chunk = step_fn.put_chunk([[b.get(s) for b in batchers] for s in range(step, step + n)])
      state, metrics = step_fn.run(state, chunk)
      interval.metrics.append(metrics)
      # JAX dispatches asynchronously: unchecked, the loop runs ahead to the next log
      # line's host sync, and a stop signal would land only there. Two calls in flight
      # keep the device as busy and bound that to this call.
      if len(interval.metrics) > 1:
        jax.block_until_ready(interval.metrics[-2])
      if bar is not None:
        bar.update(n)
      done = step = step + n
      end_of_epoch = done % spe == 0 or done == total
      log_now = done % every == 0 or end_of_epoch
      if end_of_epoch:  # one host copy of each member's state: samples, monitor, checkpoint
        host_state = parallel.to_host(state)
        member_states = [sweep.unstack(host_state, i) for i in range(len(members))]
      if log_now:
        for i, (m, record) in enumerate(zip(members, interval_records())):
          picture = None
          if end_of_epoch:
            mstate = member_states[i]
            out = np.asarray(sample_fn(mstate, eval_inputs[i]))
            if parallel.is_chief():
              record.update(_write_samples(m.config, m.workdir, out, done))
              picture = wd.grid_path(m.workdir, done)
            if monitor.active:
              record.update(monitor(mstate, sample_fn, m.config))
            if held.active:
              record.update(held(mstate, m.config))
          m.write(record, picture)
        msg = ' '.join(f'{k}={record[k]:.4g}' for k in
                       ('d_loss', 'g_loss', 'mmd2', 'modes_covered', 'classes_covered',
                        'class_kl_uniform', 'img_s') if k in record)
        if bar is not None:
          bar.set_postfix_str(msg)
        elif parallel.is_chief():
          logging.info('step %d/%d epoch %.2f %s', done, total, record['epoch'], msg)
      if end_of_epoch:
        for i, m in enumerate(members):
          m.ckpt.save(done, member_states[i])
      if log_now:
        interval = _Interval(done)  # img/s excludes the logging, sampling and saving above
      stopped = stop.agreed(log_now) if done < total else 0
      if stopped:
        # Nothing trained is lost: the steps since the last log line become a record
        # (MetricsLog keeps it on resume: its step is the checkpoint's), and every member
        # saves this step, mid-epoch or not.
        if interval.metrics:
          for m, record in zip(members, interval_records(stopped=signal.Signals(stopped).name)):
            m.write(record)
        if not end_of_epoch:
          host_state = parallel.to_host(state)
          for i, m in enumerate(members):
            m.ckpt.save(done, sweep.unstack(host_state, i))
        break
  finally:
    if bar is not None:
      bar.close()
    for m in members:
      m.close()  # waits for the checkpoints to be on disk
  if stopped:
    preempted = Preempted(stopped, step)
    if parallel.is_chief():  # SystemExit prints nothing: this line is the run's last word
      print(preempted.message, file=sys.stderr, flush=True)
    raise preempted
  if parallel.is_chief():
    sweep.write_summary(config, workdir, step_fn.members)
  logging.info('done: step %d, checkpoint and samples in %s', total, workdir)
  return record


def sample(config: Any, workdir: str) -> pathlib.Path:
  """Writes W/samples.npz (uint8 images, labels when conditional) and W/samples.png
  from the last checkpoint and the run's fixed evaluation noise."""
  workdir = pathlib.Path(workdir)
  systems.validate(config)
  # sample.* only shapes what this mode writes: e.g. --config.sample.num=10000 draws
  # 10,000 samples of a run trained with a 100-image grid.
  models, state, _ = evaluate.restore_run(config, workdir, free=('sample.',))
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
  # Beside samples/, whose grids are training's: this mode leaves them as they are.
  stats = _write_samples(config, workdir, out, int(state.step), path=workdir / 'samples.png')
  logging.info('wrote %d samples of step %d to %s %s', len(out), int(state.step), path, stats or '')
  return path


# What each mode writes into the workdir, for check_writable's message.
_WRITES = {'train': 'training writes its checkpoints, metrics and samples there',
           'sample': '--mode=sample writes samples.npz and samples.png there',
           'eval': '--mode=eval writes eval/metrics.json there'}


def run(config: Any, workdir: str, mode: str = 'train') -> Any:
  """Entry point of main.py."""
  if not str(workdir).strip():  # pathlib reads '' as '.': the current folder
    raise UserError("--workdir is empty: name the run's folder, e.g. --workdir=runs/mmd "
                    '(--workdir=. for the current folder)')
  if mode not in _WRITES:
    raise UserError(f"--mode must be 'train', 'sample' or 'eval', got {mode!r}")
  # A read-only mode on a folder that is not there reports that it holds no run.
  if mode == 'train' or os.path.lexists(workdir):
    wd.check_writable(pathlib.Path(workdir), _WRITES[mode])
  if config.get('system') == 'classifier':  # the feature network of the metrics
    if mode != 'train':
      raise UserError('a classifier config only trains: drop --mode')
    from jaxgan.classifier_training import train_classifier  # pylint: disable=g-import-not-at-top
    return train_classifier(config, workdir)
  if mode == 'train':
    return train(config, workdir)
  if mode == 'sample':
    return sample(config, workdir)
  return evaluate.evaluate(config, workdir)
