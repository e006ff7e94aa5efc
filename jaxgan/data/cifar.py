"""CIFAR-10 from the python batch files of `cifar-10-python.tar.gz`.

The archive extracts to `cifar-10-batches-py/` with `data_batch_1` .. `data_batch_5` (10000
training images each), `test_batch` (10000) and `batches.meta`. Each batch is a pickled dict
(written by Python 2) with b'data': uint8 [N, 3072], every row the 1024 red, then 1024 green,
then 1024 blue values of a 32x32 image in row-major order, and b'labels': N ints in 0..9.

Where the files come from (see `find_cifar_dir`), as for MNIST in `idx`:

  1. `data_dir` (`config.data.dir`): a folder holding `cifar10/cifar-10-batches-py/`,
     `cifar10/`, `cifar-10-batches-py/` or the batch files themselves (first match wins).
  2. `$JAXGAN_DATA_DIR/cifar10/` (or its `cifar-10-batches-py/`).
  3. The download cache, `cache_dir('cifar10')/cifar-10-batches-py/`.
  4. A download of the official archive (size and MD5 checked) into the cache.

The batches are pickles, and unpickling runs whatever the file says; a restricted unpickler that
only rebuilds numpy arrays keeps a tampered file from executing code.
"""

import hashlib
import os
import pathlib
import pickle
import shutil
import tarfile
import tempfile
import threading
import zlib
from typing import Optional, Union

import numpy as np

from jaxgan.data.files import CHUNK
from jaxgan.data.files import DOWNLOAD_ERRORS
from jaxgan.data.files import failure_reason
from jaxgan.data.files import fetch
from jaxgan.data.files import one_line
from jaxgan.data.files import unreadable
from jaxgan.data.idx import cache_dir
from jaxgan.data.idx import ENV_VAR
from jaxgan.errors import DataError
from jaxgan.errors import UserError

PathLike = Union[str, os.PathLike]

NAME = 'cifar10'
# The official archive (module-level so that tests can point it at a local file:// copy).
URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'
ARCHIVE_SIZE = 170498071
ARCHIVE_MD5 = 'c58f30108f718f92721af3b95e74349a'  # shared/data/README.md
ARCHIVE_DIR = 'cifar-10-batches-py'
DOWNLOAD_TIMEOUT_S = 60.0

SPLIT_FILES = {
    'train': tuple(f'data_batch_{i}' for i in range(1, 6)),
    'test': ('test_batch',),
}
META_FILE = 'batches.meta'
BATCH_FILES = SPLIT_FILES['train'] + SPLIT_FILES['test']

IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
CLASS_NAMES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
               'truck')

_ROW_BYTES = 32 * 32 * 3

# Parsed splits keyed by (folder, split, stat of each file), as in idx: an edited file misses.
_loaded: dict = {}
_lock = threading.Lock()


def clear_caches() -> None:
  """Forgets loaded splits, so the next load reads the files again."""
  with _lock:
    _loaded.clear()


_HINT = (f'point {ENV_VAR} or --config.data.dir at a folder holding cifar10/{ARCHIVE_DIR}/ '
         f'(extracted from {URL})')


def _fix_advice(path: pathlib.Path) -> str:
  """What the user should do about a bad batch file at `path`."""
  try:
    in_cache = cache_dir(NAME).resolve() in path.resolve().parents
  except OSError:
    in_cache = False
  if in_cache:
    return f'delete {path.parent} and jaxgan downloads CIFAR-10 again'
  return (f'extract it again from cifar-10-python.tar.gz ({URL}, md5 {ARCHIVE_MD5}), or '
          f'point {ENV_VAR} at a folder holding cifar10/{ARCHIVE_DIR}/')


def _has_any(folder: pathlib.Path) -> bool:
  return folder.is_dir() and any((folder / f).is_file() for f in BATCH_FILES)


def _explicit_dir(root: pathlib.Path, candidates: list, source: str) -> pathlib.Path:
  """Picks the first candidate folder holding batch files; raises DataError if none is usable."""
  if not root.is_dir():
    what = 'is not a folder' if root.exists() else 'does not exist'
    raise DataError(f'data folder {root} {what} (from {source}); {_HINT}')
  for folder in candidates:
    if _has_any(folder):
      missing = [f for f in BATCH_FILES if not (folder / f).is_file()]
      if missing:
        raise DataError(f'CIFAR-10 folder {folder} (from {source}) lacks {", ".join(missing)}; '
                        f'{_HINT}')
      return folder
  looked = ', '.join(str(c) for c in candidates)
  raise DataError(f'no CIFAR-10 batch files (data_batch_1..5, test_batch) in {looked} '
                  f'(from {source}); {_HINT}')


