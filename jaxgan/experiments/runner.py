"""Runs an experiment's jobs into DIR and gathers every number into DIR/results.json.

An experiment (see `registry`) is a list of jobs for a scale. A job is one training
program: a config file, its overrides and, usually, a sweep (seeds and loss weights
vmapped into one compiled program, jaxgan/sweep.py). Each job trains in
DIR/runs/<job>/ through `jaxgan.train.train`, so it resumes from its checkpoints like
any run of main.py; a finished job is only re-read. After each job, its members' numbers
are collected and DIR/results.json is rewritten (atomically), so an interrupted run
loses at most the job in progress, and the rerun picks up from its last checkpoint.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import platform
import subprocess
import time
from typing import Any, Callable

import jax
from absl import logging

from jaxgan import evaluate, held_out, sweep, systems, train
from jaxgan import workdir as wd
from jaxgan.config_util import load_config_file, set_field
from jaxgan.errors import UserError

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = 1
SCALES = ('cpu', 'full')


@dataclasses.dataclass(frozen=True)
class Job:
  """One compiled training program of an experiment."""
  name: str                         # folder under DIR/runs/ and key in results.json
  config: str                       # configs/<file>.py, relative to the repository
  overrides: dict                   # dotted config field -> value
  sweep: str = ''                   # config.sweep: members trained in one program
  evaluate: bool = False            # --mode=eval on each member once trained
  labels: dict = dataclasses.field(default_factory=dict)  # how the report groups it

  def build(self, num_steps: int | None = None, eval_overrides: dict | None = None) -> Any:
    """The job's ConfigDict (config file + overrides + sweep)."""
    path = REPO / self.config
    if not path.is_file():
      raise UserError(f'experiment job {self.name}: no config file {path}')
    config = load_config_file(path)
    for field, value in {**self.overrides, **(eval_overrides or {})}.items():
      try:
        set_field(config, field, value)
      except (AttributeError, KeyError):
        raise UserError(f'experiment job {self.name}: {self.config} has no field {field}') from None
    if num_steps is not None:
      config.train.num_steps = num_steps
    config.sweep = self.sweep
    return config


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A named set of jobs per scale, and how to read their members' numbers."""
  name: str
  title: str
  jobs: Callable[[str], list[Job]]             # scale -> jobs
  protocol: Callable[[str], dict]              # scale -> what the numbers mean
  report: Callable[[dict, pathlib.Path], str]  # (results, figure folder) -> markdown


def git_commit() -> dict:
  """The repository's commit and whether its code had uncommitted changes. Changes under
  results/ and docs/ do not count: a results.json being updated (or a report being
  written) is not a change to what trains."""
  def git(*args):
    return subprocess.run(['git', '-C', str(REPO), *args], capture_output=True, text=True,
                          check=False).stdout.strip()
  commit = git('rev-parse', 'HEAD')
  changed = git('status', '--porcelain', '--untracked-files=no', '--', '.',
                ':(exclude)results', ':(exclude)docs')
  return {'commit': commit or 'unknown', 'dirty': bool(changed)}


def cpu_model() -> str:
  """The processor's name ("AMD EPYC", "Intel(R) Xeon(R) ..."): timings and last-digit
  rounding differ between machines that JAX calls the same 'cpu'."""
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'unknown'


def machine() -> dict:
  """What ran the experiment: host, CPU count and model, and the JAX backend's devices."""
  devices = jax.devices()
  return {'host': platform.node(), 'platform': platform.platform(), 'cpu_count': os.cpu_count(),
          'cpu_model': cpu_model(), 'python': platform.python_version(), 'jax': jax.__version__,
          'backend': jax.default_backend(), 'devices': len(devices),
          'device_kind': devices[0].device_kind}


LAST_GRIDS = 'last_grids'  # beside results.json: <job>.png, its first member's last grid


