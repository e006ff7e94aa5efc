"""Image-folder datasets (CelebA, CUFS sketches, any folder of PNG/JPG/JPEG/BMP files).

Every image is centre-cropped to a square, resized to `image_size` x `image_size` and converted
to RGB or grayscale, giving one uint8 array [N, H, W, C]. Files are found recursively and read
in sorted order of their path relative to the folder, so the array (and with it the data order
of `batching`) is the same on every machine.

If every image sits under a subfolder of the root (`root/<class>/.../*.png`) the subfolder names,
sorted, are the classes and the labels are their indices; images directly in the root mean an
unlabelled folder. Decoding 200k JPEGs takes minutes, so the result is cached as an `.npz` in the
jaxgan cache (`cache_dir('image_folder')`), keyed by the folder, the size and mtime of every file
and the parameters, so an edited image or other parameters mean a fresh decode.
"""

import concurrent.futures
import hashlib
import logging
import os
import pathlib
import tempfile
import zipfile
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image
from PIL import ImageOps

from jaxgan.data.files import one_line
from jaxgan.data.idx import cache_dir
from jaxgan.errors import DataError
from jaxgan.errors import UserError

PathLike = Union[str, os.PathLike]

IMAGE_EXTENSIONS = ('.bmp', '.jpeg', '.jpg', '.png')

# Bump when the decoding changes, so caches written by an older version are not reused.
_CACHE_VERSION = 1
_CACHE_NAME = 'image_folder'

_log = logging.getLogger(__name__)


def _is_image(name: str) -> bool:
  # Names starting with '.' are skipped: macOS leaves '._x.jpg' AppleDouble files next to every
  # image on foreign file systems, and they are not images.
  return not name.startswith('.') and name.lower().endswith(IMAGE_EXTENSIONS)


def check_params(image_size: int, channels: int, crop_size: Optional[int] = None) -> None:
  """Raises UserError unless image_size >= 1, channels is 1 or 3 and crop_size is None or >= 1."""
  for what, value in (('image_size', image_size), ('crop_size', crop_size)):
    if value is None and what == 'crop_size':
      continue
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
      raise UserError(f'data.{what} must be an integer >= 1, got {value!r}')
  if channels not in (1, 3) or isinstance(channels, bool):
    raise UserError(f'data.channels must be 1 (grayscale) or 3 (RGB), got {channels!r}')


def _check_folder(folder: pathlib.Path) -> None:
  if not folder.is_dir():
    what = 'is not a folder' if folder.exists() else 'does not exist'
    raise DataError(f'image folder {folder} {what}; set --config.data.dir to a folder of '
                    'PNG/JPG/JPEG/BMP images')


def list_images(folder: PathLike) -> tuple:
  """Finds the images under `folder` and their class labels.

  Args:
    folder: the root folder; searched recursively (symlinked subfolders are not followed, so a
      link cycle cannot make the walk endless). Hidden files and folders are skipped.

  Returns:
    (paths, labels, class_names): the image files sorted by their relative POSIX path;
    int32 [N] labels or None; and the sorted class names (an empty tuple if unlabelled).
    Labels are given only if no image lies directly in `folder`: then the first path component
    of each image is its class.

  Raises:
    DataError: `folder` is missing, not a folder, or holds no images.
  """
  folder = pathlib.Path(folder).expanduser()
  _check_folder(folder)
  rel_paths = []

  def fail(e: OSError):
    # os.walk skips unreadable subfolders by default: that would silently drop data.
    raise DataError(f'cannot read {e.filename or folder}: {one_line(e.strerror or e)}; '
                    'fix its permissions or move it out of the image folder')

  for dirpath, dirnames, filenames in os.walk(folder, onerror=fail):
    dirnames[:] = [d for d in dirnames if not d.startswith('.')]
    rel_dir = pathlib.PurePath(dirpath).relative_to(folder)
    rel_paths.extend((rel_dir / f).as_posix() for f in filenames if _is_image(f))
  if not rel_paths:
    raise DataError(f'image folder {folder} holds no PNG/JPG/JPEG/BMP images (searched '
                    'recursively); point --config.data.dir at the folder holding the images')
  # Sorted by the string, not by os.walk's order, which depends on the file system.
  rel_paths.sort()
  paths = [folder / p for p in rel_paths]
  if any('/' not in p for p in rel_paths):
    return paths, None, ()
  classes = [p.split('/', 1)[0] for p in rel_paths]
  class_names = tuple(sorted(set(classes)))
  index = {c: i for i, c in enumerate(class_names)}
  labels = np.asarray([index[c] for c in classes], dtype=np.int32)
  return paths, labels, class_names


