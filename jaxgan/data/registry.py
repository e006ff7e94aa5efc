"""One entry point from `config.data` to an in-memory image dataset.

  dataset = load_images(config.data)        # Dataset(images uint8 [N, H, W, C], labels, ...)

`config.data` fields (an ml_collections ConfigDict, or a plain dict):
  name:       'mnist' | 'fashion_mnist' | 'cifar10' | 'image_folder' | 'celeba' | 'mnist64' |
              'stacked_mnist' (stacked.py: three MNIST digits as R, G, B; labels are the
              1,000 modes; data.stacked_size and data.stacked_seed, default 128,000 and 0).
  dir:        where the files are (None: $JAXGAN_DATA_DIR/<name>/, then the cache; mnist/
              for mnist64 and stacked_mnist); for backend='tfds' the TFDS data_dir.
  image_size: output side; default the dataset's own (28 MNIST, 32 CIFAR-10, 64 folders and
              mnist64). MNIST-like and CIFAR-10 are resized (antialiased bilinear) if it differs.
  channels:   1 or 3; default the dataset's own (1 MNIST, 3 otherwise). 1 -> 3 repeats grey,
              3 -> 1 takes the luma.
  crop_size:  image folders and CelebA: side of the centred square crop before resizing
              (default: the short side; 108 reproduces the DCGAN-tensorflow CelebA crops).
  limit:      use only the first N images (None or 0: all); stacked_mnist builds only those.
  backend:    'files' (default) or 'tfds' (CelebA only; needs tensorflow-datasets).
"""

import dataclasses
import os
import pathlib
from typing import Optional

import numpy as np

from jaxgan.data import cifar
from jaxgan.data import idx
from jaxgan.data import images as image_lib
from jaxgan.data import stacked
from jaxgan.data import toy
from jaxgan.data.files import one_line
from jaxgan.errors import DataError
from jaxgan.errors import UserError

IMAGE_DATASETS = ('mnist', 'fashion_mnist', 'cifar10', 'image_folder', 'celeba', 'mnist64',
                  'stacked_mnist')
BACKENDS = ('files', 'tfds')

_TFDS_CELEBA_SPLITS = ('train', 'validation', 'test')


@dataclasses.dataclass(frozen=True)
class Dataset:
  """An in-memory image dataset.

  Attributes:
    images: uint8 [N, H, W, C] (NHWC); may be read-only (shared with a loader cache).
    labels: int32 [N] in 0..num_classes-1, or None for an unlabelled dataset.
    num_classes: the number of classes, or None if unlabelled.
    name: the dataset name from the config (e.g. 'mnist64').
    class_names: class names in label order, if known (image-folder subfolders, CIFAR-10).
  """
  images: np.ndarray
  labels: Optional[np.ndarray]
  num_classes: Optional[int]
  name: str
  class_names: tuple = ()

  def __len__(self) -> int:
    return len(self.images)

  @property
  def image_shape(self) -> tuple:
    """(H, W, C) of one image."""
    return tuple(self.images.shape[1:])


def _check_limit(limit) -> Optional[int]:
  """None or 0 mean 'all' (as in train.py); otherwise an int >= 1."""
  if limit is None:
    return None
  if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
    raise UserError(f'data.limit must be an integer >= 0 (0 or None: all), got {limit!r}')
  return int(limit) or None


def _adapt(images: np.ndarray, image_size: Optional[int],
           channels: Optional[int]) -> np.ndarray:
  """Resizes / converts an in-memory dataset only if the config asks for something else."""
  image_lib.check_params(image_size or images.shape[1], channels or images.shape[-1])
  if (image_size in (None, images.shape[1]) and images.shape[1] == images.shape[2]
      and channels in (None, images.shape[-1])):
    return images
  return image_lib.resize_images(images, image_size or images.shape[1], channels)