def keep_last_grid(out: pathlib.Path, job: str, members: list[dict]) -> None:
  """Copies the job's first member's last sample grid to out/last_grids/<job>.png, so a
  report can draw it from what is committed with results.json (runs/ holds checkpoints
  and stays on the machine that trained)."""
  if not members:
    return
  grid = wd.grid_path(out / members[0]['folder'], members[0]['steps'])
  if grid.is_file():
    (out / LAST_GRIDS).mkdir(exist_ok=True)
    wd.atomic_write_bytes(out / LAST_GRIDS / f'{job}.png', grid.read_bytes())


def member_dirs(job_dir: pathlib.Path, config: Any) -> list[tuple[str, Any, pathlib.Path]]:
  """(name, config, folder) of each member a job trains: its sweep's, or the solo run."""
  if not config.sweep:
    return [('', config, job_dir)]
  return [(m.name, m.config, job_dir / 'sweep' / m.name) for m in sweep.members(config)]


# Per-epoch fields kept in results.json (the lines train.py writes at each epoch's end).
EPOCH_FIELDS = ('step', 'epoch', 'd_loss', 'g_loss', 'mmd2', 'class_kl_uniform', 'classes_covered',
                'class_histogram', 'monitor_score', 'modes_covered', 'high_quality',
                'mode_kl_uniform', 'mode_counts')


HELD_OUT_PREFIXES = tuple(f'{split}_' for split in held_out.SPLITS)
# Loss fields kept at every logged step (the means over each logging interval).
CURVE_FIELDS = ('step', 'epoch', 'd_loss', 'g_loss', 'd_adv', 'g_adv', 'd_class', 'g_class', 'gp',
                'mmd2', 'feature_matching', 'd_real', 'd_fake')


def collect_member(config: Any, folder: pathlib.Path, do_eval: bool) -> dict:
  """A member's per-epoch lines and loss curve (from metrics.jsonl) and final numbers."""
  records = wd.read_metrics(folder / 'metrics.jsonl')
  epochs = [{k: v for k, v in r.items() if k in EPOCH_FIELDS or k.startswith(HELD_OUT_PREFIXES)}
            for r in records if 'class_histogram' in r or 'modes_covered' in r]
  curve = [{k: r[k] for k in CURVE_FIELDS if k in r} for r in records if 'd_loss' in r]
  out = {'per_epoch': epochs, 'curve': curve, 'final': dict(epochs[-1]) if epochs else {},
         'steps': records[-1]['step'] if records else 0}
  if do_eval:
    path = folder / 'eval' / 'metrics.json'
    result = json.loads(path.read_text()) if path.is_file() else None
    if result is None or result.get('step') != out['steps']:
      result = evaluate.evaluate(config, str(folder))
    out['eval'] = result
  return out


def _summary_line(record: dict) -> str:
  keys = ('modes_covered', 'high_quality', 'mode_kl_uniform', 'classes_covered',
          'class_kl_uniform', 'monitor_score', 'score', 'fid', 'kid')
  return ' '.join(f'{k}={record[k]:.4g}' for k in keys
                  if isinstance(record.get(k), (int, float)))


def load_results(out: pathlib.Path, name: str, scale: str, smoke: bool) -> dict | None:
  """DIR/results.json of an earlier invocation, refused if it is another experiment."""
  path = out / 'results.json'
  if not path.is_file():
    return None
  try:
    results = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise UserError(f'{path} is not valid JSON ({e}); move it away to start over') from None
  if (results.get('experiment'), results.get('scale'), results.get('smoke', False)) != (name, scale, smoke):
    raise UserError(f'{out} holds experiment {results.get("experiment")!r} at scale '
                    f'{results.get("scale")!r}{" (smoke)" if results.get("smoke") else ""}; '
                    f'use another --out for {name} at scale {scale}')
  return results


