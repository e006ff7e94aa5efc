"""The FID InceptionV3: architecture, the TF-specific pools, resizing, weight conversion, loading.

No real weights are involved (jaxgan never ships or downloads them): the network is checked against
its published size and block layout, its odd layers against numpy references of the PyTorch
semantics, and the converter + loader against a fake pytorch-fid state_dict made from random
weights. XLA compiles the full network once (about 5 s on 2 CPU cores), for two 32x32 images.
"""
import hashlib
import zipfile

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxgan.errors import DataError, UserError
from jaxgan.metrics import classify
from jaxgan.metrics import inception
from jaxgan.metrics import inception_convert

# torchvision documents Inception_V3_Weights.IMAGENET1K_V1 with num_params 27,161,264: 1000
# classes and the auxiliary classifier (conv 768->128 1x1 + BN, conv 128->768 5x5 + BN, fc
# 768->1000). The FID network drops the auxiliary head and has 1008 logits.
TORCHVISION_NUM_PARAMS = 27_161_264
AUX_HEAD = 768 * 128 + 2 * 128 + 128 * 768 * 25 + 2 * 768 + 768 * 1000 + 1000
FID_LEARNABLE = TORCHVISION_NUM_PARAMS - AUX_HEAD + 8 * 2048 + 8  # 23,850,960

# BatchNorm channels = output channels of all 94 convs, block by block (torchvision's Inception3).
_STEM = 32 + 32 + 64 + 80 + 192
_A = sum(64 + 48 + 64 + 64 + 96 + 96 + pool for pool in (32, 64, 64))
_B = 384 + 64 + 96 + 96
_C = sum(192 + (c7 + c7 + 192) + (4 * c7 + 192) + 192 for c7 in (128, 160, 160, 192))
_D = 192 + 320 + 4 * 192
_E = 2 * (320 + 384 + 2 * 384 + 448 + 384 + 2 * 384 + 192)
BN_CHANNELS = _STEM + _A + _B + _C + _D + _E  # 17,216

MIXED = [('Mixed_5b', 'InceptionA', 35, 256), ('Mixed_5c', 'InceptionA', 35, 288),
         ('Mixed_5d', 'InceptionA', 35, 288), ('Mixed_6a', 'InceptionB', 17, 768),
         ('Mixed_6b', 'InceptionC', 17, 768), ('Mixed_6c', 'InceptionC', 17, 768),
         ('Mixed_6d', 'InceptionC', 17, 768), ('Mixed_6e', 'InceptionC', 17, 768),
         ('Mixed_7a', 'InceptionD', 8, 1280), ('Mixed_7b', 'InceptionE', 8, 2048),
         ('Mixed_7c', 'InceptionE', 8, 2048)]


def _random_variables(seed=0) -> dict[str, np.ndarray]:
  """Flat .npz-style arrays; He-scaled kernels and non-trivial BN so activations stay O(1)."""
  rng = np.random.default_rng(seed)
  out = {}
  for name, shape in inception.variable_shapes().items():
    leaf = name.rsplit('/', 1)[1]
    if leaf == 'kernel':
      a = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
    elif leaf in ('scale', 'var'):
      a = rng.uniform(0.5, 1.5, shape)
    else:  # bias, mean
      a = rng.normal(0.0, 0.1, shape)
    out[name] = a.astype(np.float32)
  return out