def _only_train(name: str, split: str) -> None:
  """Raises UserError for a split other than 'train' of a single-split (folder) dataset."""
  if split != 'train':
    extra = " or data.backend='tfds' for CelebA's official splits" if name == 'celeba' else ''
    raise UserError(f'dataset {name} has a single split (all images) but split {split!r} was '
                    f"asked for; use split 'train'{extra}")


def _celeba_dir(data_dir) -> pathlib.Path:
  """Finds the CelebA image folder: config dir (or its celeba/), $JAXGAN_DATA_DIR/celeba/, cache."""
  hint = ('point --config.data.dir or $JAXGAN_DATA_DIR/celeba/ at the extracted CelebA images '
          "(img_align_celeba/), or set --config.data.backend=tfds")
  if data_dir:
    root = pathlib.Path(data_dir).expanduser()
    folder, source = (root / 'celeba' if (root / 'celeba').is_dir() else root), 'config.data.dir'
  elif os.environ.get(idx.ENV_VAR, ''):
    folder, source = pathlib.Path(os.environ[idx.ENV_VAR]).expanduser() / 'celeba', (
        f'${idx.ENV_VAR}')
  else:
    folder = idx.cache_dir('celeba')
    if not folder.is_dir():
      raise DataError(f'CelebA not found (config.data.dir and ${idx.ENV_VAR} are unset and '
                      f'{folder} does not exist); {hint}')
    return folder
  if not folder.is_dir():
    what = 'is not a folder' if folder.exists() else 'does not exist'
    raise DataError(f'CelebA folder {folder} {what} (from {source}); {hint}')
  return folder


def _load_celeba_tfds(split: str, data_dir, image_size: int, channels: int,
                      crop_size: Optional[int], limit: Optional[int]) -> np.ndarray:
  """CelebA through tensorflow-datasets ('celeb_a'), centre-cropped and resized like a folder.

  Returns:
    uint8 [N, image_size, image_size, channels].
  """
  try:
    # Imported here: tensorflow-datasets (and TensorFlow) are an optional, heavy dependency.
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("data.backend='tfds' needs tensorflow-datasets, which is not installed: "
                    'pip install tensorflow-datasets (or use data.backend=files with '
                    'data.dir set to a folder of CelebA images)') from None
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if split not in _TFDS_CELEBA_SPLITS:
    raise UserError(f'unknown split {split!r} for celeba (tfds); use one of '
                    f'{", ".join(_TFDS_CELEBA_SPLITS)}')
  # TFDS slicing syntax reads only the first `limit` examples.
  tfds_split = f'{split}[:{limit}]' if limit else split
  try:
    ds = tfds.load('celeb_a', split=tfds_split, data_dir=data_dir or None, shuffle_files=False)
    out = [image_lib.crop_resize(Image.fromarray(ex['image']), image_size, channels, crop_size)
           for ex in tfds.as_numpy(ds)]
  except Exception as e:  # pylint: disable=broad-except
    # TFDS raises its own and TensorFlow's error types (missing manual download, quota on
    # Google Drive, corrupt records); the user needs the reason, on one line.
    raise DataError(f'tensorflow-datasets could not load celeb_a split {tfds_split} '
                    f'(data_dir {data_dir or "default"}): {type(e).__name__}: {one_line(e)}; '
                    'prepare it with tfds build celeb_a, or use data.backend=files with a '
                    'folder of CelebA images') from None
  if not out:
    raise DataError(f'tensorflow-datasets returned no images for celeb_a split {tfds_split}; '
                    'check the prepared dataset in the TFDS data_dir')
  return np.stack(out)