def run(experiment: Experiment, scale: str, out: str | pathlib.Path, *, dry_run: bool = False,
        smoke: bool = False, only: list[str] | None = None) -> dict | None:
  """Trains (or resumes) every job of `experiment` at `scale` in `out`; writes results.json.

  dry_run: builds and validates every job's config and prints the plan; trains nothing.
  smoke: one training step per job and small evaluations, to check a script end to end;
    its results.json is marked "smoke" and `report` refuses it.
  only: train just these jobs (by name); the others keep what results.json holds.
  """
  if scale not in SCALES:
    raise UserError(f'--scale must be one of {", ".join(SCALES)}, got {scale!r}')
  out = pathlib.Path(out)
  jobs = experiment.jobs(scale)
  if only:
    unknown = sorted(set(only) - {j.name for j in jobs})
    if unknown:
      raise UserError(f'--only: {experiment.name} has no job {", ".join(unknown)}; its jobs: '
                      f'{", ".join(j.name for j in jobs)}')
  eval_small = ({'eval.num_samples': 200, 'eval.reference_num': 200, 'eval.kid_subsets': 5,
                 'eval.kid_subset_size': 100, 'eval.monitor_num': 100} if smoke else None)
  built = []
  for job in jobs:
    config = job.build(1 if smoke else None, eval_small)
    systems.validate(config)
    members = member_dirs(out / 'runs' / job.name, config)
    for _, mconfig, _ in members:
      systems.validate(mconfig)
    built.append((job, config, members))
  if dry_run:
    print(f'{experiment.name} at scale {scale}: {len(jobs)} jobs, '
          f'{sum(len(m) for _, _, m in built)} members -> {out}')
    for job, config, members in built:
      length = (f'{config.train.num_steps} steps' if config.train.num_steps
                else f'{config.train.num_epochs} epochs')
      print(f'  {job.name}: {job.config} {json.dumps(job.overrides)} sweep={job.sweep!r} '
            f'({len(members)} members, {length}{", eval" if job.evaluate else ""})')
    return None

  out.mkdir(parents=True, exist_ok=True)
  results = load_results(out, experiment.name, scale, smoke) or {
      'schema': SCHEMA, 'experiment': experiment.name, 'title': experiment.title,
      'scale': scale, 'smoke': smoke, 'jobs': {}}
  provenance = {'machine': machine(), **git_commit()}
  results.update(protocol=experiment.protocol(scale), **provenance)
  results['updated'] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
  order = [j.name for j, _, _ in built]
  for i, (job, config, members) in enumerate(built):
    if only and job.name not in only:
      continue
    print(f'[{i + 1}/{len(built)}] {experiment.name}/{job.name}: {len(members)} member(s) '
          f'in {out / "runs" / job.name}', flush=True)
    t0 = time.perf_counter()
    trained = bool(train.train(config, str(out / 'runs' / job.name)))  # {}: was finished
    train_s = time.perf_counter() - t0
    entry = results['jobs'].get(job.name, {})
    rows = []
    for name, mconfig, folder in members:
      member = collect_member(mconfig, folder, job.evaluate)
      member.update(name=name, folder=str(folder.relative_to(out)), overrides={k: v for k, v in
                                          (sweep.members(config)[len(rows)].overrides.items()
                                           if config.sweep else {})})
      rows.append(member)
      shown = {**member['final'], **member.get('eval', {})}
      print(f'    {job.name} {name or "(solo)"}: step {member["steps"]} {_summary_line(shown)}',
            flush=True)
    entry.update(config=job.config, overrides=job.overrides, sweep=job.sweep,
                 labels=job.labels, members=rows, batch_size=config.data.batch_size,
                 wall_s=entry.get('wall_s', 0.0) + (time.perf_counter() - t0 if trained else 0.0))
    if trained:
      # A job rerun alone (--only) can come from another commit or machine than the rest.
      entry.update(train_s_last_invocation=train_s, **provenance)
    results['jobs'][job.name] = entry
    # Job order is the experiment's (tables and figures follow it), whatever order the
    # jobs were (re)run in.
    results['jobs'] = dict(sorted(results['jobs'].items(), key=lambda kv: (
        order.index(kv[0]) if kv[0] in order else len(order))))
    keep_last_grid(out, job.name, rows)
    results['wall_s'] = sum(j.get('wall_s', 0.0) for j in results['jobs'].values())
    wd.atomic_write_text(out / 'results.json', json.dumps(results, indent=1) + '\n')
  logging.info('results in %s', out / 'results.json')
  return results
