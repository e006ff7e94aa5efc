"""The feature network for RGB scores: InceptionV3 as in the FID reference code, in Flax.

FID, KID and the Inception Score are only comparable across papers when they come from the same
network: the TensorFlow graph `inception-2015-12-05` (classify_image_graph_def.pb) that TTUR's
FID code and the original Inception Score code use. pytorch-fid ships the same weights as a
PyTorch state_dict (`pt_inception-2015-12-05-6726825d.pth`) and reproduces that graph with
torchvision's Inception3 plus four patched block classes. This module is that network in Flax:

- the input is resized bilinearly to 299x299 (half-pixel centres, no antialiasing: PyTorch's
  `interpolate(..., mode='bilinear', align_corners=False)`, which pytorch-fid applies);
- every convolution is conv (no bias) -> BatchNorm (eps 1e-3, running statistics) -> ReLU;
- the average pools inside the Mixed_5x, Mixed_6b-e and Mixed_7b blocks divide by the number of
  real pixels in the window (TF's padding='SAME' average pool; PyTorch count_include_pad=False);
- the pool branch of Mixed_7c is a 3x3 *max* pool, a quirk of the 2015 graph;
- outputs are the 1008 logits of the graph's softmax layer and the 2048-d `pool_3` features
  (global average of Mixed_7c) that FID and KID use. For an Inception Score comparable with the
  published ones use `score_logits` (no bias, as the Improved-GAN code computes it).

The resize follows pytorch-fid, not the TF graph's own ResizeBilinear, so scores agree with
pytorch-fid's closely but are not bit-identical to the TF code's.

No weights ship with jaxgan and nothing is downloaded: the user converts the pytorch-fid file once
with `python -m jaxgan.metrics.inception_convert` (docs/inception.md) and passes the .npz to
`load_inception`.

Variables: apply_fn takes the whole Flax variables dict, {'params': ..., 'batch_stats': ...},
because the BatchNorm running statistics are part of the fixed network. In the .npz each array is
stored under its path in that dict joined by '/', e.g. 'params/Mixed_5b/branch1x1/conv/kernel'
(HWIO) or 'batch_stats/Mixed_5b/branch1x1/bn/mean'.

Images: float in [-1, 1] (the generators' tanh range; pytorch-fid's `2 * x - 1` of [0, 1] images),
shape [N, H, W, 3] or [N, H, W, 1] (grey is repeated to RGB), any H, W.
"""
from __future__ import annotations

import functools
import hashlib
import io
import pathlib
import zipfile
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxgan.errors import DataError, UserError
from jaxgan.metrics.classifier import params_sha256

INPUT_SIZE = 299
NUM_LOGITS = 1008  # the width of the 2015 graph's softmax layer
NUM_FEATURES = 2048
FEATURE_NETWORK = 'inception_v3_fid'
CONVERT_HINT = ('convert pytorch-fid\'s pt_inception-2015-12-05-6726825d.pth with python -m '
                'jaxgan.metrics.inception_convert IN.pth OUT.npz (see docs/inception.md)')


def resize_bilinear(x: jax.Array, height: int, width: int) -> jax.Array:
  """[N, H, W, C] -> [N, height, width, C], as PyTorch's bilinear interpolate(align_corners=False).

  jax.image.resize antialiases by default when it shrinks an image; pytorch-fid's interpolate does
  not, so a 512x512 reference set would get different features. Without antialiasing the two
  agree (half-pixel centres, edge pixels repeated).
  """
  if x.shape[1:3] == (height, width):
    return x
  return jax.image.resize(x, (x.shape[0], height, width, x.shape[3]), 'bilinear',
                          antialias=False, precision=jax.lax.Precision.HIGHEST)