def load_images(data_cfg, split: str = 'train') -> Dataset:
  """Loads the dataset `data_cfg` names (see the module docstring for the fields).

  Args:
    data_cfg: `config.data`; only `name` is required. Optional fields are read with
      `.get(key, default)`, so configs that lack them keep working.
    split: 'train' or 'test' for mnist, fashion_mnist, mnist64, stacked_mnist (the MNIST
      split its digits come from) and cifar10; 'train',
      'validation' or 'test' for CelebA through TFDS; image folders have only 'train'.

  Returns:
    A Dataset whose images are uint8 [N, H, W, C].

  Raises:
    UserError: unknown name / backend / split, bad field values, image_folder without dir, a
      missing tensorflow-datasets.
    DataError: missing or corrupt data files (one-line messages naming the file or folder).
  """
  name = data_cfg.get('name', None)
  data_dir = data_cfg.get('dir', None) or None
  image_size = data_cfg.get('image_size', None)
  channels = data_cfg.get('channels', None)
  crop_size = data_cfg.get('crop_size', None)
  limit = _check_limit(data_cfg.get('limit', None))
  backend = data_cfg.get('backend', None) or 'files'

  if backend not in BACKENDS:
    raise UserError(f'unknown data.backend {backend!r}; use one of {", ".join(BACKENDS)}')
  if name in toy.MIXTURES or name in ('ring8', 'grid25'):
    raise UserError(f'data.name {name!r} is a 2-D mixture, not an image dataset: sample it '
                    'with jaxgan.data.toy.sample_mixture')
  if name not in IMAGE_DATASETS:
    raise UserError(f'unknown data.name {name!r}; known image datasets: '
                    f'{", ".join(IMAGE_DATASETS)}')
  if backend == 'tfds' and name != 'celeba':
    raise UserError(f"data.backend='tfds' is supported only for celeba; use "
                    f"data.backend='files' for {name}")

  if name in ('mnist', 'fashion_mnist', 'mnist64'):
    images, labels = idx.load_dataset('mnist' if name == 'mnist64' else name, split, data_dir)
    if limit:
      images, labels = images[:limit], labels[:limit]
    if name == 'mnist64':
      # The DCGAN-64 fallback when CelebA is absent: 64x64 RGB unless the config says otherwise.
      image_size, channels = image_size or 64, channels or 3
    return Dataset(_adapt(images, image_size, channels), labels, idx.NUM_CLASSES, name,
                   tuple(str(i) for i in range(idx.NUM_CLASSES)))

  if name == 'stacked_mnist':
    if channels not in (None, 3):
      raise UserError(f'stacked_mnist has 3 channels (one digit each), got '
                      f'data.channels={channels}')
    images, labels = stacked.load_stacked_mnist(data_cfg, split, limit)
    return Dataset(_adapt(images, image_size, channels), labels, stacked.NUM_MODES, name,
                   stacked.CLASS_NAMES)

  if name == 'cifar10':
    images, labels = cifar.load_cifar10(split, data_dir)
    if limit:
      images, labels = images[:limit], labels[:limit]
    return Dataset(_adapt(images, image_size, channels), labels, cifar.NUM_CLASSES, name,
                   cifar.CLASS_NAMES)

  image_size = 64 if image_size is None else image_size
  channels = 3 if channels is None else channels
  image_lib.check_params(image_size, channels, crop_size)

  if name == 'image_folder':
    if not data_dir:
      raise UserError("data.name='image_folder' needs --config.data.dir=FOLDER, a folder of "
                      'PNG/JPG/JPEG/BMP images (class subfolders FOLDER/<class>/ give labels)')
    _only_train(name, split)
    images, labels, class_names = image_lib.load_image_folder(
        data_dir, image_size, channels, limit=limit, crop_size=crop_size)
    return Dataset(images, labels, len(class_names) or None, name, class_names)

  # name == 'celeba': unconditional, so the folder's layout (e.g. everything under
  # img_align_celeba/, which would read as one class) never turns into labels.
  if backend == 'tfds':
    images = _load_celeba_tfds(split, data_dir, image_size, channels, crop_size, limit)
  else:
    _only_train(name, split)
    images, _, _ = image_lib.load_image_folder(
        _celeba_dir(data_dir), image_size, channels, limit=limit, crop_size=crop_size)
  return Dataset(images, None, None, name)
