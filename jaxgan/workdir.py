"""What a run writes into its workdir: config, metrics, sample images, loss curves.

  W/config.json          the run's config; a rerun must match it (see check_config)
  W/metrics.jsonl        one JSON object a line (step, epoch, losses, img_s, ...)
  W/samples/step_*.png   fixed-noise sample grids, one per epoch and one at the end
  W/loss_curves.png      the losses of metrics.jsonl, written when training stops
  W/checkpoints/<step>/  orbax checkpoints (checkpoint.py)
  W/.lock                held by the run training in W (WorkdirLock); removed when it ends
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import math
import os
import pathlib
import socket
from typing import Any, Iterable

import numpy as np
from absl import logging

from jaxgan import nets
from jaxgan.errors import UserError

# Fields a rerun may change without starting a different run: how long to train,
# how often to log, where the data lives, and how samples are scored (eval.*: they
# never touch the training state), over how many devices and in how many steps a call
# (the same function).
RESUMABLE_FIELDS = frozenset({'train.num_steps', 'train.num_epochs', 'log_every_steps', 'data.dir',
                              'train.steps_per_call', 'tensorboard'})
RESUMABLE_PREFIXES = ('eval.', 'parallel.')


# Fields added to the configs after runs were made, at the value that trains exactly as
# before they existed: a run whose config.json lacks one resumes when the new config
# holds this value. A callable gives the value from the new (flat) config.
ADDED_FIELDS = {
    'train.mmd_fake': 'g_step', 'train.noise_period': 0, 'train.r1_weight': 0.0,
    'model.pack': 1, 'model.conv_impl': 'auto', 'model.num_classes': 0,
    'model.minibatch_kernels': 0, 'model.compute_dtype': 'float32', 'model.noise': 'normal',
    'model.disc_norm': 'batch', 'train.alternate': False,
    'model.leaky_slope': 0.2, 'model.norm_first': True,
    # The maxout D dropped 0.5 of its input pixels before input_dropout existed.
    'model.input_dropout': lambda new: (0.5 if new.get('model.name') == 'mlp_maxout'
                                        else new.get('model.input_dropout')),
    # Each generator's default, first in nets.GEN_NORMS: how it normalised before.
    'model.gen_norm': lambda new: nets.GEN_NORMS.get(new.get('model.name'), ('batch',))[0],
}


def _resumable(key: str) -> bool:
  return key in RESUMABLE_FIELDS or key.startswith(RESUMABLE_PREFIXES)


def _differs(key: str, old: dict, new: dict) -> bool:
  if _resumable(key):
    return False
  if key not in old and key in ADDED_FIELDS:
    neutral = ADDED_FIELDS[key]
    if new.get(key) == (neutral(new) if callable(neutral) else neutral):
      return False
  # Configs once listed only their network's model fields; every field a network read
  # with a default is in ADDED_FIELDS, so any other field an old run lacks is one its
  # network never read.
  if key not in old and key.startswith('model.') and key not in ADDED_FIELDS:
    return False
  return old.get(key, '<absent>') != new.get(key, '<absent>')


def atomic_write_bytes(path: pathlib.Path, data: bytes) -> None:
  """Writes via a temporary file + rename, so a crash never leaves half a file."""
  tmp = path.with_name(f'.{path.name}.tmp')
  tmp.write_bytes(data)
  os.replace(tmp, path)


def atomic_write_text(path: pathlib.Path, text: str) -> None:
  atomic_write_bytes(path, text.encode('utf-8'))


def _flatten(d: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in d.items():
    key = f'{prefix}{k}'
    if isinstance(v, dict):
      out.update(_flatten(v, key + '.'))
    else:
      out[key] = v
  return out


def config_to_dict(config: Any) -> dict:
  """ConfigDict -> plain JSON-able dict (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


def grid_path(workdir: pathlib.Path, step: int) -> pathlib.Path:
  """W/samples/step_<step>.png: the sample grid (or 2-D scatter) training writes at `step`."""
  return workdir / 'samples' / f'step_{step:07d}.png'


def checkpoint_steps(folder: pathlib.Path) -> list[int]:
  """The steps of the complete checkpoints in a checkpoints/ folder (orbax names one
  by its step only once it is complete), without opening them."""
  if not folder.is_dir():
    return []
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir())


def has_checkpoint(workdir: pathlib.Path) -> bool:
  """Whether W, or one of the member folders of a sweep trained in W (W/sweep/<member>/,
  jaxgan/sweep.py), holds a complete checkpoint."""
  return any(checkpoint_steps(folder) for folder in
             [workdir / 'checkpoints', *sorted(workdir.glob('sweep/*/checkpoints'))])