def _to_mode(img: Image.Image, channels: int) -> Image.Image:
  """Converts a PIL image to 'RGB' (channels 3) or 'L' (channels 1), keeping 16-bit range."""
  if img.mode in ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I'):
    # 16-bit grayscale PNGs open in these modes, and PIL's convert('L') clips them to 255
    # instead of scaling: a 16-bit sketch would come out almost all white.
    arr = np.asarray(img, dtype=np.float64)
    img = Image.fromarray(np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8), mode='L')
  target = 'RGB' if channels == 3 else 'L'
  return img if img.mode == target else img.convert(target)


def crop_resize(img: Image.Image, image_size: int, channels: int,
                crop_size: Optional[int] = None) -> np.ndarray:
  """Centre-crops a PIL image to a square and resizes it.

  Args:
    img: any PIL image.
    image_size: output side length.
    channels: 3 (RGB) or 1 (grayscale, ITU-R 601 luma as PIL computes it).
    crop_size: side of the centred square crop; None takes the largest square (the short side).

  Returns:
    uint8 [image_size, image_size, channels].

  Raises:
    ValueError: the image is smaller than crop_size.
  """
  img = _to_mode(img, channels)
  w, h = img.size
  side = min(w, h) if crop_size is None else crop_size
  if side > min(w, h):
    raise ValueError(f'the image is {w}x{h}, smaller than data.crop_size {side}')
  # Integer offsets: for an odd margin the crop sits half a pixel to the top-left, which keeps
  # pixels unresampled when no resize is needed.
  left, top = (w - side) // 2, (h - side) // 2
  # Crop, then resize: resize(box=...) would let the filter read pixels outside the box, so
  # the cropped-away margins would bleed into the edge rows.
  out = img.crop((left, top, left + side, top + side))
  if side != image_size:
    # LANCZOS (windowed sinc, support 3) antialiases when shrinking, e.g. CelebA 178 -> 64.
    out = out.resize((image_size, image_size), Image.Resampling.LANCZOS)
  arr = np.asarray(out, dtype=np.uint8)
  return arr.reshape(image_size, image_size, channels)


def _decode(path: pathlib.Path, image_size: int, channels: int,
            crop_size: Optional[int]) -> np.ndarray:
  """Reads one file; raises DataError naming it if it cannot be decoded."""
  try:
    with Image.open(path) as img:
      img.load()
      # Camera JPEGs store their rotation in EXIF; apply it so the crop is of the upright image.
      img = ImageOps.exif_transpose(img)
      return crop_resize(img, image_size, channels, crop_size)
  except Exception as e:  # pylint: disable=broad-except
    # PIL raises a plugin-dependent zoo for broken files (OSError, SyntaxError, struct.error,
    # ValueError, EOFError, DecompressionBombError...); all mean "this file is unusable".
    raise DataError(f'cannot read image {path}: {type(e).__name__}: {one_line(e)}; replace or '
                    'delete the file, or move it out of the data folder') from None