def prepare_input(x: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """[N, H, W, 3 or 1] (or [N, H, W]) float in [-1, 1] -> float32 [N, size, size, 3].

  Resizing commutes with the affine map [0, 1] -> [-1, 1] (the interpolation weights sum to 1),
  so resizing [-1, 1] images equals pytorch-fid's resize of [0, 1] images, then 2x - 1.
  """
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise UserError(f'InceptionV3 expects images [N, H, W, 3] or [N, H, W, 1], got {x.shape}')
  if not jnp.issubdtype(x.dtype, jnp.floating):
    # Scaling uint8 here would hide a wrong range elsewhere; classify() converts uint8 for you.
    raise UserError(f'InceptionV3 expects float images in [-1, 1], got {x.dtype}; '
                    'jaxgan.metrics.classify converts uint8')
  x = x.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  return resize_bilinear(x, size, size)


def avg_pool_3x3(x: jax.Array) -> jax.Array:
  """3x3 stride-1 average over the pixels inside the image (TF's SAME average pool)."""
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def max_pool_3x3(x: jax.Array, stride: int = 1) -> jax.Array:
  """3x3 max pool: stride 1 keeps the size (padding never wins), stride 2 is unpadded."""
  padding = ((1, 1), (1, 1)) if stride == 1 else 'VALID'
  return nn.max_pool(x, (3, 3), (stride, stride), padding)


def _pair(k: int | Sequence[int]) -> tuple[int, int]:
  return (k, k) if isinstance(k, int) else tuple(k)


class BasicConv(nn.Module):
  """Conv (no bias) -> inference BatchNorm (eps 1e-3) -> ReLU; submodules 'conv' and 'bn'.

  Attributes:
    features: output channels.
    kernel: kernel size, int or (height, width).
    strides: the stride of both spatial axes.
    padding: 'SAME' (stride 1 only: k // 2 on each side, as the PyTorch port pads) or 'VALID'.
    precision: the convolution's precision (see InceptionV3).
  """
  features: int
  kernel: int | Sequence[int] = 1
  strides: int = 1
  padding: str = 'SAME'
  precision: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = _pair(self.kernel)
    if self.padding == 'SAME':
      pad = tuple((k // 2, k // 2) for k in kernel)
    else:
      pad = 'VALID'
    x = nn.Conv(self.features, kernel, (self.strides, self.strides), pad, use_bias=False,
                precision=self.precision, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name='bn')(x)
    return nn.relu(x)


class _Block(nn.Module):
  """Base of the Mixed blocks: `chain` runs named BasicConvs one after the other."""
  precision: Any = None

  def chain(self, x: jax.Array, *layers: tuple) -> jax.Array:
    """layers: (name, features, kernel[, strides, padding]) each, applied in order."""
    for name, features, kernel, *rest in layers:
      x = BasicConv(features, kernel, *rest, precision=self.precision, name=name)(x)
    return x

  def fork(self, x: jax.Array, name_a: str, name_b: str, features: int) -> jax.Array:
    """The InceptionE split: a 1x3 and a 3x1 conv on the same input, concatenated."""
    return jnp.concatenate([self.chain(x, (name_a, features, (1, 3))),
                            self.chain(x, (name_b, features, (3, 1)))], axis=-1)


class InceptionA(_Block):
  """Mixed_5b/c/d (35x35): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg pool-1x1 -> 224 + pool_features."""
  pool_features: int = 32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return jnp.concatenate([
        self.chain(x, ('branch1x1', 64, 1)),
        self.chain(x, ('branch5x5_1', 48, 1), ('branch5x5_2', 64, 5)),
        self.chain(x, ('branch3x3dbl_1', 64, 1), ('branch3x3dbl_2', 96, 3),
                   ('branch3x3dbl_3', 96, 3)),
        self.chain(avg_pool_3x3(x), ('branch_pool', self.pool_features, 1)),
    ], axis=-1)


class InceptionB(_Block):
  """Mixed_6a (35x35 -> 17x17): 3x3/2 | 1x1-3x3-3x3/2 | max pool/2 -> 768 channels."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return jnp.concatenate([
        self.chain(x, ('branch3x3', 384, 3, 2, 'VALID')),
        self.chain(x, ('branch3x3dbl_1', 64, 1), ('branch3x3dbl_2', 96, 3),
                   ('branch3x3dbl_3', 96, 3, 2, 'VALID')),
        max_pool_3x3(x, 2),
    ], axis=-1)


class InceptionC(_Block):
  """Mixed_6b-e (17x17), factorised 7x7 convs of `channels_7x7` -> 768 channels."""
  channels_7x7: int = 128

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c7 = self.channels_7x7
    return jnp.concatenate([
        self.chain(x, ('branch1x1', 192, 1)),
        self.chain(x, ('branch7x7_1', c7, 1), ('branch7x7_2', c7, (1, 7)),
                   ('branch7x7_3', 192, (7, 1))),
        self.chain(x, ('branch7x7dbl_1', c7, 1), ('branch7x7dbl_2', c7, (7, 1)),
                   ('branch7x7dbl_3', c7, (1, 7)), ('branch7x7dbl_4', c7, (7, 1)),
                   ('branch7x7dbl_5', 192, (1, 7))),
        self.chain(avg_pool_3x3(x), ('branch_pool', 192, 1)),
    ], axis=-1)


class InceptionD(_Block):
  """Mixed_7a (17x17 -> 8x8): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max pool/2 -> 1280 channels."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return jnp.concatenate([
        self.chain(x, ('branch3x3_1', 192, 1), ('branch3x3_2', 320, 3, 2, 'VALID')),
        self.chain(x, ('branch7x7x3_1', 192, 1), ('branch7x7x3_2', 192, (1, 7)),
                   ('branch7x7x3_3', 192, (7, 1)), ('branch7x7x3_4', 192, 3, 2, 'VALID')),
        max_pool_3x3(x, 2),
    ], axis=-1)


class InceptionE(_Block):
  """Mixed_7b/c (8x8) -> 2048 channels; `pool` 'avg' (Mixed_7b) or 'max' (Mixed_7c, as in TF)."""
  pool: str = 'avg'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    pooled = avg_pool_3x3(x) if self.pool == 'avg' else max_pool_3x3(x)
    return jnp.concatenate([
        self.chain(x, ('branch1x1', 320, 1)),
        self.fork(self.chain(x, ('branch3x3_1', 384, 1)), 'branch3x3_2a', 'branch3x3_2b', 384),
        self.fork(self.chain(x, ('branch3x3dbl_1', 448, 1), ('branch3x3dbl_2', 384, 3)),
                  'branch3x3dbl_3a', 'branch3x3dbl_3b', 384),
        self.chain(pooled, ('branch_pool', 192, 1)),
    ], axis=-1)


class InceptionV3(nn.Module):
  """The FID InceptionV3: x [N, H, W, C] in [-1, 1] -> (logits [N, 1008], pool_3 [N, 2048]).

  Submodule names are those of torchvision's Inception3 (Conv2d_1a_3x3, Mixed_5b, ..., fc), so
  the converter maps names one to one. BatchNorm always uses its stored statistics: this network
  is a fixed measuring instrument, never trained here.

  Attributes:
    precision: the precision of the convolutions and the final dense layer. 'highest' (float32
      throughout) by default, so a score does not depend on whether the accelerator would
      otherwise use TF32 / bf16 passes; the whole network is about 6 GFLOP per image, so the
      cost is small next to sampling.
  """
  precision: Any = 'highest'

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = prepare_input(x)
    conv = functools.partial(BasicConv, precision=self.precision)
    x = conv(32, 3, 2, 'VALID', name='Conv2d_1a_3x3')(x)  # 149x149
    x = conv(32, 3, 1, 'VALID', name='Conv2d_2a_3x3')(x)  # 147x147
    x = conv(64, 3, name='Conv2d_2b_3x3')(x)
    x = max_pool_3x3(x, 2)  # 73x73
    x = conv(80, 1, name='Conv2d_3b_1x1')(x)
    x = conv(192, 3, 1, 'VALID', name='Conv2d_4a_3x3')(x)  # 71x71
    x = max_pool_3x3(x, 2)  # 35x35

    p = self.precision
    x = InceptionA(precision=p, pool_features=32, name='Mixed_5b')(x)  # 256 channels
    x = InceptionA(precision=p, pool_features=64, name='Mixed_5c')(x)  # 288
    x = InceptionA(precision=p, pool_features=64, name='Mixed_5d')(x)  # 288
    x = InceptionB(precision=p, name='Mixed_6a')(x)  # 17x17, 768
    for name, c7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160), ('Mixed_6e', 192)):
      x = InceptionC(precision=p, channels_7x7=c7, name=name)(x)
    x = InceptionD(precision=p, name='Mixed_7a')(x)  # 8x8, 1280
    x = InceptionE(precision=p, pool='avg', name='Mixed_7b')(x)  # 2048
    x = InceptionE(precision=p, pool='max', name='Mixed_7c')(x)  # 2048

    pool = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(NUM_LOGITS, precision=self.precision, name='fc')(pool)
    return logits, pool