def check_config(workdir: pathlib.Path, config: Any, free: tuple[str, ...] = ()) -> None:
  """Refuses a workdir that holds a run with a different config.

  Only RESUMABLE_FIELDS, eval.* and parallel.* may differ (and fields an old run lacks, at
  their ADDED_FIELDS value); a workdir holding checkpoints but no config.json
  is not a jaxgan run and is refused too. `free`: prefixes of fields a read-only mode
  may also change (sample.* for --mode=sample: they shape only its output).

  A run that stopped before its first checkpoint (e.g. diverged at step 1) left nothing
  that depends on its config: any config is accepted then, with a warning, so that the
  run can be retried with, say, a lower learning rate in the same folder.
  """
  path = workdir / 'config.json'
  if not path.exists():
    if (workdir / 'checkpoints').exists():
      raise UserError(f'{workdir} holds checkpoints but no config.json: it is not a jaxgan run '
                      'this config can resume; use another --workdir')
    return
  try:
    old = _flatten(json.loads(path.read_text()))
  except json.JSONDecodeError as e:
    raise UserError(f'{path} is not valid JSON ({e}); use another --workdir') from None
  new = _flatten(config_to_dict(config))
  diff = sorted(k for k in set(old) | set(new)
                if not k.startswith(free) and _differs(k, old, new))
  if diff:
    shown = ', '.join(f'{k}: {old.get(k, "<absent>")} -> {new.get(k, "<absent>")}' for k in diff[:4])
    more = f' (+{len(diff) - 4} more)' if len(diff) > 4 else ''
    if not has_checkpoint(workdir):
      logging.warning('%s holds the config of a run that never wrote a checkpoint (%s%s): '
                      'nothing depends on it, so this config replaces it', workdir, shown, more)
      return
    raise UserError(f'{workdir} holds a run with a different config ({shown}{more}); '
                    'use a new --workdir, or rerun with the same config to resume')


_UNWRITABLE = {errno.EROFS: 'read-only file system', errno.EACCES: 'permission denied',
               errno.EPERM: 'operation not permitted', errno.ENOSPC: 'no space left on device',
               errno.EDQUOT: 'disk quota exceeded'}


def _probe_write(folder: pathlib.Path) -> None:
  """Creates and removes a file in `folder`; raises OSError where that is not allowed."""
  path = folder / f'.jaxgan-write-probe-{os.getpid()}'
  os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
  os.unlink(path)


def check_writable(workdir: pathlib.Path, uses: str) -> None:
  """Refuses a --workdir that is a file or cannot be written, before any work is done:
  otherwise the OSError would end the run as a traceback at its first write (for a
  checkpoint, an epoch in). A folder not yet there is checked through its nearest
  existing parent, where it would be created; nothing is created or left behind.

  `uses`: what the mode writes into the workdir, for the message.
  """
  base = workdir
  while not os.path.lexists(base) and base != base.parent:
    base = base.parent
  if not base.is_dir():
    if base == workdir:
      raise UserError(f'--workdir {workdir} is a file, not a folder: pass a folder '
                      '(it is created if it does not exist)')
    raise UserError(f'cannot create --workdir {workdir}: {base} is a file, not a folder')
  try:
    _probe_write(base)
  except OSError as e:
    if e.errno not in _UNWRITABLE:
      raise
    where = '' if base == workdir else f'{workdir} would be created there; '
    raise UserError(f'cannot write to {base} ({_UNWRITABLE[e.errno]}): {where}{uses}; '
                    'use a writable --workdir') from None


class WorkdirLock:
  """An exclusive flock on W/.lock, held while a run trains in W.

  A second training run in W is refused at once (a UserError naming the holder) instead
  of both appending to one metrics.jsonl and checkpoint folder. The kernel releases a
  flock when its holder exits, however it dies, so a lock file left by a killed run
  blocks nothing; the file's content (pid, host and start of the holder, written once
  the lock is held) only names the holder in the refusal. The holder removes the file
  when it is done.

  Multi-process runs: each process locks its own file, W/.lock for process 0 and
  W/.lock.<i> for process i, so the processes of one run never block each other (one
  shared file would refuse all but the first, and the run would hang at its first
  collective), while each process of a second run meets the lock of its counterpart.
  """

  def __init__(self, workdir: pathlib.Path, process: int = 0):
    self.path = pathlib.Path(workdir) / ('.lock' if process == 0 else f'.lock.{process}')
    self._fd = None

  def acquire(self) -> None:
    """Takes the lock (W must exist); a no-op when held already."""
    while self._fd is None:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        holder = self._holder(fd)
        os.close(fd)
        raise UserError(f'{self.path.parent} is in use: another training run holds {self.path} '
                        f'({holder}); wait for it to end or stop it, or train in another '
                        '--workdir') from None
      except BaseException:
        os.close(fd)
        raise
      # The previous holder removes the file as it releases it: a file opened just
      # before that is locked in vain, as the next run creates a new one. Open again.
      try:
        current = os.path.samestat(os.fstat(fd), os.stat(self.path))
      except FileNotFoundError:
        current = False
      if not current:
        os.close(fd)
        continue
      os.ftruncate(fd, 0)
      os.write(fd, json.dumps({
          'pid': os.getpid(), 'host': socket.gethostname(),
          'started': datetime.datetime.now().astimezone().isoformat(timespec='seconds')}).encode())
      self._fd = fd

  @staticmethod
  def _holder(fd: int) -> str:
    try:
      info = json.loads(os.pread(fd, 4096, 0).decode())
      return f'pid {info["pid"]} on host {info["host"]}, since {info["started"]}'
    except (ValueError, KeyError, TypeError):  # it has just taken the lock, not yet written
      return 'a process that has just started'

  def release(self) -> None:
    """Removes the file, then releases the lock (see acquire)."""
    if self._fd is None:
      return
    try:
      self.path.unlink()
    except FileNotFoundError:
      pass
    os.close(self._fd)
    self._fd = None

  def __enter__(self) -> 'WorkdirLock':
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()


