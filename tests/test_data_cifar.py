"""Tests of jaxgan.data.cifar with small batch files in the original python-pickle format."""

import hashlib
import io
import pathlib
import pickle
import tarfile

import ml_collections
import numpy as np
import pytest

from jaxgan.data import cifar
from jaxgan.data import registry
from jaxgan.errors import DataError
from jaxgan.errors import UserError

N_PER_BATCH = 4  # the real files hold 10000


def _assert_one_line(err):
  text = str(err.value)
  assert '\n' not in text and '\r' not in text, text
  return text


def _batch_bytes(images, labels, py2_numpy_name=True):
  """Pickles NHWC uint8 images like the original batches: b'data' [N, 3072] in CHW order.

  The originals are protocol-2 pickles written by Python 2 with numpy 1, which name the
  module `numpy.core.multiarray`; protocol 2 writes globals as plain text, so the name can be
  swapped in place to produce the same reference.
  """
  data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
  raw = pickle.dumps({b'batch_label': b'testing batch', b'labels': [int(x) for x in labels],
                      b'data': data, b'filenames': [b'x.png'] * len(images)}, protocol=2)
  if py2_numpy_name:
    assert b'numpy._core.multiarray\n' in raw
    raw = raw.replace(b'numpy._core.multiarray\n', b'numpy.core.multiarray\n')
  return raw


