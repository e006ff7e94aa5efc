"""What the dataset modules share for reading and downloading their files.

Their errors are one line each (the command line prints them so), and a reason taken from
an exception is collapsed into that line by `one_line`. A download goes into a temporary
file next to the file it is meant to become and is checked against the original's size
and digest before the caller moves it into place, so that no reader sees a partial or
wrong file under the final name (`fetch`).
"""

import logging
import os
import pathlib
import tempfile
import urllib.error
import urllib.request
from typing import Callable

from jaxgan.errors import DataError

# Read and hash in chunks of this many bytes, to bound memory on large files.
CHUNK = 1 << 20

# What a failed download raises: HTTP and network errors (URLError), timeouts and
# connection resets (OSError), a malformed mirror URL or a size or digest that is not the
# original's (ValueError).
DOWNLOAD_ERRORS = (urllib.error.URLError, OSError, ValueError)

_log = logging.getLogger(__name__)


def one_line(text: object) -> str:
  """Collapses whitespace so an embedded reason cannot break the one-line error format."""
  return ' '.join(str(text).split())


def unreadable(path: pathlib.Path, e: OSError) -> DataError:
  """The error for a file that is there but cannot be read."""
  return DataError(f'cannot read {path}: {one_line(e.strerror or e)}; '
                   'check that it is a readable file')


def fetch(url: str, dest: pathlib.Path, new_hash: Callable, want_size: int,
          want_digest: str, timeout: float) -> pathlib.Path:
  """Downloads `url` into a new temporary file beside `dest` and returns its path.

  The temporary file is in dest's folder so that moving it to `dest` is an atomic rename.

  Args:
    url: what to download.
    dest: the file the download is meant to become (the caller moves it there).
    new_hash: a hashlib constructor, e.g. hashlib.sha256.
    want_size: the original's size in bytes.
    want_digest: the original's hex digest under `new_hash`.
    timeout: seconds urlopen waits for the server.

  Raises:
    One of DOWNLOAD_ERRORS: the download failed, or the bytes are not the original's
      (ValueError); the temporary file is deleted then.
  """
  fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f'.{dest.name}.', suffix='.part')
  tmp = pathlib.Path(tmp)
  try:
    digest = new_hash()
    size = 0
    _log.info('downloading %s to %s', url, dest)
    with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(url, timeout=timeout) as r:
      while chunk := r.read(CHUNK):
        out.write(chunk)
        digest.update(chunk)
        size += len(chunk)
    if size != want_size or digest.hexdigest() != want_digest:
      raise ValueError(f'got {size} bytes with {digest.name} {digest.hexdigest()}, '
                       f'expected {want_size} bytes with {digest.name} {want_digest}')
    return tmp
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise


def failure_reason(e: BaseException) -> str:
  """Why a download failed, in one line: the HTTP status, the network error's reason or
  the exception itself."""
  if isinstance(e, urllib.error.HTTPError):
    reason = f'HTTP {e.code} {e.reason}'
  elif isinstance(e, urllib.error.URLError):
    reason = e.reason
  else:
    reason = e
  return one_line(reason)