def _cache_key(folder: pathlib.Path, paths: Sequence[pathlib.Path], image_size: int,
               channels: int, crop_size: Optional[int], limit: Optional[int]) -> str:
  """A hex digest of everything the decoded array depends on."""
  digest = hashlib.sha256()
  digest.update(repr((_CACHE_VERSION, str(folder.resolve()), image_size, channels, crop_size,
                      limit, Image.__version__)).encode())
  for path in paths:
    st = path.stat()
    digest.update(f'\0{path.relative_to(folder).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}'
                  .encode())
  return digest.hexdigest()


def _read_cache(path: pathlib.Path, n: int, image_size: int, channels: int) -> Optional[tuple]:
  """Returns (images, labels or None, class_names) from a cache file, or None if unusable."""
  try:
    with np.load(path, allow_pickle=False) as z:
      images = z['images']
      labels = z['labels'] if bool(z['has_labels']) else None
      class_names = tuple(str(c) for c in z['class_names'])
  except FileNotFoundError:
    return None
  except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
    # A damaged cache is not the user's data: log it and decode the folder again.
    _log.warning('ignoring unreadable image cache %s (%s); decoding again', path, e)
    return None
  if (images.shape != (n, image_size, image_size, channels) or images.dtype != np.uint8
      or (labels is not None and labels.shape != (n,))):
    _log.warning('ignoring image cache %s of shape %s; decoding again', path, images.shape)
    return None
  return images, labels, class_names


def _write_cache(path: pathlib.Path, images: np.ndarray, labels: Optional[np.ndarray],
                 class_names: tuple) -> None:
  """Writes the cache atomically; a failure (read-only home, full disk) only logs a warning."""
  tmp = None
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.stem}.', suffix='.part')
    with os.fdopen(fd, 'wb') as f:
      # Uncompressed: decoded pixels compress poorly and loading must be fast.
      np.savez(f, images=images, has_labels=np.asarray(labels is not None),
               labels=labels if labels is not None else np.zeros((0,), np.int32),
               class_names=np.asarray(class_names, dtype=np.str_))
    os.replace(tmp, path)
    tmp = None
  except OSError as e:
    _log.warning('could not write the image cache %s: %s', path, e)
  finally:
    if tmp is not None and os.path.exists(tmp):
      os.unlink(tmp)


def load_image_folder(folder: PathLike, image_size: int = 64, channels: int = 3,
                      limit: Optional[int] = None, crop_size: Optional[int] = None,
                      use_cache: bool = True, num_workers: Optional[int] = None) -> tuple:
  """Loads every image under `folder` as one array.

  Args:
    folder: root folder (see `list_images` for the search and the class labels).
    image_size: output side length.
    channels: 3 (RGB) or 1 (grayscale).
    limit: use only the first `limit` files in sorted order (None or 0: all). Only those are
      decoded. With class subfolders the first files are those of the first classes.
    crop_size: side of the centred square crop before resizing; None: the short side.
    use_cache: read and write the decoded array in `cache_dir('image_folder')`.
    num_workers: decoding threads (PIL releases the GIL while decoding and resizing); None
      uses up to 8.

  Returns:
    (images, labels, class_names): uint8 [N, image_size, image_size, channels]; int32 [N] or
    None; a tuple of class names (empty if unlabelled).

  Raises:
    UserError: bad image_size / channels / crop_size / limit.
    DataError: the folder is missing or holds no images, or an image cannot be read (or is
      smaller than crop_size); the message names the file.
  """
  check_params(image_size, channels, crop_size)
  if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                            or limit < 0):
    raise UserError(f'data.limit must be an integer >= 0, got {limit!r}')
  folder = pathlib.Path(folder).expanduser()
  paths, labels, class_names = list_images(folder)
  if limit:
    paths = paths[:limit]
    labels = labels[:limit] if labels is not None else None
  n = len(paths)

  cache_path = None
  if use_cache:
    try:
      key = _cache_key(folder, paths, image_size, channels, crop_size, limit or None)
    except OSError as e:
      raise DataError(f'cannot read {folder}: {one_line(e)}; check that the image folder is '
                      'readable') from None
    cache_path = cache_dir(_CACHE_NAME) / f'{key}.npz'
    cached = _read_cache(cache_path, n, image_size, channels)
    if cached is not None:
      return cached

  images = np.empty((n, image_size, image_size, channels), dtype=np.uint8)
  workers = num_workers or min(8, os.cpu_count() or 1)

  def decode_into(i):
    images[i] = _decode(paths[i], image_size, channels, crop_size)

  if workers <= 1 or n < 64:
    for i in range(n):
      decode_into(i)
  else:
    _log.info('decoding %d images from %s with %d threads', n, folder, workers)
    pool = concurrent.futures.ThreadPoolExecutor(workers)
    try:
      # list() re-raises the first failure in file order, so the error names the same file on
      # every run.
      list(pool.map(decode_into, range(n)))
    finally:
      # On an error, drop the queued files instead of decoding the rest of a 200k folder
      # before the user sees the message.
      pool.shutdown(wait=True, cancel_futures=True)
  if cache_path is not None:
    _write_cache(cache_path, images, labels, class_names)
  return images, labels, class_names