def make_apply_fn(model: InceptionV3) -> Callable:
  """apply_fn(variables, x float [N, H, W, C] in [-1, 1]) -> (logits, pool_3), for `classify`.

  `variables` is the whole dict {'params': ..., 'batch_stats': ...}, as `load_inception` returns.
  """
  def apply_fn(variables, x):
    return model.apply(variables, x)
  return apply_fn


def score_logits(variables: Any, pool: jax.Array) -> jax.Array:
  """pool_3 [N, 2048] @ the fc kernel, without the bias -> [N, 1008].

  The Improved-GAN Inception Score code (Salimans et al. 2016), whose numbers papers quote, takes
  the softmax of pool_3 times the graph's softmax/logits weights and leaves out the bias; use
  these logits for a comparable Inception Score. The model's own logits include the bias.
  """
  return jnp.dot(pool, variables['params']['fc']['kernel'], precision='highest')


@functools.lru_cache(maxsize=1)
def _variable_shapes() -> tuple[tuple[str, tuple[int, ...]], ...]:
  x = jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3))
  tree = jax.eval_shape(lambda: InceptionV3().init(jax.random.key(0), x))
  return tuple((k, tuple(v.shape)) for k, v in traverse_util.flatten_dict(tree, sep='/').items())


def variable_shapes() -> dict[str, tuple[int, ...]]:
  """{'params/Mixed_5b/branch1x1/conv/kernel': (1, 1, 192, 64), ...}: every array the model needs.

  Traced once with jax.eval_shape (nothing is computed or allocated) and cached.
  """
  return dict(_variable_shapes())


