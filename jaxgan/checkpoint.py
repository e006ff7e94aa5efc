"""Orbax checkpoints of the training state (W/checkpoints/<step>/).

Orbax writes each checkpoint to a temporary folder and renames it when complete, so an
interrupted save never leaves a half-written checkpoint under a step's name.
"""
from __future__ import annotations

import pathlib
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores GANState pytrees, keeping the last `max_to_keep`."""

  def __init__(self, directory: pathlib.Path, max_to_keep: int = 3):
    self._mngr = ocp.CheckpointManager(
        pathlib.Path(directory).absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> Optional[int]:
    """Step of the newest complete checkpoint, or None."""
    return self._mngr.latest_step()

  def restore(self, target: Any, step: Optional[int] = None) -> Any:
    """Restores the checkpoint at `step` (default: latest) with target's structure."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return self._mngr.restore(step, args=ocp.args.StandardRestore(abstract))

  def save(self, step: int, state: Any) -> None:
    """Starts saving `state` as checkpoint `step` (asynchronously)."""
    self._mngr.save(step, args=ocp.args.StandardSave(state), force=True)

  def wait(self) -> None:
    """Blocks until pending saves are on disk."""
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()