def _bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
  """Weights [out_size, in_size] of an antialiased bilinear (triangle filter) resize.

  Pixel centres are at (i + 0.5) * scale as in PIL; when shrinking, the triangle is widened by
  the scale factor so that every input pixel contributes (antialiasing). Rows sum to 1.
  """
  scale = in_size / out_size
  support = max(scale, 1.0)  # Triangle half-width in input pixels.
  centres = (np.arange(out_size) + 0.5) * scale
  src = np.arange(in_size) + 0.5
  w = np.maximum(0.0, 1.0 - np.abs(src[None, :] - centres[:, None]) / support)
  return w / w.sum(axis=1, keepdims=True)


def resize_images(images: np.ndarray, image_size: int, channels: Optional[int] = None,
                  chunk: int = 2048) -> np.ndarray:
  """Resizes a uint8 batch with an antialiased bilinear filter, in numpy.

  Used for in-memory datasets (MNIST at 64x64 for DCGAN-64); matches PIL's BILINEAR resize
  within 1 grey level.

  Args:
    images: uint8 [N, H, W, C] with C 1 or 3.
    image_size: output side length (the images are stretched if H != W; they are not cropped).
    channels: output channels (1 or 3); None keeps C. 1 -> 3 repeats the grey channel, 3 -> 1
      takes the ITU-R 601 luma.
    chunk: images per float32 block, to bound memory.

  Returns:
    uint8 [N, image_size, image_size, channels].
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
    raise ValueError(f'resize_images expects uint8 [N, H, W, 1 or 3], got {images.dtype} '
                     f'{images.shape}')
  channels = images.shape[-1] if channels is None else channels
  check_params(image_size, channels)
  n, h, w, c = images.shape
  same_size = (h, w) == (image_size, image_size)
  rows = _bilinear_matrix(h, image_size).astype(np.float32)
  cols = _bilinear_matrix(w, image_size).astype(np.float32)
  luma = np.asarray([0.299, 0.587, 0.114], np.float32)
  out = np.empty((n, image_size, image_size, channels), dtype=np.uint8)
  for start in range(0, n, chunk):
    x = images[start:start + chunk]
    if c == 3 and channels == 1:
      # Grey first: the resize is linear, so the order does not matter, and one channel is
      # a third of the work.
      x = (x.astype(np.float32) @ luma)[..., None]
    if not same_size:
      # out[n, i, j, c] = sum_{y, x} rows[i, y] * cols[j, x] * in[n, y, x, c]: the separable
      # filter as two matrix products.
      x = np.einsum('iy,nyxc->nixc', rows, x.astype(np.float32), optimize=True)
      x = np.einsum('jx,nixc->nijc', cols, x, optimize=True)
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8) if x.dtype != np.uint8 else x
    if x.shape[-1] == 1 and channels == 3:
      x = np.repeat(x, 3, axis=-1)
    out[start:start + chunk] = x
  return out
