"""Tests of jaxgan.data: IDX files, lookup, verification, download and the data order."""

import gzip
import hashlib
import os
import pathlib
import re
import shutil
import struct

import numpy as np
import pytest

from jaxgan import data
from jaxgan.data import batching
from jaxgan.data import idx
from jaxgan.errors import DataError
from jaxgan.errors import UserError

# Read at import, before any fixture edits the environment: the real-data tests use it.
REAL_DATA_DIR = os.environ.get('JAXGAN_DATA_DIR')

TRAIN_IMAGES, TRAIN_LABELS = idx.SPLIT_FILES['train']
TEST_IMAGES, TEST_LABELS = idx.SPLIT_FILES['test']


def _real_dir(name):
  """Returns $JAXGAN_DATA_DIR/<name>, or skips the test with the reason."""
  if not REAL_DATA_DIR:
    pytest.skip('JAXGAN_DATA_DIR is not set; point it at a folder holding mnist/ and '
                'fashion_mnist/ (e.g. shared/data) to run the real-data tests')
  folder = pathlib.Path(REAL_DATA_DIR) / name
  if not folder.is_dir():
    pytest.skip(f'{folder} does not exist; real {name} files are needed for this test')
  return folder


def _assert_one_line(err):
  """The message of a UserError is printed as one line by main.py."""
  text = str(err.value)
  assert '\n' not in text and '\r' not in text, text
  return text


def _write_idx(path, array, magic):
  """Writes `array` as a gzip'd IDX file with the given magic (big-endian header)."""
  header = struct.pack('>I', magic) + struct.pack(f'>{array.ndim}I', *array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _make_fake(folder, n_train=12, n_test=5, seed=0):
  """Writes the four fake IDX files into `folder`; returns (arrays by file, checksum table)."""
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  arrays = {}
  for (images_name, labels_name), n in zip(
      (idx.SPLIT_FILES['train'], idx.SPLIT_FILES['test']), (n_train, n_test)):
    arrays[images_name] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    arrays[labels_name] = (np.arange(n) + seed) % 10
    _write_idx(folder / images_name, arrays[images_name], 0x803)
    _write_idx(folder / labels_name, arrays[labels_name], 0x801)
  table = {}
  for file_name in idx.FILE_NAMES:
    raw = (folder / file_name).read_bytes()
    table[file_name] = (len(raw), hashlib.sha256(raw).hexdigest())
  return arrays, table


@pytest.fixture(name='env')
def _env(monkeypatch, tmp_path):
  """Isolates lookup: no JAXGAN_DATA_DIR, cache under tmp, no network, empty caches."""
  monkeypatch.delenv('JAXGAN_DATA_DIR', raising=False)
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
  # Any download a test does not set up on purpose fails fast instead of going online.
  monkeypatch.setitem(idx.MIRRORS, 'mnist', (tmp_path / 'no-mirror').as_uri() + '/')
  monkeypatch.setitem(idx.MIRRORS, 'fashion_mnist', (tmp_path / 'no-mirror').as_uri() + '/')
  idx.clear_caches()
  yield tmp_path
  idx.clear_caches()


def _use_fake_checksums(monkeypatch, table, name='mnist'):
  monkeypatch.setitem(idx.CHECKSUMS, name, table)


# ---------------------------------------------------------------------------------------------
# Real data (skipped without JAXGAN_DATA_DIR).


def test_real_mnist_train():
  folder = _real_dir('mnist')
  images, labels = data.load_dataset('mnist', 'train', data_dir=folder.parent)
  assert images.shape == (60000, 28, 28, 1) and images.dtype == np.uint8
  assert labels.shape == (60000,) and labels.dtype == np.int32
  assert int(images.sum(dtype=np.int64)) == 1567298545
  assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851,
                                          5949]
  # The second load comes from the in-process cache, the same (read-only) arrays.
  again = data.load_dataset('mnist', 'train', data_dir=folder.parent)
  assert again[0] is images and again[1] is labels
  assert not images.flags.writeable