def find_cifar_dir(data_dir: Optional[PathLike] = None, download: bool = True) -> pathlib.Path:
  """Returns the folder holding the six CIFAR-10 batch files.

  Args:
    data_dir: `config.data.dir`, or None / '' for unset. Inside it, looked for in order:
      `cifar10/cifar-10-batches-py/`, `cifar10/`, `cifar-10-batches-py/`, the folder itself.
    download: whether the archive may be downloaded into the cache when nothing is found.

  Returns:
    The folder, as given (not resolved).

  Raises:
    DataError: a folder the user named is missing or lacks files (never skipped silently), or
      the files are not cached and could not be downloaded.
  """
  if data_dir:
    root = pathlib.Path(data_dir).expanduser()
    candidates = [root / NAME / ARCHIVE_DIR, root / NAME, root / ARCHIVE_DIR, root]
    return _explicit_dir(root, candidates, 'config.data.dir')
  env = os.environ.get(ENV_VAR, '')
  if env:
    root = pathlib.Path(env).expanduser() / NAME
    return _explicit_dir(root, [root / ARCHIVE_DIR, root], f'${ENV_VAR}')
  folder = cache_dir(NAME) / ARCHIVE_DIR
  if all((folder / f).is_file() for f in BATCH_FILES):
    return folder
  if not download:
    raise DataError(f'CIFAR-10 not found in {folder} (nor in config.data.dir or ${ENV_VAR}) '
                    f'and download is disabled; {_HINT}')
  _download_and_extract(folder)
  return folder


def _extract(archive: pathlib.Path, dest: pathlib.Path) -> None:
  """Extracts only the known batch files of `archive` into the new folder `dest`.

  Members are matched by exact name (`cifar-10-batches-py/<known file>`) and written by this
  code, never by tarfile, so absolute paths, `..` components, links and device files in a
  tampered archive cannot write outside `dest`.
  """
  wanted = {f'{ARCHIVE_DIR}/{f}': f for f in BATCH_FILES + (META_FILE,)}
  dest.mkdir()
  with tarfile.open(archive, 'r:gz') as tar:
    for member in tar:
      target = wanted.get(member.name)
      if target is None or not member.isfile():
        continue
      src = tar.extractfile(member)
      with src, open(dest / target, 'wb') as out:
        shutil.copyfileobj(src, out, CHUNK)
  missing = [f for f in BATCH_FILES if not (dest / f).is_file()]
  if missing:
    raise ValueError(f'the archive lacks {ARCHIVE_DIR}/{", ".join(missing)}')


