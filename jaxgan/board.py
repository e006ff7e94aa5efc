"""TensorBoard event files of a training run (config.tensorboard, on by default).

  tensorboard --logdir W/tensorboard

A run writes W/tensorboard/; a sweep writes one folder per member,
W/tensorboard/<member>/, so TensorBoard overlays the members as runs. Every scalar of
a metrics.jsonl record is a scalar of the same name at the record's step; each epoch's
picture (the fixed-noise sample grid, or the 2-D scatter plot) is the image `samples`;
the collapse monitor's class histogram and the mode counts are histograms with one bin
per class or mode. The writer is tensorboardX's, which needs no TensorFlow.
"""
from __future__ import annotations

import math
import pathlib
import time
from typing import Any

import numpy as np

# Record fields that are per-class or per-mode counts: one histogram bin each.
HISTOGRAMS = ('class_histogram', 'mode_counts')


class Board:
  """One run's event writer.

  Resuming from step k first marks events after k as purged: TensorBoard then hides
  what an interrupted run wrote past its last checkpoint, as metrics.jsonl drops those
  lines, so each step appears once.
  """

  def __init__(self, logdir: pathlib.Path, resume_step: int):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top  (only when on)
    logdir.mkdir(parents=True, exist_ok=True)
    self.logdir = logdir
    # The writer names its file by the second it starts; a nanosecond suffix keeps a run
    # resumed within that second from overwriting the file, and sorts it after it
    # (TensorBoard reads a folder's files in name order).
    self._writer = SummaryWriter(str(logdir), purge_step=resume_step + 1, flush_secs=30,
                                 filename_suffix=f'.{time.time_ns()}')

  def record(self, record: dict[str, Any]) -> None:
    """The scalars and count histograms of one metrics.jsonl record."""
    step = int(record['step'])
    for name, value in record.items():
      if name == 'step' or isinstance(value, bool):
        continue
      if isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value):
        self._writer.add_scalar(name, float(value), step)
      elif name in HISTOGRAMS:
        self.counts(name, value, step)

  def counts(self, name: str, counts, step: int) -> None:
    """A histogram of per-class (or per-mode) counts: bin i holds class i's count."""
    counts = np.asarray(counts, np.float64)
    if counts.size == 0 or counts.sum() == 0:
      return
    ids = np.arange(counts.size, dtype=np.float64)
    self._writer.add_histogram_raw(
        name, min=0.0, max=float(counts.size - 1), num=float(counts.sum()),
        sum=float(ids @ counts), sum_squares=float((ids ** 2) @ counts),
        bucket_limits=(ids + 0.5).tolist(), bucket_counts=counts.tolist(), global_step=step)

  def image(self, name: str, picture: np.ndarray, step: int) -> None:
    """An [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] uint8 picture."""
    picture = np.asarray(picture)
    if picture.ndim == 2:
      picture = picture[..., None]
    if picture.shape[-1] == 4:          # matplotlib's RGBA: TensorBoard shows RGB
      picture = picture[..., :3]
    self._writer.add_image(name, picture, step, dataformats='HWC')

  def close(self) -> None:
    self._writer.close()


def read_png(path: pathlib.Path) -> np.ndarray:
  """A PNG the run wrote (grid or scatter plot) as a uint8 array."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(path) as img:
    return np.asarray(img)
