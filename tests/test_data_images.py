"""Tests of jaxgan.data.images (image folders) and jaxgan.data.registry (load_images)."""

import os
import pathlib
import sys

import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxgan.data import idx
from jaxgan.data import images as image_lib
from jaxgan.data import registry
from jaxgan.errors import DataError
from jaxgan.errors import UserError

# Read at import, before any fixture edits the environment.
REAL_DATA_DIR = os.environ.get('JAXGAN_DATA_DIR')

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _assert_one_line(err):
  text = str(err.value)
  assert '\n' not in text and '\r' not in text, text
  return text


@pytest.fixture(name='env')
def _env(monkeypatch, tmp_path):
  """No JAXGAN_DATA_DIR; the jaxgan cache under tmp."""
  monkeypatch.delenv('JAXGAN_DATA_DIR', raising=False)
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
  return tmp_path


def _target(w, h):
  """A w x h RGB image: green margins around a centred red square holding a blue centre.

  The largest centred square (side min(w, h)) is all red and blue, so any green in the output
  means the crop was off-centre or the filter read outside it.
  """
  side = min(w, h)
  a = np.zeros((h, w, 3), np.uint8)
  a[:] = GREEN
  left, top = (w - side) // 2, (h - side) // 2
  a[top:top + side, left:left + side] = RED
  q = side // 4
  a[top + q:top + side - q, left + q:left + side - q] = BLUE
  return a


def _save(path, array, **kwargs):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path, **kwargs)
  return path


@pytest.mark.parametrize('w,h', [(100, 60), (60, 100), (80, 80)])
def test_centre_crop_and_resize(w, h):
  out = image_lib.crop_resize(Image.fromarray(_target(w, h)), 30, 3)
  assert out.shape == (30, 30, 3) and out.dtype == np.uint8
  assert out[..., 1].max() <= 2  # no green margin survives (LANCZOS ringing may add 1-2)
  # The blue centre is the middle half, the red frame the outer quarter on each side.
  np.testing.assert_array_equal(out[12:18, 12:18], np.broadcast_to(BLUE, (6, 6, 3)))
  np.testing.assert_array_equal(out[0:5, 0:5], np.broadcast_to(RED, (5, 5, 3)))
  np.testing.assert_array_equal(out[-5:, -5:], np.broadcast_to(RED, (5, 5, 3)))
  # Symmetric: the pattern is centred, so flips leave it unchanged.
  np.testing.assert_array_equal(out, out[::-1])
  np.testing.assert_array_equal(out, out[:, ::-1])


def test_crop_without_resize_is_exact_and_crop_size():
  a = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
  out = image_lib.crop_resize(Image.fromarray(a), 40, 3)
  np.testing.assert_array_equal(out, a[:, 5:45])
  # crop_size 20 takes the centred 20x20 (offset (10, 15)).
  out = image_lib.crop_resize(Image.fromarray(a), 20, 3, crop_size=20)
  np.testing.assert_array_equal(out, a[10:30, 15:35])
  with pytest.raises(ValueError, match='smaller than data.crop_size'):
    image_lib.crop_resize(Image.fromarray(a), 20, 3, crop_size=41)


def test_grayscale_and_16_bit():
  rgb = np.zeros((8, 8, 3), np.uint8)
  rgb[..., 0] = 200
  out = image_lib.crop_resize(Image.fromarray(rgb), 8, 1)
  assert out.shape == (8, 8, 1)
  assert np.all(out == round(200 * 0.299))  # ITU-R 601 luma of pure red
  gray16 = np.full((8, 8), 65535, np.uint16)
  gray16[:4] = 257 * 100
  img16 = Image.fromarray(gray16)
  assert img16.mode.startswith('I')
  out = image_lib.crop_resize(img16, 8, 3)
  assert out.shape == (8, 8, 3)
  assert np.all(out[:4] == 100) and np.all(out[4:] == 255)  # scaled, not clipped