def save_config(workdir: pathlib.Path, config: Any) -> None:
  """Writes W/config.json (atomically)."""
  atomic_write_text(workdir / 'config.json', json.dumps(config_to_dict(config), indent=2) + '\n')


class MetricsLog:
  """Appends JSON lines to W/metrics.jsonl.

  On resume from step k it first drops lines with step > k (written after the last
  checkpoint by a run that was then interrupted), so the file reads as one run.
  """

  def __init__(self, path: pathlib.Path, resume_step: int):
    self.path = path
    if path.exists():
      keep = [l for l in path.read_text().splitlines()
              if l.strip() and json.loads(l).get('step', 0) <= resume_step]
      atomic_write_text(path, ''.join(l + '\n' for l in keep))

  def write(self, record: dict) -> None:
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    with self.path.open('a') as f:
      f.write(json.dumps(clean) + '\n')


def read_metrics(path: pathlib.Path) -> list[dict]:
  """All records of a metrics.jsonl."""
  if not path.exists():
    return []
  return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def image_grid(images: np.ndarray, ncol: int | None = None, pad: int = 2) -> np.ndarray:
  """images [N, H, W, C] in [-1, 1] -> one uint8 grid [rows*(H+pad)+pad, ..., C]."""
  n, h, w, c = images.shape
  ncol = ncol or int(math.ceil(math.sqrt(n)))
  nrow = int(math.ceil(n / ncol))
  grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, np.uint8)
  pix = np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
  for i in range(n):
    r, col = divmod(i, ncol)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = pix[i]
  return grid


def save_png(path: pathlib.Path, array: np.ndarray) -> None:
  """Saves an HxWx1 or HxWx3 uint8 array as PNG (atomically)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path.parent.mkdir(parents=True, exist_ok=True)
  img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
  tmp = path.with_name(f'.{path.name}.tmp')
  img.save(tmp, format='PNG')
  os.replace(tmp, path)


def plot_loss_curves(records: Iterable[dict], path: pathlib.Path,
                     keys: tuple[str, ...] = ('d_loss', 'g_loss', 'g_adv', 'mmd2', 'gp', 'd_class',
                                               'g_class', 'feature_matching')) -> bool:
  """Plots the given metrics against step into a PNG; False if nothing to plot."""
  records = [r for r in records if 'step' in r and any(k in r for k in keys)]
  if not records:
    return False
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(8, 4.5))
  for k in keys:
    pts = [(r['step'], r[k]) for r in records if r.get(k) is not None]
    if pts:
      ax.plot(*zip(*pts), label=k, marker='.' if len(pts) < 30 else None)
  ax.set_xlabel('step')
  ax.set_ylabel('loss')
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  tmp = path.with_name(f'.{path.name}.tmp.png')
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, path)
  return True


def plot_points(points: np.ndarray, means: np.ndarray, path: pathlib.Path, title: str = '') -> None:
  """Scatter plot of 2-D samples [n, 2] over the true mixture means [k, 2] (PNG)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  path.parent.mkdir(parents=True, exist_ok=True)
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.4, label='samples')
  ax.scatter(means[:, 0], means[:, 1], s=40, c='red', marker='x', label='true means')
  span = np.abs(means).max() * 1.5 + 0.5
  ax.set_xlim(-span, span)
  ax.set_ylim(-span, span)
  ax.set_aspect('equal')
  ax.legend(loc='upper right', fontsize=8)
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  tmp = path.with_name(f'.{path.name}.tmp.png')
  fig.savefig(tmp, dpi=90)
  plt.close(fig)
  os.replace(tmp, path)