def _download_and_extract(folder: pathlib.Path) -> None:
  """Downloads the archive and leaves the extracted batches in `folder` (all or nothing)."""
  parent = folder.parent
  try:
    parent.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise DataError(f'cannot create the download cache {parent}: {one_line(e.strerror or e)}; '
                    f'{_HINT}') from None
  archive = staging = None
  try:
    # Staged next to the final folder, so that os.replace below is a rename.
    staging = pathlib.Path(tempfile.mkdtemp(dir=parent, prefix=f'.{ARCHIVE_DIR}.')) / 'x'
    archive = fetch(URL, parent / 'cifar-10-python.tar.gz', hashlib.md5, ARCHIVE_SIZE,
                    ARCHIVE_MD5, DOWNLOAD_TIMEOUT_S)
    _extract(archive, staging)
    # Swap in the complete folder only now, so a crash never leaves a partial one that the
    # next run would take as found.
    if folder.exists():
      shutil.rmtree(folder)
    os.replace(staging, folder)
  except DOWNLOAD_ERRORS + (tarfile.TarError, EOFError, zlib.error) as e:
    raise DataError(f'CIFAR-10 not found in {folder} (nor in config.data.dir or ${ENV_VAR}) '
                    f'and download from {URL} failed: {failure_reason(e)}; {_HINT}, or retry '
                    'when online') from None
  finally:
    if archive is not None:
      archive.unlink(missing_ok=True)  # 170 MB; the extracted batches are what is kept.
    if staging is not None:
      shutil.rmtree(staging.parent, ignore_errors=True)


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles only dicts, lists, numbers, bytes and numpy arrays (no arbitrary callables)."""

  _ALLOWED = {
      ('numpy', 'ndarray'), ('numpy', 'dtype'),
      ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
      ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
      ('numpy.core.numeric', '_frombuffer'), ('numpy._core.numeric', '_frombuffer'),
      # Python 3 pickles bytes with protocol < 3 as _codecs.encode(str, 'latin1').
      ('_codecs', 'encode'),
  }

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f'global {module}.{name} is not allowed in a CIFAR batch')
    if module.startswith('numpy.core.'):
      # The original files name numpy 1's module; numpy 2 keeps it only as a deprecated alias.
      module = 'numpy._core.' + module[len('numpy.core.'):]
      try:
        return super().find_class(module, name)
      except (ImportError, AttributeError):
        module = 'numpy.core.' + module[len('numpy._core.'):]  # numpy 1
    return super().find_class(module, name)


def _get(d: dict, key: str):
  """d[b'key'] (Python 2 pickles read with encoding='bytes') or d['key'], else None."""
  return d.get(key.encode(), d.get(key))


def load_batch(path: PathLike) -> tuple:
  """Reads one python batch file.

  Returns:
    (images, labels): uint8 [N, 32, 32, 3] (NHWC, C-contiguous) and int32 [N].

  Raises:
    DataError: the file is missing, unreadable, not a pickle of the expected dict, or holds
      data of the wrong shape or labels outside 0..9; the message names the file.
  """
  path = pathlib.Path(path)

  def bad(why):
    return DataError(f'{path} is not a valid CIFAR-10 python batch ({one_line(why)}): '
                     f'{_fix_advice(path)}')

  try:
    with open(path, 'rb') as f:
      # encoding='bytes': the official files are Python 2 pickles, whose str must stay bytes
      # (the array buffers and the b'data' keys).
      batch = _ArrayUnpickler(f, encoding='bytes').load()
  except FileNotFoundError:
    raise DataError(f'{path} is missing: {_fix_advice(path)}') from None
  except IsADirectoryError:
    raise bad('it is a folder') from None
  except PermissionError as e:
    raise unreadable(path, e) from None
  except Exception as e:  # pylint: disable=broad-except
    # A corrupt pickle can raise nearly anything (UnpicklingError, EOFError, ValueError,
    # TypeError, IndexError, MemoryError...); all mean the file is unusable.
    raise bad(f'{type(e).__name__}: {e}') from None
  if not isinstance(batch, dict):
    raise bad(f'a pickled {type(batch).__name__}, expected a dict')
  data, labels = _get(batch, 'data'), _get(batch, 'labels')
  if data is None or labels is None:
    raise bad("no b'data' or b'labels' entry")
  if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or (
      data.shape[1] != _ROW_BYTES):
    what = f'{data.dtype} {data.shape}' if isinstance(data, np.ndarray) else type(data).__name__
    raise bad(f"b'data' is {what}, expected uint8 [N, {_ROW_BYTES}]")
  try:
    labels = np.asarray(labels, dtype=np.int64)
  except (TypeError, ValueError) as e:
    raise bad(f"b'labels' are not integers: {e}") from None
  if labels.shape != (data.shape[0],):
    raise bad(f"{data.shape[0]} images but b'labels' has shape {labels.shape}")
  if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
    raise bad(f'labels range {labels.min()}..{labels.max()}, expected 0..{NUM_CLASSES - 1}')
  # Row = [R plane | G plane | B plane], each 32x32 row-major: [N, C, H, W] -> [N, H, W, C].
  images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
  return images, labels.astype(np.int32)


def load_cifar10(split: str = 'train', data_dir: Optional[PathLike] = None,
                 download: bool = True) -> tuple:
  """Loads one split of CIFAR-10 (cached in-process, like `idx.load_dataset`).

  Args:
    split: 'train' (data_batch_1..5 in order, 50000 images) or 'test' (test_batch, 10000).
    data_dir: `config.data.dir`; see `find_cifar_dir`.
    download: whether the archive may be downloaded when the files are found nowhere.

  Returns:
    (images, labels): uint8 [N, 32, 32, 3] NHWC and int32 [N], both read-only (shared with the
    cache; copy them to modify).

  Raises:
    UserError: unknown split.
    DataError: missing or corrupt files.
  """
  if split not in SPLIT_FILES:
    raise UserError(f'unknown split {split!r} for dataset {NAME}; use one of '
                    f'{", ".join(SPLIT_FILES)}')
  folder = find_cifar_dir(data_dir, download)
  paths = [folder / f for f in SPLIT_FILES[split]]
  try:
    key = (str(folder.resolve()), split) + tuple(
        (p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
  except OSError as e:
    raise DataError(f'cannot read {folder}: {one_line(e)}; {_fix_advice(paths[0])}') from None
  with _lock:
    if key in _loaded:
      return _loaded[key]
  parts = [load_batch(p) for p in paths]
  images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
  labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
  # Read-only: shared by every caller through the cache (see idx.load_dataset).
  images.setflags(write=False)
  labels.setflags(write=False)
  with _lock:
    _loaded[key] = (images, labels)
  return images, labels