def test_real_mnist_test_via_env(monkeypatch):
  folder = _real_dir('mnist')
  monkeypatch.setenv('JAXGAN_DATA_DIR', str(folder.parent))
  images, labels = data.load_dataset('mnist', 'test')
  assert images.shape == (10000, 28, 28, 1)
  assert int(images.sum(dtype=np.int64)) == 264923200
  assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_fashion_test():
  folder = _real_dir('fashion_mnist')
  # data_dir may also name the dataset folder itself.
  images, labels = data.load_dataset('fashion_mnist', 'test', data_dir=folder)
  assert images.shape == (10000, 28, 28, 1)
  assert int(images.sum(dtype=np.int64)) == 573469082
  assert np.bincount(labels).tolist() == [1000] * 10


def test_real_truncated_file(tmp_path):
  src = _real_dir('mnist') / TRAIN_LABELS
  raw = src.read_bytes()
  bad = tmp_path / TRAIN_LABELS
  bad.write_bytes(raw[:len(raw) // 2])
  with pytest.raises(DataError) as err:
    data.verify_file(bad, 'mnist')
  text = _assert_one_line(err)
  assert text.startswith(f'{bad} is truncated ({len(raw) // 2} bytes, expected {len(raw)}): ')


def test_real_file_of_other_dataset(tmp_path):
  src = _real_dir('mnist') / TEST_LABELS
  copy = tmp_path / TEST_LABELS
  shutil.copyfile(src, copy)
  with pytest.raises(DataError) as err:
    data.verify_file(copy, 'fashion_mnist')
  text = _assert_one_line(err)
  assert f'it is mnist/{TEST_LABELS}' in text
  assert idx.CHECKSUMS['mnist'][TEST_LABELS][1] in text  # actual
  assert idx.CHECKSUMS['fashion_mnist'][TEST_LABELS][1] in text  # expected


# ---------------------------------------------------------------------------------------------
# to_float.


def test_to_float_range():
  images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  out = data.to_float(images)
  assert out.dtype == np.float32 and out.shape == images.shape
  assert out.min() == -1.0 and out.max() == 1.0
  np.testing.assert_allclose(out.ravel(), np.arange(256) / 127.5 - 1, rtol=0, atol=1e-6)
  with pytest.raises(TypeError):
    data.to_float(out)  # already scaled


# ---------------------------------------------------------------------------------------------
# Lookup, loading and caches with fake files.


def test_lookup_order(env, monkeypatch):
  tmp = env
  cfg_root, cfg_flat = tmp / 'cfg', tmp / 'flat'
  env_root = tmp / 'envdir'
  for folder in (cfg_root / 'mnist', cfg_flat, env_root / 'mnist', tmp / 'xdg/jaxgan/mnist',
                 tmp / 'home/.cache/jaxgan/mnist'):
    _make_fake(folder)
  monkeypatch.setenv('JAXGAN_DATA_DIR', str(env_root))
  # config.data.dir beats $JAXGAN_DATA_DIR, in both accepted layouts.
  assert data.find_dataset_dir('mnist', cfg_root) == cfg_root / 'mnist'
  assert data.find_dataset_dir('mnist', str(cfg_flat)) == cfg_flat
  # $JAXGAN_DATA_DIR beats the cache; '' means unset.
  assert data.find_dataset_dir('mnist') == env_root / 'mnist'
  assert data.find_dataset_dir('mnist', '') == env_root / 'mnist'
  # Then the cache, under XDG_CACHE_HOME or else ~/.cache.
  monkeypatch.delenv('JAXGAN_DATA_DIR')
  assert data.find_dataset_dir('mnist') == tmp / 'xdg/jaxgan/mnist'
  monkeypatch.delenv('XDG_CACHE_HOME')
  assert data.find_dataset_dir('mnist') == tmp / 'home/.cache/jaxgan/mnist'


def test_load_fake_verified_and_cached(env, monkeypatch):
  arrays, table = _make_fake(env / 'd' / 'mnist')
  _use_fake_checksums(monkeypatch, table)
  images, labels = data.load_dataset('mnist', 'train', data_dir=env / 'd')
  assert images.shape == (12, 28, 28, 1) and images.dtype == np.uint8
  assert labels.dtype == np.int32
  np.testing.assert_array_equal(images[..., 0], arrays[TRAIN_IMAGES])
  np.testing.assert_array_equal(labels, arrays[TRAIN_LABELS])
  test_images, _ = data.load_dataset('mnist', 'test', data_dir=env / 'd')
  assert test_images.shape == (5, 28, 28, 1)
  assert data.load_dataset('mnist', 'train', data_dir=env / 'd')[0] is images
  with pytest.raises(ValueError):
    images[0, 0, 0, 0] = 1  # shared with the cache, so read-only


def test_verify_is_cached_per_stat(env, monkeypatch):
  folder = env / 'd'
  _, table = _make_fake(folder)
  _use_fake_checksums(monkeypatch, table)
  calls = []
  real_sha = idx._sha256
  monkeypatch.setattr(idx, '_sha256', lambda p: calls.append(p) or real_sha(p))
  for _ in range(3):
    data.verify_file(folder / TRAIN_LABELS, 'mnist')
  assert len(calls) == 1
  # A changed file (new mtime) is hashed again, and now fails.
  path = folder / TRAIN_LABELS
  raw = bytearray(path.read_bytes())
  raw[-1] ^= 0xff
  path.write_bytes(bytes(raw))
  os.utime(path, ns=(1, 1))
  with pytest.raises(DataError):
    data.verify_file(path, 'mnist')
  assert len(calls) == 2


def test_unknown_name_and_split(env):
  with pytest.raises(UserError) as err:
    data.load_dataset('cifar10')
  assert 'fashion_mnist' in str(err.value) and 'mnist' in str(err.value)
  with pytest.raises(UserError) as err:
    data.load_dataset('mnist', 'validation')
  assert 'train' in str(err.value) and 'test' in str(err.value)


def test_missing_env_folder_is_an_error(env, monkeypatch):
  # A mirror that would work: the error must come before any download is tried.
  _, table = _make_fake(env / 'mirror')
  _use_fake_checksums(monkeypatch, table)
  monkeypatch.setitem(idx.MIRRORS, 'mnist', (env / 'mirror').as_uri() + '/')
  missing = env / 'nonexistent'
  monkeypatch.setenv('JAXGAN_DATA_DIR', str(missing))
  with pytest.raises(DataError) as err:
    data.load_dataset('mnist')
  text = _assert_one_line(err)
  assert text.startswith(f'data folder {missing}/mnist does not exist (from $JAXGAN_DATA_DIR); ')
  assert 'JAXGAN_DATA_DIR' in text and 'config.data.dir' in text
  with pytest.raises(DataError) as err:
    data.load_dataset('mnist', data_dir=missing)
  assert _assert_one_line(err).startswith(f'data folder {missing} does not exist '
                                          '(from config.data.dir); ')
  assert not data.cache_dir('mnist').exists()


def test_folder_lacking_a_file_is_an_error(env, monkeypatch):
  _make_fake(env / 'envdir' / 'mnist')
  (env / 'envdir' / 'mnist' / TEST_LABELS).unlink()
  monkeypatch.setenv('JAXGAN_DATA_DIR', str(env / 'envdir'))
  with pytest.raises(DataError) as err:
    data.find_dataset_dir('mnist')
  text = _assert_one_line(err)
  assert f'{env}/envdir/mnist (from $JAXGAN_DATA_DIR) lacks {TEST_LABELS}' in text


def test_truncated_fake_file(env, monkeypatch):
  folder = env / 'd'
  _, table = _make_fake(folder)
  _use_fake_checksums(monkeypatch, table)
  path = folder / TRAIN_IMAGES
  raw = path.read_bytes()
  path.write_bytes(raw[:100])
  with pytest.raises(DataError) as err:
    data.load_dataset('mnist', data_dir=folder)
  text = _assert_one_line(err)
  assert text.startswith(f'{path} is truncated (100 bytes, expected {len(raw)}): ')
  # Without verification the truncated gzip stream is still caught.
  with pytest.raises(DataError) as err:
    data.load_dataset('mnist', data_dir=folder, verify=False)
  assert _assert_one_line(err).startswith(f'{path} is not a valid gzip file (EOFError')


def test_sha_mismatch(env, monkeypatch):
  folder = env / 'd'
  _, table = _make_fake(folder)
  _use_fake_checksums(monkeypatch, table)
  path = folder / TRAIN_IMAGES
  raw = bytearray(path.read_bytes())
  raw[len(raw) // 2] ^= 0x01  # same size, different content
  path.write_bytes(bytes(raw))
  with pytest.raises(DataError) as err:
    data.load_dataset('mnist', data_dir=folder)
  text = _assert_one_line(err)
  actual = hashlib.sha256(bytes(raw)).hexdigest()
  assert text.startswith(f'{path} fails its checksum: sha256 {actual}, '
                         f'expected {table[TRAIN_IMAGES][1]} ')
  assert 're-download it' in text


def test_corrupt_gzip(env, monkeypatch):
  folder = env / 'd'
  _make_fake(folder)
  path = folder / TRAIN_IMAGES
  raw = bytearray(path.read_bytes())
  # Well past the gzip header (with its file name): the deflate data or its CRC must fail.
  raw[len(raw) // 2:len(raw) // 2 + 8] = b'\xff' * 8
  path.write_bytes(bytes(raw))
  # Checksums that match the corrupt file, so the parser (not verification) must catch it.
  table = {f: ((folder / f).stat().st_size,
               hashlib.sha256((folder / f).read_bytes()).hexdigest()) for f in idx.FILE_NAMES}
  _use_fake_checksums(monkeypatch, table)
  with pytest.raises(DataError) as err:
    data.load_dataset('mnist', data_dir=folder)
  assert _assert_one_line(err).startswith(f'{path} is not a valid gzip file (')
  (folder / TEST_IMAGES).write_bytes(b'not gzip at all')
  with pytest.raises(DataError) as err:
    data.load_dataset('mnist', 'test', data_dir=folder, verify=False)
  assert _assert_one_line(err).startswith(f'{folder / TEST_IMAGES} is not a valid gzip file (')


def test_bad_idx_content(env):
  folder = env / 'd'
  _make_fake(folder, n_train=12)
  # Labels file with a different count than the images.
  _write_idx(folder / TRAIN_LABELS, np.arange(11) % 10, 0x801)
  with pytest.raises(DataError) as err:
    data.load_dataset('mnist', data_dir=folder, verify=False)
  assert '12 images but' in _assert_one_line(err) and '11 labels' in str(err.value)
  # Images and labels swapped: the IDX magic says so.
  shutil.copyfile(folder / TEST_LABELS, folder / TEST_IMAGES)
  with pytest.raises(DataError) as err:
    data.load_dataset('mnist', 'test', data_dir=folder, verify=False)
  assert 'IDX magic 0x00000801, expected 0x00000803' in _assert_one_line(err)


# ---------------------------------------------------------------------------------------------
# Download.


def test_download_from_file_mirror(env, monkeypatch):
  mirror = env / 'mirror'
  arrays, table = _make_fake(mirror)
  _use_fake_checksums(monkeypatch, table)
  monkeypatch.setitem(idx.MIRRORS, 'mnist', mirror.as_uri() + '/')
  cache = env / 'xdg' / 'jaxgan' / 'mnist'
  # One file is already cached; only the missing three are fetched.
  cache.mkdir(parents=True)
  shutil.copyfile(mirror / TEST_LABELS, cache / TEST_LABELS)
  assert data.find_dataset_dir('mnist') == cache
  assert sorted(os.listdir(cache)) == sorted(idx.FILE_NAMES)  # no temporary files left
  for f in idx.FILE_NAMES:
    assert (cache / f).read_bytes() == (mirror / f).read_bytes()
  images, labels = data.load_dataset('mnist')
  np.testing.assert_array_equal(images[..., 0], arrays[TRAIN_IMAGES])
  np.testing.assert_array_equal(labels, arrays[TRAIN_LABELS])
  # Cached now: works with the mirror gone.
  shutil.rmtree(mirror)
  idx.clear_caches()
  assert data.load_dataset('mnist', 'test')[0].shape == (5, 28, 28, 1)


def test_download_bad_mirror_file_leaves_nothing(env, monkeypatch):
  mirror = env / 'mirror'
  _, table = _make_fake(mirror)
  _use_fake_checksums(monkeypatch, table)
  monkeypatch.setitem(idx.MIRRORS, 'mnist', mirror.as_uri() + '/')
  raw = (mirror / TRAIN_IMAGES).read_bytes()
  (mirror / TRAIN_IMAGES).write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xff]))
  with pytest.raises(DataError) as err:
    data.find_dataset_dir('mnist')
  text = _assert_one_line(err)
  cache = env / 'xdg' / 'jaxgan' / 'mnist'
  url = mirror.as_uri() + '/' + TRAIN_IMAGES
  assert text.startswith(f'mnist files not found in {cache} ')
  assert f'download from {url} failed: got {len(raw)} bytes with sha256 ' in text
  assert 'JAXGAN_DATA_DIR' in text
  assert not (cache / TRAIN_IMAGES).exists()
  assert not [f for f in os.listdir(cache) if f.endswith('.part')]


def test_download_offline(env):
  with pytest.raises(DataError) as err:
    data.load_dataset('fashion_mnist')
  text = _assert_one_line(err)
  assert text.startswith('fashion_mnist files not found in ')
  assert re.search(r'download from file://\S+ failed: ', text)
  assert 'set JAXGAN_DATA_DIR' in text
  with pytest.raises(DataError) as err:
    data.find_dataset_dir('mnist', download=False)
  assert 'download is disabled' in _assert_one_line(err)


# ---------------------------------------------------------------------------------------------
# Data order.


def test_epoch_permutation_is_pure():
  p = data.epoch_permutation(7, 3, 1000)
  assert p.dtype == np.int64
  assert sorted(p.tolist()) == list(range(1000))
  np.testing.assert_array_equal(p, data.epoch_permutation(7, 3, 1000))
  np.testing.assert_array_equal(p, data.epoch_permutation(np.int64(7), 3, 1000))
  others = [data.epoch_permutation(7, 4, 1000), data.epoch_permutation(8, 3, 1000),
            data.epoch_permutation(3, 7, 1000), data.epoch_permutation(2**40 + 7, 3, 1000)]
  for other in others:
    assert not np.array_equal(p, other)
  # Pinned values: the data order of existing runs must not change silently.
  assert data.epoch_permutation(0, 0, 10).tolist() == [4, 9, 8, 7, 5, 3, 0, 1, 2, 6]
  with pytest.raises(UserError):
    data.epoch_permutation(-1, 0, 10)


def test_steps_per_epoch():
  assert data.steps_per_epoch(60000, 64) == 937  # remainder 32 dropped
  assert data.steps_per_epoch(10, 10) == 1
  with pytest.raises(UserError) as err:
    data.steps_per_epoch(10, 11)
  assert 'batch_size 11 is larger than the dataset (10 examples)' in str(err.value)
  with pytest.raises(UserError):
    data.steps_per_epoch(10, 0)


def test_batch_indices_follow_the_epoch_permutation():
  n, bs, seed = 23, 5, 11  # 4 steps per epoch, 3 examples dropped per epoch
  for epoch in range(3):
    perm = data.epoch_permutation(seed, epoch, n)
    steps = [data.batch_indices(seed, epoch * 4 + i, n, bs) for i in range(4)]
    np.testing.assert_array_equal(np.concatenate(steps), perm[:20])
  assert len(set(data.batch_indices(seed, 4, n, bs)) & set(data.batch_indices(seed, 5, n, bs))) == 0


def test_epoch_batcher_random_access(monkeypatch):
  n, bs, seed = 50, 8, 3  # 6 steps per epoch
  images = np.arange(n * 4, dtype=np.uint8).reshape(n, 2, 2, 1)
  labels = np.arange(n, dtype=np.int32)
  calls = []
  real = batching.epoch_permutation
  monkeypatch.setattr(batching, 'epoch_permutation',
                      lambda *a: calls.append(a) or real(*a))
  batcher = data.EpochBatcher(images, labels, bs, seed)
  assert batcher.steps_per_epoch == 6
  # Consecutive steps across two epoch boundaries: one permutation per epoch.
  for step in range(3, 15):
    got_images, got_labels = batcher.get(step)
    want = real(seed, step // 6, n)[(step % 6) * bs:(step % 6 + 1) * bs]
    np.testing.assert_array_equal(got_labels, want)
    np.testing.assert_array_equal(got_images, images[want])
    assert got_images.dtype == np.uint8
  assert [c[1] for c in calls] == [0, 1, 2]
  # Random access (resume anywhere, jump back) matches batch_indices.
  for step in [100, 5, 6, 0, 59, 60, 61, 17, 17, 12345]:
    np.testing.assert_array_equal(batcher.get(step)[1],
                                  data.batch_indices(seed, step, n, bs))
  with pytest.raises(UserError):
    data.EpochBatcher(images, labels[:-1], bs, seed)