def test_folder_formats_order_and_no_labels(env):
  root = env / 'imgs'
  a = _target(100, 60)
  _save(root / 'b.png', a)
  _save(root / 'a.BMP', a[::-1].copy())
  _save(root / 'sub' / 'c.jpg', a, quality=95)
  _save(root / 'd.jpeg', np.zeros((10, 10, 3), np.uint8), quality=95)
  _save(root / 'gray.png', np.full((7, 9), 77, np.uint8))
  (root / 'notes.txt').write_text('not an image')
  _save(root / '._b.png', a)  # macOS AppleDouble junk: skipped
  _save(root / '.hidden' / 'x.png', a)  # hidden folder: skipped
  paths, labels, classes = image_lib.list_images(root)
  assert [p.relative_to(root).as_posix() for p in paths] == [
      'a.BMP', 'b.png', 'd.jpeg', 'gray.png', 'sub/c.jpg']
  assert labels is None and classes == ()
  images, labels, classes = image_lib.load_image_folder(root, 16, 3, use_cache=False)
  assert images.shape == (5, 16, 16, 3) and images.dtype == np.uint8
  assert labels is None and classes == ()
  want = image_lib.crop_resize(Image.fromarray(a), 16, 3)
  np.testing.assert_array_equal(images[1], want)  # PNG: lossless
  np.testing.assert_array_equal(images[0], want)  # flipped square is symmetric; BMP lossless
  assert np.abs(images[4].astype(int) - want).max() <= 40  # JPEG: lossy, same picture
  assert np.all(images[2] == 0) and np.all(images[3] == 77)
  # Grayscale output of the same folder.
  gray, _, _ = image_lib.load_image_folder(root, 16, 1, use_cache=False)
  assert gray.shape == (5, 16, 16, 1) and np.all(gray[3] == 77)


def test_class_subfolders(env):
  root = env / 'classes'
  _save(root / 'dog' / 'z.png', np.full((4, 4, 3), 2, np.uint8))
  _save(root / 'cat' / 'b.png', np.full((4, 4, 3), 1, np.uint8))
  _save(root / 'dog' / 'deeper' / 'a.png', np.full((4, 4, 3), 3, np.uint8))
  _save(root / 'cat' / 'a.png', np.full((4, 4, 3), 0, np.uint8))
  (root / 'empty_class').mkdir()  # holds no image: not a class
  images, labels, classes = image_lib.load_image_folder(root, 4, 3, use_cache=False)
  assert classes == ('cat', 'dog')
  assert labels.dtype == np.int32 and labels.tolist() == [0, 0, 1, 1]
  # Sorted by relative path: cat/a, cat/b, dog/deeper/a, dog/z.
  assert images[:, 0, 0, 0].tolist() == [0, 1, 3, 2]
  images, labels, _ = image_lib.load_image_folder(root, 4, 3, limit=3, use_cache=False)
  assert len(images) == 3 and labels.tolist() == [0, 0, 1]
  # An image directly in the root makes the folder unlabelled.
  _save(root / 'stray.png', np.zeros((4, 4, 3), np.uint8))
  _, labels, classes = image_lib.load_image_folder(root, 4, 3, use_cache=False)
  assert labels is None and classes == ()


