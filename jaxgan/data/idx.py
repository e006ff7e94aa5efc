"""MNIST-like datasets stored as the original gzip'd IDX files.

Both datasets ship as the same four file names, so a folder of files says nothing about which
dataset it holds: every file is checked against the size and SHA-256 of the original
distribution before it is parsed. Where the files come from (see `find_dataset_dir`):

  1. `data_dir` (`config.data.dir`): a folder holding the four files, or holding `<name>/`.
  2. `$JAXGAN_DATA_DIR/<name>/`.
  3. The download cache, `$XDG_CACHE_HOME/jaxgan/<name>/` (default `~/.cache/jaxgan/<name>/`).
  4. A download from the official mirror into the cache.

Places the user named (1, 2) are never skipped silently: if they are wrong, that is an error,
because falling through to a download would train on data other than the data asked for.
"""

import gzip
import hashlib
import os
import pathlib
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
from jaxgan.errors import DataError
from jaxgan.errors import UserError

PathLike = Union[str, os.PathLike]

ENV_VAR = 'JAXGAN_DATA_DIR'

IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10

# Image and label file of each split, in the original distribution's naming.
SPLIT_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
FILE_NAMES = tuple(f for pair in SPLIT_FILES.values() for f in pair)

# Size in bytes and SHA-256 of each file as distributed (shared/data/README.md; the same values
# tensorflow-datasets registers for the official URLs).
CHECKSUMS = {
    'mnist': {
        'train-images-idx3-ubyte.gz':
            (9912422, '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609'),
        'train-labels-idx1-ubyte.gz':
            (28881, '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c'),
        't10k-images-idx3-ubyte.gz':
            (1648877, '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6'),
        't10k-labels-idx1-ubyte.gz':
            (4542, 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6'),
    },
    'fashion_mnist': {
        'train-images-idx3-ubyte.gz':
            (26421880, '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84'),
        'train-labels-idx1-ubyte.gz':
            (29515, 'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845'),
        't10k-images-idx3-ubyte.gz':
            (4422102, '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073'),
        't10k-labels-idx1-ubyte.gz':
            (5148, '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5'),
    },
}

# Base URLs of the official mirrors; a module-level dict so that tests can point a dataset at a
# local `file://` folder.
MIRRORS = {
    'mnist': 'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'fashion_mnist': 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
}

DOWNLOAD_TIMEOUT_S = 60.0

_IDX_MAGIC_IMAGES = 0x00000803  # uint8 data, 3 dimensions.
_IDX_MAGIC_LABELS = 0x00000801  # uint8 data, 1 dimension.

# Files that passed verification, keyed by (path, size, mtime_ns, expected size, expected sha):
# a file that changes on disk gets a new key, so a stale result is never reused, and the test
# suite hashes each real file once instead of once per load.
_verified: set = set()
# Parsed splits, keyed by (folder, split, stat of both files); see `_load_cache_key`.
_loaded: dict = {}
_lock = threading.Lock()


def clear_caches() -> None:
  """Forgets verified files and loaded splits, so the next load reads and hashes again."""
  with _lock:
    _verified.clear()
    _loaded.clear()


def _check_name(name: str) -> None:
  """Raises UserError unless `name` is a known dataset."""
  if name not in CHECKSUMS:
    known = ', '.join(sorted(CHECKSUMS))
    raise UserError(f'unknown dataset {name!r}; known datasets: {known}')


def cache_dir(name: str) -> pathlib.Path:
  """Returns the download cache folder of dataset `name` (it may not exist yet).

  Args:
    name: a dataset name, e.g. 'mnist'.

  Returns:
    `$XDG_CACHE_HOME/jaxgan/<name>` if XDG_CACHE_HOME is set to an absolute path (relative
    values are invalid per the XDG spec and ignored), else `~/.cache/jaxgan/<name>`.
  """
  xdg = os.environ.get('XDG_CACHE_HOME', '')
  root = pathlib.Path(xdg) if os.path.isabs(xdg) else pathlib.Path.home() / '.cache'
  return root / 'jaxgan' / name


def _is_in_cache(path: pathlib.Path, name: str) -> bool:
  """True if `path` lies in the download cache, where deleting a bad file is the fix."""
  try:
    return path.resolve().parent == cache_dir(name).resolve()
  except OSError:
    return False


def _fix_advice(path: pathlib.Path, name: str) -> str:
  """What the user should do about a bad file at `path`."""
  if _is_in_cache(path, name):
    return f'delete it and jaxgan downloads it again from {MIRRORS.get(name, "the mirror")}'
  return (f're-download it from {MIRRORS.get(name, "the official mirror")}{path.name} (or '
          f'copy a good copy there), or point {ENV_VAR} at a folder with good files')


def _sha256(path: pathlib.Path) -> str:
  """Returns the hex SHA-256 of the file at `path`, read in chunks to bound memory."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    while chunk := f.read(CHUNK):
      digest.update(chunk)
  return digest.hexdigest()


def _other_owner(sha: str, name: str, file_name: str) -> str:
  """Returns 'it is <dataset>/<file>' if `sha` is another known file, else ''."""
  for other_name, files in CHECKSUMS.items():
    for other_file, (_, other_sha) in files.items():
      if other_sha == sha and (other_name, other_file) != (name, file_name):
        return f'it is {other_name}/{other_file}'
  return ''


def verify_file(path: PathLike, name: str) -> None:
  """Checks that `path` is the original file of dataset `name` with the same base name.

  The result is cached per (path, size, mtime), so a second call on an unchanged file costs
  one `stat`.

  Args:
    path: a file such as `.../mnist/train-images-idx3-ubyte.gz`.
    name: the dataset it should belong to.

  Raises:
    UserError: `name` is not a known dataset.
    DataError: the file is missing, truncated, of the wrong size or fails its SHA-256.
  """
  _check_name(name)
  path = pathlib.Path(path)
  if path.name not in CHECKSUMS[name]:
    known = ', '.join(CHECKSUMS[name])
    raise DataError(f'{path} is not a file of dataset {name}; expected one of {known}')
  want_size, want_sha = CHECKSUMS[name][path.name]
  try:
    st = path.stat()
  except FileNotFoundError:
    raise DataError(f'{path} is missing: put the original {path.name} of {name} there '
                    f'(from {MIRRORS.get(name, "the official mirror")}) or point {ENV_VAR} at '
                    f'a folder holding {name}/ with the four IDX .gz files') from None
  except OSError as e:
    raise unreadable(path, e) from None
  key = (str(path.resolve()), st.st_size, st.st_mtime_ns, want_size, want_sha)
  with _lock:
    if key in _verified:
      return
  other_sizes = {size for files in CHECKSUMS.values() for size, _ in files.values()}
  truncated = DataError(f'{path} is truncated ({st.st_size} bytes, expected {want_size}): '
                        f'{_fix_advice(path, name)}')
  if st.st_size < want_size and st.st_size not in other_sizes:
    # Checked before hashing: an interrupted copy or download is the common case, and the
    # size alone says so without reading the file. A size that some other known file has is
    # hashed instead, because the file of the other dataset is a likelier cause.
    raise truncated
  try:
    sha = _sha256(path)
  except OSError as e:
    raise unreadable(path, e) from None
  if st.st_size < want_size and not _other_owner(sha, name, path.name):
    raise truncated
  if st.st_size != want_size or sha != want_sha:
    other = _other_owner(sha, name, path.name)
    why = (f'{other}, not the {name} one: check that the folder holds {name} files, or'
           if other else 'the file is corrupt or not the original:')
    raise DataError(f'{path} fails its checksum: sha256 {sha}, expected {want_sha} '
                    f'({st.st_size} bytes, expected {want_size}); {why} '
                    f'{_fix_advice(path, name)}')
  with _lock:
    _verified.add(key)


def _missing_files(folder: pathlib.Path) -> list:
  """The dataset file names that are not regular files in `folder`."""
  return [f for f in FILE_NAMES if not (folder / f).is_file()]


def _explicit_dir(name: str, folder: pathlib.Path, source: str, hint: str) -> pathlib.Path:
  """Checks a folder the user named; raises DataError rather than falling through."""
  if not folder.is_dir():
    what = 'is not a folder' if folder.exists() else 'does not exist'
    raise DataError(f'data folder {folder} {what} (from {source}); {hint}')
  missing = _missing_files(folder)
  if missing:
    raise DataError(f'data folder {folder} (from {source}) lacks {", ".join(missing)}; {hint}')
  return folder


def _download(name: str, file_name: str, folder: pathlib.Path) -> None:
  """Downloads one file into `folder`, replacing the final name only after it verifies.

  Raises:
    DataError: the download failed or the downloaded bytes are not the original file; nothing
      is left under the final name (or in a temporary file) in that case.
  """
  want_size, want_sha = CHECKSUMS[name][file_name]
  url = MIRRORS[name] + file_name
  final = folder / file_name
  try:
    tmp = fetch(url, final, hashlib.sha256, want_size, want_sha, DOWNLOAD_TIMEOUT_S)
    try:
      # An atomic rename (fetch puts tmp in the same folder): a reader, or a concurrent
      # run, sees either no file or the complete, verified one.
      os.replace(tmp, final)
    finally:
      tmp.unlink(missing_ok=True)
  except DOWNLOAD_ERRORS as e:
    raise DataError(
        f'{name} files not found in {folder} (nor in config.data.dir or ${ENV_VAR}) and '
        f'download from {url} failed: {failure_reason(e)}; set {ENV_VAR} to a folder holding '
        f'{name}/ with the four IDX .gz files, or retry when online') from None
  with _lock:
    st = final.stat()
    _verified.add((str(final.resolve()), st.st_size, st.st_mtime_ns, want_size, want_sha))


def find_dataset_dir(name: str, data_dir: Optional[PathLike] = None,
                     download: bool = True) -> pathlib.Path:
  """Returns the folder holding the four IDX .gz files of dataset `name`.

  Lookup order: `data_dir`, then `$JAXGAN_DATA_DIR/<name>/`, then the download cache (see
  `cache_dir`), then a download into the cache. Only presence is checked here; the contents are
  verified by `verify_file` when a split is loaded.

  Args:
    name: 'mnist' or 'fashion_mnist'.
    data_dir: `config.data.dir`: a folder holding `<name>/`, or one holding the four files
      directly (in that order of preference). None or '' means unset.
    download: whether missing files may be downloaded into the cache.

  Returns:
    The folder, as given (not resolved).

  Raises:
    UserError: `name` is not a known dataset.
    DataError: an explicitly given folder does not exist or lacks files, or the files are not
      in the cache and could not be downloaded.
  """
  _check_name(name)
  hint = (f'point {ENV_VAR} or --config.data.dir at a folder holding {name}/ with the four '
          'IDX .gz files')
  if data_dir:
    root = pathlib.Path(data_dir).expanduser()
    # `<root>/<name>/` wins over files directly in root: mnist and fashion_mnist share file
    # names, so a folder holding both datasets must select by name.
    folder = root / name if (root / name).is_dir() else root
    return _explicit_dir(name, folder, 'config.data.dir', hint)
  env = os.environ.get(ENV_VAR, '')
  if env:
    return _explicit_dir(name, pathlib.Path(env).expanduser() / name, f'${ENV_VAR}', hint)

  folder = cache_dir(name)
  missing = _missing_files(folder)
  if not missing:
    return folder
  if not download:
    raise DataError(f'{name} files not found in {folder} (nor in config.data.dir or '
                    f'${ENV_VAR}) and download is disabled; {hint}')
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise DataError(f'cannot create the download cache {folder}: {one_line(e.strerror or e)}; '
                    f'{hint}') from None
  for file_name in missing:
    _download(name, file_name, folder)
  return folder


def _read_idx(path: pathlib.Path, magic: int, name: str) -> np.ndarray:
  """Decompresses and parses one IDX file; checks magic, dims and length."""
  try:
    with gzip.open(path, 'rb') as f:
      raw = f.read()
  except (EOFError, zlib.error, gzip.BadGzipFile) as e:
    raise DataError(f'{path} is not a valid gzip file ({type(e).__name__}: {one_line(e)}): '
                    f'{_fix_advice(path, name)}') from None
  except OSError as e:
    raise unreadable(path, e) from None
  # IDX headers are big-endian uint32: the magic (whose low byte is the number of
  # dimensions), then one size per dimension.
  header = 4 + 4 * (magic & 0xff)
  if len(raw) < 4 or int.from_bytes(raw[:4], 'big') != magic:
    found = f'0x{int.from_bytes(raw[:4], "big"):08x}' if len(raw) >= 4 else 'no magic'
    raise DataError(f'{path} has IDX magic {found}, expected 0x{magic:08x} '
                    f'(is it the right file?): {_fix_advice(path, name)}')
  if len(raw) < header:
    raise DataError(f'{path} holds {len(raw)} bytes after decompression, too few for an IDX '
                    f'header: {_fix_advice(path, name)}')
  dims = tuple(int(d) for d in np.frombuffer(raw, dtype='>u4', count=header // 4 - 1, offset=4))
  expected = header + int(np.prod(dims, dtype=np.int64))
  if len(raw) != expected:
    raise DataError(f'{path} holds {len(raw)} bytes after decompression but its IDX header '
                    f'{dims} needs {expected}: {_fix_advice(path, name)}')
  return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load_cache_key(folder: pathlib.Path, split: str) -> tuple:
  """Key of a parsed split: folder, split and the stat of both files (so edits invalidate)."""
  key = [str(folder.resolve()), split]
  for file_name in SPLIT_FILES[split]:
    st = (folder / file_name).stat()
    key += [st.st_size, st.st_mtime_ns]
  return tuple(key)


def load_dataset(name: str, split: str = 'train', data_dir: Optional[PathLike] = None,
                 verify: bool = True) -> tuple:
  """Loads one split of an MNIST-like dataset.

  Parsed splits are cached in-process, so loading the same split again is free.

  Args:
    name: 'mnist' or 'fashion_mnist'.
    split: 'train' (60000 examples) or 'test' (10000).
    data_dir: `config.data.dir`; see `find_dataset_dir`.
    verify: check the size and SHA-256 of both files first (cached per file, see
      `verify_file`). With False only the gzip stream and IDX structure are checked.

  Returns:
    (images, labels): uint8 `[N, 28, 28, 1]` (NHWC) and int32 `[N]`. Both are read-only
    because they are shared with the cache; copy them to modify.

  Raises:
    UserError: unknown dataset or split.
    DataError: missing, truncated, corrupt or mismatching files.
  """
  _check_name(name)
  if split not in SPLIT_FILES:
    raise UserError(f'unknown split {split!r} for dataset {name}; use one of '
                    f'{", ".join(SPLIT_FILES)}')
  folder = find_dataset_dir(name, data_dir)
  image_path, label_path = (folder / f for f in SPLIT_FILES[split])
  if verify:
    verify_file(image_path, name)
    verify_file(label_path, name)
  try:
    key = _load_cache_key(folder, split)
  except OSError as e:
    raise DataError(f'cannot read {folder}: {one_line(e)}; {_fix_advice(image_path, name)}'
                    ) from None
  with _lock:
    if key in _loaded:
      return _loaded[key]

  images = _read_idx(image_path, _IDX_MAGIC_IMAGES, name)
  labels = _read_idx(label_path, _IDX_MAGIC_LABELS, name)
  if images.shape[1:] != IMAGE_SHAPE[:2]:
    raise DataError(f'{image_path} holds images of size {images.shape[1:]}, expected '
                    f'{IMAGE_SHAPE[:2]}: {_fix_advice(image_path, name)}')
  if images.shape[0] != labels.shape[0]:
    raise DataError(f'{image_path} holds {images.shape[0]} images but {label_path} holds '
                    f'{labels.shape[0]} labels: the two files do not belong together; '
                    f'{_fix_advice(image_path, name)}')
  if labels.size and int(labels.max()) >= NUM_CLASSES:
    raise DataError(f'{label_path} holds label {int(labels.max())}, expected 0..'
                    f'{NUM_CLASSES - 1}: {_fix_advice(label_path, name)}')
  images = images.reshape(images.shape + (1,))
  labels = labels.astype(np.int32)
  # Read-only: the arrays are shared by every caller through the cache, and an in-place edit by
  # one would silently change the data seen by all others.
  images.setflags(write=False)
  labels.setflags(write=False)
  with _lock:
    _loaded[key] = (images, labels)
  return images, labels


def to_float(images: np.ndarray) -> np.ndarray:
  """Scales uint8 images to float32 in [-1, 1] (x / 127.5 - 1), the range of a tanh output.

  Args:
    images: uint8 array of any shape.

  Returns:
    A new float32 array of the same shape.

  Raises:
    TypeError: `images` is not uint8 (e.g. already scaled: scaling twice would go unnoticed).
  """
  images = np.asarray(images)
  if images.dtype != np.uint8:
    raise TypeError(f'to_float expects uint8 images, got {images.dtype}')
  out = images.astype(np.float32)
  out /= np.float32(127.5)
  out -= np.float32(1.0)
  return out