def _make_batches(folder, seed=0):
  """Writes the six batch files and batches.meta; returns {file: (images, labels)}."""
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  out = {}
  for i, name in enumerate(cifar.BATCH_FILES):
    images = rng.integers(0, 256, (N_PER_BATCH, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(N_PER_BATCH) + i) % 10
    (folder / name).write_bytes(_batch_bytes(images, labels, py2_numpy_name=i % 2 == 0))
    out[name] = (images, labels)
  (folder / cifar.META_FILE).write_bytes(pickle.dumps(
      {b'label_names': [n.encode() for n in cifar.CLASS_NAMES], b'num_vis': 3072}, protocol=2))
  return out


@pytest.fixture(name='env')
def _env(monkeypatch, tmp_path):
  """No JAXGAN_DATA_DIR, cache under tmp, no network, empty in-process cache."""
  monkeypatch.delenv('JAXGAN_DATA_DIR', raising=False)
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
  monkeypatch.setattr(cifar, 'URL', (tmp_path / 'no-mirror.tar.gz').as_uri())
  cifar.clear_caches()
  yield tmp_path
  cifar.clear_caches()


def test_pixel_order_is_nhwc(env):
  folder = env / 'flat'
  _make_batches(folder)
  # One known pixel, written straight into the CHW row: channel 2 (blue), row 3, column 5.
  data = np.zeros((2, 3072), np.uint8)
  data[1, 2 * 1024 + 3 * 32 + 5] = 200
  data[1, 0 * 1024 + 31 * 32 + 0] = 17  # red, row 31, column 0
  (folder / 'test_batch').write_bytes(pickle.dumps({b'data': data, b'labels': [3, 9]},
                                                   protocol=2))
  images, labels = cifar.load_cifar10('test', folder)
  assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
  assert images.flags.c_contiguous
  assert images[1, 3, 5, 2] == 200 and images[1, 31, 0, 0] == 17
  assert int(images.sum()) == 217
  assert labels.dtype == np.int32 and labels.tolist() == [3, 9]


def test_train_split_concatenates_batches_in_order(env):
  written = _make_batches(env / 'root' / 'cifar10' / 'cifar-10-batches-py')
  images, labels = cifar.load_cifar10('train', env / 'root')
  assert images.shape == (5 * N_PER_BATCH, 32, 32, 3)
  np.testing.assert_array_equal(
      images, np.concatenate([written[f][0] for f in cifar.SPLIT_FILES['train']]))
  np.testing.assert_array_equal(
      labels, np.concatenate([written[f][1] for f in cifar.SPLIT_FILES['train']]))
  # Cached in-process and read-only, like the MNIST loader.
  again = cifar.load_cifar10('train', env / 'root')
  assert again[0] is images and not images.flags.writeable
  with pytest.raises(UserError):
    cifar.load_cifar10('valid', env / 'root')


def test_lookup_order(env, monkeypatch):
  layouts = {
      'a': env / 'a' / 'cifar10' / 'cifar-10-batches-py',
      'b': env / 'b' / 'cifar10',
      'c': env / 'c' / 'cifar-10-batches-py',
      'd': env / 'd',
  }
  for folder in layouts.values():
    _make_batches(folder)
  for root, folder in layouts.items():
    assert cifar.find_cifar_dir(env / root) == folder
  env_root = env / 'envdir'
  _make_batches(env_root / 'cifar10')
  monkeypatch.setenv('JAXGAN_DATA_DIR', str(env_root))
  assert cifar.find_cifar_dir(env / 'a') == layouts['a']  # config dir beats the variable
  assert cifar.find_cifar_dir() == env_root / 'cifar10'
  assert cifar.find_cifar_dir('') == env_root / 'cifar10'
  monkeypatch.delenv('JAXGAN_DATA_DIR')
  cached = env / 'xdg' / 'jaxgan' / 'cifar10' / 'cifar-10-batches-py'
  _make_batches(cached)
  assert cifar.find_cifar_dir() == cached


def test_missing_folder_and_files(env, monkeypatch):
  with pytest.raises(DataError) as err:
    cifar.load_cifar10('train', env / 'nowhere')
  text = _assert_one_line(err)
  assert text.startswith(f'data folder {env / "nowhere"} does not exist (from config.data.dir)')
  assert 'cifar10/cifar-10-batches-py/' in text
  (env / 'empty').mkdir()
  with pytest.raises(DataError) as err:
    cifar.load_cifar10('train', env / 'empty')
  assert 'no CIFAR-10 batch files' in _assert_one_line(err)
  partial = env / 'partial' / 'cifar10'
  _make_batches(partial)
  (partial / 'data_batch_4').unlink()
  with pytest.raises(DataError) as err:
    cifar.load_cifar10('test', env / 'partial')
  assert _assert_one_line(err).startswith(f'CIFAR-10 folder {partial} (from config.data.dir) '
                                          'lacks data_batch_4;')
  # $JAXGAN_DATA_DIR without cifar10/ is an error, not a silent download.
  monkeypatch.setenv('JAXGAN_DATA_DIR', str(env / 'empty'))
  with pytest.raises(DataError) as err:
    cifar.find_cifar_dir()
  assert f'{env / "empty" / "cifar10"} does not exist (from $JAXGAN_DATA_DIR)' in (
      _assert_one_line(err))


@pytest.mark.parametrize('content,why', [
    (b'this is not a pickle', 'UnpicklingError'),
    (None, 'pickle data was truncated'),  # the first half of a real batch
    (pickle.dumps([1, 2, 3], protocol=2), 'a pickled list, expected a dict'),
    (pickle.dumps({b'data': np.zeros((2, 100), np.uint8), b'labels': [0, 1]}, protocol=2),
     "b'data' is uint8 (2, 100), expected uint8 [N, 3072]"),
    (pickle.dumps({b'data': np.zeros((2, 3072), np.uint8), b'labels': [0, 10]}, protocol=2),
     'labels range 0..10'),
    (pickle.dumps({b'data': np.zeros((2, 3072), np.uint8), b'labels': [0]}, protocol=2),
     "2 images but b'labels' has shape (1,)"),
    (pickle.dumps({b'labels': [0]}, protocol=2), "no b'data' or b'labels' entry"),
])
def test_corrupt_batch(env, content, why):
  folder = env / 'bad'
  _make_batches(folder)
  path = folder / 'test_batch'
  if content is None:
    raw = path.read_bytes()
    content = raw[:len(raw) // 2]
  path.write_bytes(content)
  with pytest.raises(DataError) as err:
    cifar.load_cifar10('test', folder)
  text = _assert_one_line(err)
  assert text.startswith(f'{path} is not a valid CIFAR-10 python batch (')
  assert why in text
  assert 'extract it again from cifar-10-python.tar.gz' in text


class _Evil:
  """Unpickling this would create a file (as `os.system` would run a command)."""

  def __init__(self, path):
    self.path = str(path)

  def __reduce__(self):
    return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_pickle_cannot_run_code(env):
  folder = env / 'evil'
  _make_batches(folder)
  marker = env / 'pwned'
  (folder / 'test_batch').write_bytes(pickle.dumps({b'data': _Evil(marker), b'labels': []},
                                                   protocol=2))
  with pytest.raises(DataError) as err:
    cifar.load_cifar10('test', folder)
  assert 'is not allowed in a CIFAR batch' in _assert_one_line(err)
  assert not marker.exists()


def _tar_gz(members):
  """A .tar.gz (bytes) of (name, bytes or None for a symlink to /etc/passwd) members."""
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode='w:gz') as tar:
    for name, data in members:
      info = tarfile.TarInfo(name)
      if data is None:
        info.type, info.linkname = tarfile.SYMTYPE, '/etc/passwd'
        tar.addfile(info)
      else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
  return buf.getvalue()


def _serve_archive(env, monkeypatch, raw):
  archive = env / 'mirror' / 'cifar-10-python.tar.gz'
  archive.parent.mkdir(parents=True, exist_ok=True)
  archive.write_bytes(raw)
  monkeypatch.setattr(cifar, 'URL', archive.as_uri())
  monkeypatch.setattr(cifar, 'ARCHIVE_SIZE', len(raw))
  monkeypatch.setattr(cifar, 'ARCHIVE_MD5', hashlib.md5(raw).hexdigest())


def test_download_extracts_only_known_files(env, monkeypatch):
  src = env / 'src'
  written = _make_batches(src)
  members = [(f'cifar-10-batches-py/{f}', (src / f).read_bytes())
             for f in cifar.BATCH_FILES + (cifar.META_FILE,)]
  members += [('cifar-10-batches-py/readme.html', b'<html>'),
              ('../escaped', b'x'), ('/tmp/absolute', b'x'),
              ('cifar-10-batches-py/../../escaped2', b'x'),
              ('cifar-10-batches-py/link', None)]
  _serve_archive(env, monkeypatch, _tar_gz(members))
  folder = cifar.find_cifar_dir()
  cache = env / 'xdg' / 'jaxgan' / 'cifar10'
  assert folder == cache / 'cifar-10-batches-py'
  assert sorted(p.name for p in folder.iterdir()) == sorted(cifar.BATCH_FILES +
                                                            (cifar.META_FILE,))
  assert sorted(p.name for p in cache.iterdir()) == ['cifar-10-batches-py']  # archive removed
  assert not (env / 'escaped').exists() and not (env / 'xdg' / 'escaped2').exists()
  images, _ = cifar.load_cifar10('test')
  np.testing.assert_array_equal(images, written['test_batch'][0])


def test_download_failures_leave_nothing(env, monkeypatch):
  cache = env / 'xdg' / 'jaxgan' / 'cifar10'
  with pytest.raises(DataError) as err:  # offline: the URL does not exist
    cifar.find_cifar_dir()
  text = _assert_one_line(err)
  assert 'download from' in text and 'retry when online' in text
  src = env / 'src'
  _make_batches(src)
  members = [(f'cifar-10-batches-py/{f}', (src / f).read_bytes()) for f in cifar.BATCH_FILES]
  raw = _tar_gz(members)
  _serve_archive(env, monkeypatch, raw)
  monkeypatch.setattr(cifar, 'ARCHIVE_MD5', '0' * 32)
  with pytest.raises(DataError) as err:
    cifar.find_cifar_dir()
  assert 'expected' in _assert_one_line(err) and '0' * 32 in str(err.value)
  assert list(cache.iterdir()) == []
  # An archive without the test batch is rejected as a whole.
  _serve_archive(env, monkeypatch, _tar_gz(members[:-1]))
  with pytest.raises(DataError) as err:
    cifar.find_cifar_dir()
  assert 'lacks cifar-10-batches-py/test_batch' in _assert_one_line(err)
  assert list(cache.iterdir()) == []
  with pytest.raises(DataError) as err:
    cifar.find_cifar_dir(download=False)
  assert 'download is disabled' in _assert_one_line(err)


def test_registry_cifar10(env):
  _make_batches(env / 'data' / 'cifar10')
  cfg = ml_collections.ConfigDict({'name': 'cifar10', 'dir': str(env / 'data')})
  ds = registry.load_images(cfg)
  assert ds.images.shape == (5 * N_PER_BATCH, 32, 32, 3) and ds.labels.dtype == np.int32
  assert ds.num_classes == 10 and ds.class_names[0] == 'airplane' and ds.name == 'cifar10'
  test = registry.load_images(cfg, split='test')
  assert len(test) == N_PER_BATCH
  cfg.limit = 3
  cfg.image_size = 64
  cfg.channels = 1
  small = registry.load_images(cfg)
  assert small.images.shape == (3, 64, 64, 1) and small.labels.shape == (3,)