def test_folder_errors(env):
  with pytest.raises(DataError) as err:
    image_lib.load_image_folder(env / 'nope')
  assert _assert_one_line(err).startswith(f'image folder {env / "nope"} does not exist;')
  (env / 'file.png').write_bytes(b'x')
  with pytest.raises(DataError) as err:
    image_lib.load_image_folder(env / 'file.png')
  assert 'is not a folder' in _assert_one_line(err)
  (env / 'empty').mkdir()
  (env / 'empty' / 'readme.txt').write_text('hi')
  with pytest.raises(DataError) as err:
    image_lib.load_image_folder(env / 'empty')
  assert _assert_one_line(err).startswith(
      f'image folder {env / "empty"} holds no PNG/JPG/JPEG/BMP images')
  bad = env / 'bad'
  _save(bad / 'a.png', np.zeros((4, 4, 3), np.uint8))
  (bad / 'b.jpg').write_bytes(b'\xff\xd8\xff this is not a jpeg')
  with pytest.raises(DataError) as err:
    image_lib.load_image_folder(bad, 4, 3, use_cache=False)
  assert _assert_one_line(err).startswith(f'cannot read image {bad / "b.jpg"}: ')
  # A truncated PNG (an interrupted copy) is named too.
  raw = (bad / 'a.png').read_bytes()
  (bad / 'b.jpg').unlink()
  (bad / 'c.png').write_bytes(raw[:len(raw) // 2])
  with pytest.raises(DataError) as err:
    image_lib.load_image_folder(bad, 4, 3, use_cache=False)
  assert f'cannot read image {bad / "c.png"}' in _assert_one_line(err)
  for kwargs in (dict(channels=2), dict(image_size=0), dict(limit=-1), dict(crop_size=0)):
    with pytest.raises(UserError):
      image_lib.load_image_folder(bad, **kwargs)


def test_threaded_decoding_is_ordered_and_names_first_bad_file(env):
  root = env / 'many'
  for i in range(80):  # >= 64 images: the thread pool runs
    _save(root / f'{i:03d}.png', np.full((6, 6, 3), i, np.uint8))
  images, _, _ = image_lib.load_image_folder(root, 6, 3, use_cache=False, num_workers=4)
  assert images[:, 0, 0, 0].tolist() == list(range(80))
  for i in (70, 30):
    (root / f'{i:03d}.png').write_bytes(b'garbage')
  with pytest.raises(DataError) as err:
    image_lib.load_image_folder(root, 6, 3, use_cache=False, num_workers=4)
  assert f'{root / "030.png"}' in _assert_one_line(err)


def test_cache_hit_invalidation_and_corrupt_cache(env, monkeypatch):
  root = env / 'cached'
  _save(root / 'a.png', _target(30, 20))
  _save(root / 'b.png', np.zeros((5, 5, 3), np.uint8))
  first = image_lib.load_image_folder(root, 8, 3)
  cache_files = list((env / 'xdg' / 'jaxgan' / 'image_folder').glob('*.npz'))
  assert len(cache_files) == 1
  real_decode = image_lib._decode

  def no_decode(*args):
    raise AssertionError('decoded although the cache is valid')

  monkeypatch.setattr(image_lib, '_decode', no_decode)
  again = image_lib.load_image_folder(root, 8, 3)
  np.testing.assert_array_equal(again[0], first[0])
  assert again[1] is None and again[2] == ()
  # Other parameters or a changed file miss the cache.
  monkeypatch.setattr(image_lib, '_decode', real_decode)
  assert image_lib.load_image_folder(root, 4, 3)[0].shape == (2, 4, 4, 3)
  _save(root / 'b.png', np.full((5, 5, 3), 9, np.uint8))
  os.utime(root / 'b.png', ns=(1, 1))  # a different mtime even on coarse file systems
  assert np.all(image_lib.load_image_folder(root, 8, 3)[0][1] == 9)
  # A damaged cache file is ignored and rewritten.
  for f in (env / 'xdg' / 'jaxgan' / 'image_folder').glob('*.npz'):
    f.write_bytes(b'not a zip')
  assert np.all(image_lib.load_image_folder(root, 8, 3)[0][1] == 9)


@pytest.mark.parametrize('size_in,size_out', [(28, 64), (64, 28), (28, 28), (30, 17)])
def test_resize_images_matches_pil_bilinear(size_in, size_out):
  rng = np.random.default_rng(size_in)
  batch = rng.integers(0, 256, (3, size_in, size_in, 1), dtype=np.uint8)
  out = image_lib.resize_images(batch, size_out)
  assert out.shape == (3, size_out, size_out, 1) and out.dtype == np.uint8
  for i in range(3):
    want = np.asarray(Image.fromarray(batch[i, ..., 0]).resize((size_out, size_out),
                                                               Image.Resampling.BILINEAR))
    assert np.abs(out[i, ..., 0].astype(int) - want).max() <= 1
  rgb = image_lib.resize_images(batch, size_out, channels=3)
  assert rgb.shape == (3, size_out, size_out, 3)
  np.testing.assert_array_equal(rgb[..., 0], out[..., 0])
  np.testing.assert_array_equal(rgb[..., 2], out[..., 0])
  back = image_lib.resize_images(rgb, size_out, channels=1)
  assert np.abs(back.astype(int) - out).max() <= 1


# ---------------------------------------------------------------------------------------------
# registry.load_images


def _cfg(**fields):
  return ml_collections.ConfigDict(fields)


def test_registry_image_folder(env):
  root = env / 'faces'
  _save(root / 'x' / 'a.png', _target(40, 30))
  _save(root / 'y' / 'b.png', _target(30, 40))
  ds = registry.load_images(_cfg(name='image_folder', dir=str(root), image_size=16))
  assert isinstance(ds, registry.Dataset) and ds.name == 'image_folder'
  assert ds.images.shape == (2, 16, 16, 3) and ds.image_shape == (16, 16, 3) and len(ds) == 2
  assert ds.labels.tolist() == [0, 1] and ds.num_classes == 2 and ds.class_names == ('x', 'y')
  # Plain dicts work as well, with the defaults (64x64 RGB).
  ds = registry.load_images({'name': 'image_folder', 'dir': str(root), 'channels': 1,
                             'limit': 1})
  assert ds.images.shape == (1, 64, 64, 1)
  with pytest.raises(UserError) as err:
    registry.load_images(_cfg(name='image_folder', dir=None))
  assert "data.name='image_folder' needs --config.data.dir" in _assert_one_line(err)
  with pytest.raises(UserError) as err:
    registry.load_images(_cfg(name='image_folder', dir=str(root)), split='test')
  assert 'single split' in _assert_one_line(err)


def test_registry_celeba_folder(env, monkeypatch):
  # The official layout puts every image under img_align_celeba/; that is not a class.
  celeba = env / 'data' / 'celeba'
  for i in range(3):
    _save(celeba / 'img_align_celeba' / f'{i:06d}.jpg', np.full((218, 178, 3), 50 * i, np.uint8))
  ds = registry.load_images(_cfg(name='celeba', dir=str(env / 'data'), image_size=32))
  assert ds.images.shape == (3, 32, 32, 3) and ds.labels is None and ds.num_classes is None
  monkeypatch.setenv('JAXGAN_DATA_DIR', str(env / 'data'))
  ds = registry.load_images(_cfg(name='celeba', dir=None, image_size=32, limit=2))
  assert len(ds) == 2
  monkeypatch.setenv('JAXGAN_DATA_DIR', str(env / 'elsewhere'))
  with pytest.raises(DataError) as err:
    registry.load_images(_cfg(name='celeba', dir=None))
  text = _assert_one_line(err)
  assert text.startswith(f'CelebA folder {env / "elsewhere" / "celeba"} does not exist')
  assert 'backend=tfds' in text
  monkeypatch.delenv('JAXGAN_DATA_DIR')
  with pytest.raises(DataError) as err:
    registry.load_images(_cfg(name='celeba', dir=None))
  assert 'CelebA not found' in _assert_one_line(err)


def test_registry_tfds_missing_is_clean(env, monkeypatch):
  # None in sys.modules makes `import tensorflow_datasets` raise ImportError, as when it is not
  # installed, whether or not it is.
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)
  with pytest.raises(UserError) as err:
    registry.load_images(_cfg(name='celeba', dir=None, backend='tfds'))
  text = _assert_one_line(err)
  assert 'pip install tensorflow-datasets' in text
  assert not isinstance(err.value, DataError)


def test_registry_bad_names(env):
  for cfg, match in ((_cfg(name='imagenet', dir=None), "unknown data.name 'imagenet'"),
                     (_cfg(name='mnist', dir=None, backend='hdf5'), "unknown data.backend"),
                     (_cfg(name='mnist', dir=None, backend='tfds'), 'supported only for celeba'),
                     (_cfg(name='grid', dir=None), 'is a 2-D mixture'),
                     (_cfg(name='mnist', dir=None, limit=-5), 'data.limit must be'),
                     (_cfg(name='image_folder', dir=str(env), channels=4), 'data.channels')):
    with pytest.raises(UserError) as err:
      registry.load_images(cfg)
    assert match in _assert_one_line(err)


def _real_mnist_root():
  if not REAL_DATA_DIR or not (pathlib.Path(REAL_DATA_DIR) / 'mnist').is_dir():
    pytest.skip('JAXGAN_DATA_DIR is not set (or lacks mnist/); point it at a folder holding '
                'mnist/ (e.g. shared/data) to test the registry on real MNIST')
  return REAL_DATA_DIR


def test_registry_mnist_and_mnist64():
  root = _real_mnist_root()
  ds = registry.load_images(_cfg(name='mnist', dir=root, limit=100))
  assert ds.images.shape == (100, 28, 28, 1) and ds.labels.shape == (100,)
  assert ds.num_classes == 10 and ds.name == 'mnist'
  images, labels = idx.load_dataset('mnist', 'train', root)
  np.testing.assert_array_equal(ds.images, images[:100])
  ds64 = registry.load_images(_cfg(name='mnist64', dir=root, limit=100))
  assert ds64.images.shape == (100, 64, 64, 3) and ds64.images.dtype == np.uint8
  np.testing.assert_array_equal(ds64.labels, labels[:100])
  want = np.asarray(Image.fromarray(images[7, ..., 0]).resize((64, 64), Image.Resampling.BILINEAR))
  assert np.abs(ds64.images[7, ..., 1].astype(int) - want).max() <= 1
  test = registry.load_images(_cfg(name='fashion_mnist', dir=root, image_size=32), split='test')
  assert test.images.shape == (10000, 32, 32, 1)