def check_arrays(arrays: Mapping[str, np.ndarray], source: str) -> None:
  """Raises a one-line DataError unless `arrays` holds exactly the model's names and shapes.

  Args:
    arrays: flat name -> array, names as in `variable_shapes`.
    source: what the arrays came from (a file name), for the message.
  """
  expected = variable_shapes()
  problems = []
  missing = sorted(set(expected) - set(arrays))
  extra = sorted(set(arrays) - set(expected))
  if missing:
    problems.append(f'{len(missing)} missing (first {missing[0]})')
  if extra:
    problems.append(f'{len(extra)} unexpected (first {extra[0]})')
  wrong = [k for k in sorted(set(expected) & set(arrays)) if arrays[k].shape != expected[k]]
  if wrong:
    problems.append(f'{len(wrong)} of the wrong shape (first {wrong[0]}: '
                    f'{tuple(arrays[wrong[0]].shape)}, expected {expected[wrong[0]]})')
  bad_type = [k for k in sorted(arrays) if not np.issubdtype(arrays[k].dtype, np.floating)]
  if bad_type:
    problems.append(f'{len(bad_type)} not floating point (first {bad_type[0]}: '
                    f'{arrays[bad_type[0]].dtype})')
  if not problems:
    bad_value = [k for k in sorted(arrays) if not np.all(np.isfinite(arrays[k]))]
    if bad_value:
      problems.append(f'{len(bad_value)} with NaN or inf (first {bad_value[0]})')
  if problems:
    raise DataError(f'{source} is not the FID InceptionV3 weights: arrays '
                    f'{"; ".join(problems)}; {CONVERT_HINT}')


def load_inception(path: str | pathlib.Path) -> tuple[Callable, Any, dict]:
  """Loads the FID InceptionV3 from a .npz written by `jaxgan.metrics.inception_convert`.

  Args:
    path: the .npz file (never fetched from the network).

  Returns:
    (apply_fn, variables, info): apply_fn(variables, x float [N, H, W, C] in [-1, 1]) -> (logits
    [N, 1008], pool_3 features [N, 2048]), usable with `classify`; variables is {'params': ...,
    'batch_stats': ...} as float32 numpy arrays; info has 'feature_network' ('inception_v3_fid'),
    'weights_sha256' (of the file's bytes), 'params_sha256' (of the arrays, as classifier's
    `params_sha256`), 'path', 'num_params', 'logits', 'features' and 'input'.

  Raises:
    UserError: no file at `path`.
    DataError: the file is not an .npz, or its arrays are not exactly the network's.
  """
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise UserError(f'no Inception weights at {path}; {CONVERT_HINT}')
  raw = path.read_bytes()
  try:
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
      arrays = {k: npz[k] for k in npz.files}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise DataError(f'{path} is not a readable .npz ({type(e).__name__}: '
                    f'{" ".join(str(e).split())}); {CONVERT_HINT}') from None
  check_arrays(arrays, str(path))
  flat = {tuple(k.split('/')): np.asarray(v, np.float32) for k, v in arrays.items()}
  variables = traverse_util.unflatten_dict(flat)
  info = {
      'feature_network': FEATURE_NETWORK,
      'weights_sha256': hashlib.sha256(raw).hexdigest(),
      'params_sha256': params_sha256(variables),
      'path': str(path.resolve()),
      'num_params': int(sum(v.size for v in flat.values())),
      'logits': NUM_LOGITS,
      'features': NUM_FEATURES,
      'input': 'float [-1, 1], [N, H, W, 3] or [N, H, W, 1], resized to 299x299 bilinear',
  }
  return make_apply_fn(InceptionV3()), variables, info
