"""Orbax checkpoints of the training state (W/checkpoints/<step>/).

Orbax writes each checkpoint to a temporary folder and renames it when complete, so an
interrupted save never leaves a half-written checkpoint under a step's name. A complete
checkpoint can still be damaged later (a disk fault, a truncated copy, a deleted file):
`restore_newest` then falls back to the newest one that restores, which is why
checkpoint.max_to_keep keeps more than one. Training moves a damaged checkpoint out of
W/checkpoints/ into W/checkpoints_damaged/<step>-<time>/ (nothing is deleted), since it
would otherwise block the new checkpoint it writes at the same step.
"""
from __future__ import annotations

import gc
import pathlib
import shutil
import sys
import time
from typing import Any, NamedTuple, Optional

import jax
import orbax.checkpoint as ocp
from absl import logging

from jaxgan.errors import UserError

DAMAGED = 'checkpoints_damaged'  # beside checkpoints/: orbax never lists it


class Failure(NamedTuple):
  """A checkpoint that did not restore, and why (one line)."""
  step: int
  reason: str


def one_line(error: BaseException, limit: int = 300) -> str:
  """'Type: first line' of `error`, or of its cause when it is a bare Exception: tensorstore
  wraps the useful message (which file, which byte range) in one whose text is a spec dump."""
  while type(error) is Exception and (error.__cause__ or error.__context__) is not None:  # pylint: disable=unidiomatic-typecheck
    error = error.__cause__ or error.__context__
  lines = str(error).strip().splitlines()
  text = f'{type(error).__name__}: {lines[0] if lines else ""}'
  return text if len(text) <= limit else text[:limit - 3] + '...'


def _is_abandoned_read(unraisable: Any) -> bool:
  """An error of orbax's reads that a failed restore abandoned, reported as it is collected:
  orbax turns the cancellation of each pending read coroutine into an Exception
  (`except BaseException` around the read), and tensorstore's completion callbacks then
  find the restore's event loop closed. The restore's own error already says what failed."""
  exc = unraisable.exc_value
  if isinstance(exc, RuntimeError) and str(exc) == 'Event loop is closed':
    return True
  code = getattr(unraisable.object, 'cr_code', None)
  return code is not None and 'orbax' in code.co_filename


def _quiet_abandoned_reads() -> None:
  """Drops the reports of `_is_abandoned_read` (one a pending array: dozens of tracebacks)
  for the rest of the process; any other unraisable exception is reported as before."""
  previous = sys.unraisablehook
  if getattr(previous, 'jaxgan_quiet', False):
    gc.collect()
    return

  def hook(unraisable):
    if not _is_abandoned_read(unraisable):
      previous(unraisable)
  hook.jaxgan_quiet = True
  sys.unraisablehook = hook
  gc.collect()  # the abandoned coroutines sit in reference cycles: report them now, here


class Checkpointer:
  """Saves and restores GANState pytrees, keeping the last `max_to_keep`."""

  def __init__(self, directory: pathlib.Path, max_to_keep: int = 3):
    self.directory = pathlib.Path(directory).absolute()
    self._mngr = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> Optional[int]:
    """Step of the newest complete checkpoint, or None."""
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    """Steps of the complete checkpoints, oldest first."""
    return sorted(self._mngr.all_steps())

  def restore(self, target: Any, step: Optional[int] = None) -> Any:
    """Restores the checkpoint at `step` (default: latest) with target's structure."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return self._mngr.restore(step, args=ocp.args.StandardRestore(abstract))

  def restore_newest(self, target: Any, at_most: Optional[int] = None
                     ) -> tuple[Optional[Any], list[Failure]]:
    """(state, failures): the newest checkpoint (at step <= at_most) that restores, or
    None when there is none, and the newer ones that failed, newest first.

    Raises UserError when checkpoints exist but none restores: starting over would
    silently discard the run.
    """
    steps = [s for s in reversed(self.all_steps()) if at_most is None or s <= at_most]
    failures = []
    for step in steps:
      try:
        return self.restore(target, step), failures
      except Exception as e:  # pylint: disable=broad-except  (any damage: tensorstore, pytree, IO)
        failures.append(Failure(step, one_line(e)))
        _quiet_abandoned_reads()
    if failures:
      newest = failures[0]
      raise UserError(
          f'none of the {len(failures)} checkpoint(s) in {self.directory} restores (newest, step '
          f'{newest.step}: {newest.reason}); restore a copy of the folder, or use a new --workdir')
    return None, failures

  def set_aside(self, step: int) -> pathlib.Path:
    """Moves checkpoint `step` to ../checkpoints_damaged/<step>-<time>/; returns where.

    Process 0 moves it (the folder is shared); every process then rereads the steps.
    """
    self._mngr.wait_until_finished()
    stamp = time.strftime('%Y%m%dT%H%M%S')
    dest = self.directory.parent / DAMAGED / f'{step}-{stamp}'
    n = 1
    while dest.exists():  # two set-asides of one step within a second
      dest = dest.with_name(f'{step}-{stamp}-{n}')
      n += 1
    if jax.process_index() == 0:
      dest.parent.mkdir(parents=True, exist_ok=True)
      shutil.move(str(self.directory / str(step)), str(dest))
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices(f'jaxgan set aside {self.directory} {step}')
    self._mngr.reload()
    return dest

  def save(self, step: int, state: Any) -> None:
    """Starts saving `state` as checkpoint `step` (asynchronously)."""
    self._mngr.save(step, args=ocp.args.StandardSave(state), force=True)

  def wait(self) -> None:
    """Blocks until pending saves are on disk."""
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()


def warn_failures(directory: pathlib.Path, failures: list[Failure], restored: Optional[int],
                  moved: Optional[dict[int, pathlib.Path]] = None) -> None:
  """One warning line per checkpoint that did not restore: which, why, where it is now."""
  for f in failures:
    where = f'moved to {moved[f.step]}' if moved and f.step in moved else 'left in place'
    then = f'using step {restored}' if restored is not None else 'starting from step 0'
    logging.warning('checkpoint %s/%d does not restore (%s); %s; %s',
                    directory, f.step, f.reason, where, then)