def _to_torch_layout(flat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The inverse of the converter, written from torchvision's naming: a fake pytorch-fid file."""
  leaf_names = {'conv/kernel': 'conv.weight', 'bn/scale': 'bn.weight', 'bn/bias': 'bn.bias',
                'bn/mean': 'bn.running_mean', 'bn/var': 'bn.running_var'}
  out = {}
  for name, a in flat.items():
    parts = name.split('/')
    if parts[1] == 'fc':
      out[f'fc.{parts[2].replace("kernel", "weight")}'] = a.T if a.ndim == 2 else a
      continue
    module, leaf = '.'.join(parts[1:-2]), '/'.join(parts[-2:])
    out[f'{module}.{leaf_names[leaf]}'] = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a
    if leaf == 'bn/mean':
      out[f'{module}.bn.num_batches_tracked'] = np.array(0, np.int64)
  return out


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
  """(flat random arrays, .npz path written through the converter, load_inception's result)."""
  flat = _random_variables()
  path = tmp_path_factory.mktemp('inception') / 'inception_fid.npz'
  inception_convert.save_npz(inception_convert.convert_state_dict(_to_torch_layout(flat)), path)
  return flat, path, inception.load_inception(path)


@pytest.fixture(scope='module')
def forward(weights):
  """classify() of two 32x32 RGB images with the loaded network: (images, probs, pool)."""
  _, _, (apply_fn, variables, _) = weights
  x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  probs, pool = classify(chex.assert_max_traces(apply_fn, n=1), variables, x, batch_size=2)
  return x, probs, pool


# --- Architecture.


def test_variable_count_is_the_fid_inception():
  shapes = inception.variable_shapes()
  sizes = {k: int(np.prod(s)) for k, s in shapes.items()}
  learnable = sum(v for k, v in sizes.items() if k.startswith('params/'))
  stats = sum(v for k, v in sizes.items() if k.startswith('batch_stats/'))
  assert FID_LEARNABLE == 23_850_960 and BN_CHANNELS == 17_216
  assert learnable == FID_LEARNABLE
  assert stats == 2 * BN_CHANNELS
  # pytorch-fid's state_dict: 94 x (conv weight, BN weight, bias, running mean, running var) and
  # fc weight, bias, 23,885,392 numbers (plus a num_batches_tracked counter per BN, dropped).
  assert len(shapes) == 94 * 5 + 2
  assert learnable + stats == 23_885_392
  assert shapes['params/fc/kernel'] == (2048, 1008)
  assert shapes['params/Mixed_6b/branch7x7_2/conv/kernel'] == (1, 7, 128, 128)
  assert shapes['params/Mixed_7c/branch_pool/conv/kernel'] == (1, 1, 2048, 192)


def test_block_wiring():
  """Each Mixed block: its type, attributes and output [N, S, S, C], from an abstract trace."""
  seen = {}

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    module = context.module
    if context.method_name == '__call__' and (module.name or '').startswith('Mixed'):
      seen[module.name] = (type(module).__name__, out.shape, module)
    return out

  def run(variables, x):
    with nn.intercept_methods(record):
      return inception.InceptionV3().apply(variables, x)

  abstract = traverse_util.unflatten_dict(
      {tuple(k.split('/')): jax.ShapeDtypeStruct(s, jnp.float32)
       for k, s in inception.variable_shapes().items()})
  logits, pool = jax.eval_shape(run, abstract, jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
  assert (logits.shape, pool.shape) == ((2, 1008), (2, 2048))
  assert list(seen) == [m[0] for m in MIXED]
  for name, kind, size, channels in MIXED:
    assert seen[name][:2] == (kind, (2, size, size, channels)), name
  assert [seen[n][2].pool_features for n in ('Mixed_5b', 'Mixed_5c', 'Mixed_5d')] == [32, 64, 64]
  assert [seen[f'Mixed_6{c}'][2].channels_7x7 for c in 'bcde'] == [128, 160, 160, 192]
  assert (seen['Mixed_7b'][2].pool, seen['Mixed_7c'][2].pool) == ('avg', 'max')


def test_forward_outputs(weights, forward):
  flat = weights[0]
  _, probs, pool = forward
  chex.assert_shape(probs, (2, 1008))
  chex.assert_shape(pool, (2, 2048))
  assert np.all(np.isfinite(pool)) and np.all(pool >= 0)  # the mean of ReLU outputs
  assert pool.std() > 1e-3  # random weights that do not collapse the activations
  logits = pool.astype(np.float64) @ flat['params/fc/kernel'] + flat['params/fc/bias']
  expected = np.exp(logits - logits.max(-1, keepdims=True))
  np.testing.assert_allclose(probs, expected / expected.sum(-1, keepdims=True), rtol=1e-4,
                             atol=1e-7)
  np.testing.assert_allclose(inception.score_logits(weights[2][1], pool),
                             pool.astype(np.float64) @ flat['params/fc/kernel'], rtol=1e-4,
                             atol=1e-5)


def test_matches_pytorch_fid(weights, forward, monkeypatch):
  """pytorch-fid's own model (torchvision Inception3 + its FID blocks) on the same weights.

  Skipped unless pytorch-fid and torchvision are installed (they are not jaxgan dependencies).
  pytorch-fid loads its weights through load_state_dict_from_url (strictly, so every name must
  match); it gets the fake state_dict instead, and nothing is downloaded.
  """
  torch = pytest.importorskip('torch')
  pfi = pytest.importorskip('pytorch_fid.inception')
  state = {k: torch.from_numpy(v) for k, v in _to_torch_layout(weights[0]).items()}
  monkeypatch.setattr(pfi, 'load_state_dict_from_url', lambda *args, **kwargs: state)
  x, probs, pool = forward
  net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
  fc = pfi.fid_inception_v3().fc
  with torch.no_grad():
    ref_pool = net(torch.from_numpy((x + 1) / 2).permute(0, 3, 1, 2))[0][:, :, 0, 0]
    ref_probs = torch.softmax(fc(ref_pool), dim=-1).numpy()
  np.testing.assert_allclose(pool, ref_pool.numpy(), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(probs, ref_probs, rtol=1e-3, atol=1e-6)


# --- The layers whose PyTorch / TF semantics matter.


def _pool_reference(x, reduce, count_padding):
  """3x3 stride-1 pool of [N, H, W, C] over the window's in-image pixels (numpy)."""
  n, h, w, c = x.shape
  out = np.empty_like(x)
  for i in range(h):
    for j in range(w):
      window = x[:, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2]
      if reduce == 'max':
        out[:, i, j] = window.max(axis=(1, 2))
      else:
        out[:, i, j] = window.sum(axis=(1, 2)) / (9 if count_padding else window[0, ..., 0].size)
  return out


def test_avg_pool_excludes_padding():
  x = np.random.default_rng(0).normal(size=(2, 4, 5, 3)).astype(np.float32)
  got = np.asarray(inception.avg_pool_3x3(jnp.asarray(x)))
  np.testing.assert_allclose(got, _pool_reference(x, 'avg', False), rtol=1e-6, atol=1e-6)
  # The check has teeth: counting the zero padding changes every border pixel.
  assert not np.allclose(got, _pool_reference(x, 'avg', True), atol=1e-3)


def test_max_pool_pads_with_minus_infinity():
  x = -1.0 - np.random.default_rng(0).uniform(size=(1, 4, 5, 2)).astype(np.float32)
  np.testing.assert_array_equal(inception.max_pool_3x3(jnp.asarray(x)),
                                _pool_reference(x, 'max', False))  # all < 0: padding never wins


def _bilinear_matrix(n_in, n_out):
  """PyTorch's bilinear weights, align_corners=False, as an [n_out, n_in] matrix."""
  m = np.zeros((n_out, n_in))
  for i in range(n_out):
    src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
    lo = min(int(src), n_in - 1)
    hi = min(lo + 1, n_in - 1)
    m[i, lo] += 1 - (src - lo)
    m[i, hi] += src - lo
  return m


@pytest.mark.parametrize('size_in,size_out', [((5, 7), (12, 9)), ((12, 13), (5, 4))])
def test_resize_matches_pytorch_bilinear(size_in, size_out):
  x = np.random.default_rng(0).normal(size=(2, *size_in, 3)).astype(np.float32)
  got = inception.resize_bilinear(jnp.asarray(x), *size_out)
  want = np.einsum('ih,jw,nhwc->nijc', _bilinear_matrix(size_in[0], size_out[0]),
                   _bilinear_matrix(size_in[1], size_out[1]), x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  torch = pytest.importorskip('torch')
  ref = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=size_out,
                                        mode='bilinear', align_corners=False)
  np.testing.assert_allclose(got, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-5)


def test_prepare_input():
  grey = jnp.linspace(-1, 1, 2 * 4 * 4).reshape(2, 4, 4, 1)
  rgb = inception.prepare_input(grey, 6)
  chex.assert_shape(rgb, (2, 6, 6, 3))
  np.testing.assert_array_equal(rgb, inception.prepare_input(jnp.repeat(grey, 3, -1), 6))
  np.testing.assert_array_equal(inception.prepare_input(grey[..., 0], 6), rgb)
  with pytest.raises(UserError, match='float images'):
    inception.prepare_input(jnp.zeros((1, 4, 4, 3), jnp.uint8))
  with pytest.raises(UserError, match=r'\[N, H, W, 3\]'):
    inception.prepare_input(jnp.zeros((1, 4, 4, 2)))


@pytest.mark.parametrize('kernel,stride,padding', [((1, 7), 1, 'SAME'), ((7, 1), 1, 'SAME'),
                                                   ((3, 3), 2, 'VALID')])
def test_basic_conv_with_converted_torch_weights(kernel, stride, padding):
  """A PyTorch-layout conv + BN, converted, equals conv2d (NCHW, OIHW) -> BN -> ReLU in numpy."""
  rng = np.random.default_rng(0)
  kh, kw = kernel
  state = {'blk.conv.weight': rng.normal(size=(4, 3, kh, kw)), 'blk.bn.weight': rng.uniform(
      0.5, 2, 4), 'blk.bn.bias': rng.normal(size=4), 'blk.bn.running_mean': rng.normal(size=4),
           'blk.bn.running_var': rng.uniform(0.5, 2, 4)}
  x = rng.normal(size=(2, 3, 9, 10))  # NCHW
  ph, pw = (kh // 2, kw // 2) if padding == 'SAME' else (0, 0)
  xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
  win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride,
                                                                             ::stride]
  y = np.einsum('nchwij,ocij->nohw', win, state['blk.conv.weight'])
  bn = {k.rsplit('.', 1)[1]: v[None, :, None, None] for k, v in state.items() if '.bn.' in k}
  y = (y - bn['running_mean']) / np.sqrt(bn['running_var'] + 1e-3) * bn['weight'] + bn['bias']
  want = np.maximum(y, 0).transpose(0, 2, 3, 1)

  arrays = inception_convert.convert_state_dict(state)
  tree = traverse_util.unflatten_dict({tuple(k.split('/')): v for k, v in arrays.items()})
  variables = {c: tree[c]['blk'] for c in tree}
  layer = inception.BasicConv(4, kernel, stride, padding, precision='highest')
  got = layer.apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# --- Conversion and loading.


def test_converter_and_loader_round_trip(weights):
  flat, path, (apply_fn, variables, info) = weights
  loaded = traverse_util.flatten_dict(variables, sep='/')
  assert loaded.keys() == flat.keys()
  for name, a in flat.items():
    np.testing.assert_array_equal(loaded[name], a, err_msg=name)
  assert info['feature_network'] == 'inception_v3_fid'
  assert info['weights_sha256'] == hashlib.sha256(path.read_bytes()).hexdigest()
  assert info['path'] == str(path.resolve())
  assert info['num_params'] == 23_885_392
  assert callable(apply_fn)


def test_save_npz_is_reproducible(tmp_path):
  """The same arrays give the same bytes (no timestamps), so weights_sha256 names the network."""
  arrays = {'b/x': np.arange(6, dtype=np.float32).reshape(2, 3), 'a/y': np.ones(2, np.float32)}
  sha = inception_convert.save_npz(arrays, tmp_path / 'one.npz')
  assert inception_convert.save_npz(dict(reversed(arrays.items())), tmp_path / 'two.npz') == sha
  with zipfile.ZipFile(tmp_path / 'one.npz') as zf:
    assert [(m.filename, m.date_time) for m in zf.infolist()] == [
        ('a/y.npy', (1980, 1, 1, 0, 0, 0)), ('b/x.npy', (1980, 1, 1, 0, 0, 0))]
  with np.load(tmp_path / 'one.npz') as npz:
    np.testing.assert_array_equal(npz['b/x'], arrays['b/x'])


def test_converter_mapping_names():
  assert inception_convert.npz_name('Mixed_6b.branch7x7_2.conv.weight') == (
      'params/Mixed_6b/branch7x7_2/conv/kernel', (2, 3, 1, 0))
  assert inception_convert.npz_name('Conv2d_1a_3x3.bn.running_var') == (
      'batch_stats/Conv2d_1a_3x3/bn/var', None)
  assert inception_convert.npz_name('Mixed_5b.branch1x1.bn.num_batches_tracked') is None
  with pytest.raises(UserError, match=r"'AuxLogits\.fc\.weight' is not part"):
    inception_convert.convert_state_dict({'AuxLogits.fc.weight': np.zeros((2, 2))})
  # Conv and BN keys of modules the network lacks map by the same rule; check_arrays rejects them.
  arrays = inception_convert.convert_state_dict({'AuxLogits.conv0.conv.weight': np.zeros(
      (128, 768, 1, 1))})
  assert list(arrays) == ['params/AuxLogits/conv0/conv/kernel']


def test_converter_command_line(weights, tmp_path, capsys):
  torch = pytest.importorskip('torch')
  flat = weights[0]
  pth = tmp_path / 'fake.pth'
  torch.save({k: torch.from_numpy(v) for k, v in _to_torch_layout(flat).items()}, pth)
  out = tmp_path / 'out.npz'
  assert inception_convert.main([str(pth), str(out)]) == 0
  assert out.read_bytes() == weights[1].read_bytes()  # the same bytes as the pure mapping
  assert '472 arrays' in capsys.readouterr().out

  assert inception_convert.main([str(tmp_path / 'missing.pth'), str(out)]) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: no such file') and err.count('\n') == 1


def test_check_arrays_names_the_problem(weights):
  flat = weights[0]
  key = 'params/Mixed_6e/branch_pool/conv/kernel'
  cases = [
      ({k: v for k, v in flat.items() if k != key}, f'1 missing (first {key})'),
      ({**flat, key: flat[key][..., :10]}, '1 of the wrong shape'),
      ({**flat, 'params/AuxLogits/fc/kernel': np.zeros(3, np.float32)}, '1 unexpected'),
      ({**flat, key: np.full_like(flat[key], np.nan)}, '1 with NaN or inf'),
  ]
  for arrays, message in cases:
    with pytest.raises(DataError, match=message.replace('(', r'\(').replace(')', r'\)')) as e:
      inception.check_arrays(arrays, 'w.npz')
    assert '\n' not in str(e.value) and 'inception_convert' in str(e.value)


def test_load_errors(tmp_path):
  with pytest.raises(UserError, match='no Inception weights at'):
    inception.load_inception(tmp_path / 'absent.npz')
  junk = tmp_path / 'junk.npz'
  junk.write_bytes(b'not a zip file')
  with pytest.raises(DataError, match='not a readable .npz'):
    inception.load_inception(junk)
  wrong = tmp_path / 'other.npz'
  np.savez(wrong, **{'params/fc/kernel': np.zeros((2048, 1000), np.float32)})
  with pytest.raises(DataError) as e:
    inception.load_inception(wrong)
  message = str(e.value)
  assert '\n' not in message and str(wrong) in message
  assert '471 missing' in message and 'wrong shape' in message and 'inception_convert' in message
