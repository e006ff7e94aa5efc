"""The feature network for MNIST-like scores: a small CNN that jaxgan trains itself.

This module holds the network (`ClassifierCNN`), what identifies a trained one
(`params_sha256`), loading it (`load_classifier`) and using it (`classify`, `accuracy_and_nll`).
Training it is `jaxgan.classifier_training` (main.py with a configs/*_classifier.py config):
the metrics only ever read a trained network, so they carry no optimiser or training loop.

For 28x28 grey data an ImageNet Inception network is the wrong judge, so, like TF-GAN's
mnist_score and Binkowski et al. 2018 (LeNet features), jaxgan scores samples with a small
classifier trained on the real data: its softmax gives the Inception-style score and the class
histogram, its penultimate (dense, ReLU) layer the features for FID and KID.

A trained classifier lives in a workdir W:

  W/config.json        the training config
  W/metrics.jsonl      one JSON line per epoch (train loss/accuracy, test loss/accuracy, time)
  W/classifier/<step>/ the parameters (orbax)
  W/classifier.json    {dataset, test_accuracy, epochs, params_sha256, model, ...}

`params_sha256` names the exact network, so a reported score can state which one produced it;
`load_classifier` checks it.

jaxgan ships the classifiers its own configs train (configs/mnist_classifier.py and
configs/fashion_mnist_classifier.py; the training is deterministic: two machines gave the
same parameters) as package data, `metrics/classifiers/<dataset>.npz` with a
`<dataset>.json` beside it, and pins their SHA-256 in `SHIPPED_SHA256`, so scores from any
two installations compare, as pytorch-fid's pinned Inception weights make FIDs compare.
`load_shipped` refuses files that do not hash to the pinned value.

Images: uint8 in [0, 255] or float in [-1, 1] (the range of `jaxgan.data.to_float` and of the
generators' tanh output), shape [N, 28, 28, 1] (or [N, 28, 28]).
"""
from __future__ import annotations

import functools
import hashlib
import json
import pathlib
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.checkpoint import Checkpointer
from jaxgan.errors import DataError, UserError

INFO_FILE = 'classifier.json'
PARAMS_DIR = 'classifier'
SHIPPED_DIR = pathlib.Path(__file__).resolve().parent / 'classifiers'
# params_sha256 of the shipped classifiers: what every jaxgan score of these datasets used.
SHIPPED_SHA256 = {
    'mnist': 'd3831574fdf584f3edb2c465be9a92193b15f61aa507456813a7fe233ba8bf8a',
    'fashion_mnist': '67b1e56e945e00497999b12bf85e0e731589eb090dbad89976d14eba3628e668',
}


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max pooling, stride 2, on [N, H, W, C] with even H, W -> [N, H/2, W/2, C].

  Equal to nn.max_pool(x, (2, 2), (2, 2)), written as reshape + max because XLA:CPU
  differentiates reduce_window-max with select-and-scatter, which made the whole training step
  about 2x slower on the 2-core CPU; the reshape form's gradient is elementwise.
  """
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class ClassifierCNN(nn.Module):
  """LeNet-like CNN: [conv3x3-ReLU-maxpool] x len(widths), dropout, dense-ReLU, dropout, dense.

  After LeCun et al. 1998 ("Gradient-based learning applied to document recognition"), with
  ReLU, max pooling and dropout. The defaults train to about 99.2% MNIST test accuracy in 8
  epochs (about 3.5 minutes on a shared 2-core CPU); wider convs cost ~3x per epoch.

  Attributes:
    widths: channels of the conv blocks.
    features: width of the penultimate dense layer (the FID / KID features).
    num_classes: outputs.
    conv_dropout, dense_dropout: dropout rates after the conv stack and the feature layer.
  """
  widths: Sequence[int] = (16, 32)
  features: int = 128
  num_classes: int = 10
  conv_dropout: float = 0.1
  dense_dropout: float = 0.25

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """x [N, 28, 28, C] float in [-1, 1] -> (logits [N, num_classes], feats [N, features])."""
    for width in self.widths:
      x = max_pool_2x2(nn.relu(nn.Conv(width, (3, 3))(x)))
    x = nn.Dropout(self.conv_dropout, deterministic=not train)(x)
    feats = nn.relu(nn.Dense(self.features)(x.reshape(x.shape[0], -1)))
    h = nn.Dropout(self.dense_dropout, deterministic=not train)(feats)
    return nn.Dense(self.num_classes)(h), feats


def model_from_config(model_config: Any) -> ClassifierCNN:
  """Builds the network from config.model (or the 'model' dict of classifier.json)."""
  return ClassifierCNN(widths=tuple(model_config['widths']), features=model_config['features'],
                       conv_dropout=model_config['conv_dropout'],
                       dense_dropout=model_config['dense_dropout'])


def make_apply_fn(model: ClassifierCNN) -> Callable:
  """apply_fn(params, x float [N, 28, 28, C] in [-1, 1]) -> (logits, feats), eval mode."""
  def apply_fn(params, x):
    return model.apply({'params': params}, x, train=False)
  return apply_fn


def params_sha256(params: Any) -> str:
  """SHA-256 of the float32 little-endian bytes of the leaves, concatenated in tree order.

  Tree order is jax.tree.leaves order (dict keys sorted), so equal parameters hash equally no
  matter how they were produced or restored.
  """
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(params)):
    digest.update(np.ascontiguousarray(leaf, dtype='<f4').tobytes())
  return digest.hexdigest()


# --- Inference.


def as_float_images(x: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1] (as data.to_float); float passes through as float32.

  Public because classifier_training feeds its training batches through it too: the network
  must see one input scaling when it is trained and when it scores samples.
  """
  if x.dtype == jnp.uint8:
    return x.astype(jnp.float32) / jnp.float32(127.5) - jnp.float32(1.0)
  return x.astype(jnp.float32)


@functools.lru_cache(maxsize=16)
def _compiled_forward(apply_fn: Callable) -> Callable:
  """jit(images -> (softmax probs, feats)) for one apply_fn, compiled once per batch shape."""
  @jax.jit
  def forward(params, x):
    logits, feats = apply_fn(params, as_float_images(x))
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1), feats.astype(jnp.float32)
  return forward


def classify(apply_fn: Callable, params: Any, images, batch_size: int = 1000
             ) -> tuple[np.ndarray, np.ndarray]:
  """Class probabilities and features of many images, in fixed-size jit-compiled batches.

  The last batch is zero-padded to `batch_size`, so any N compiles one shape only.

  Args:
    apply_fn: apply_fn(params, x) -> (logits [B, K], feats [B, F]); see `make_apply_fn`.
    params: the network's parameters.
    images: [N, 28, 28, C] or [N, 28, 28], uint8 in [0, 255] or float in [-1, 1].
    batch_size: images per compiled call.

  Returns:
    (probs float32 [N, K], feats float32 [N, F]) as numpy arrays.
  """
  x = np.asarray(images)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[0] == 0:
    raise UserError(f'classify expects images [N, H, W, C] with N > 0, got {x.shape}')
  if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
    raise UserError(f'classify expects uint8 or float images, got {x.dtype}')
  forward = _compiled_forward(apply_fn)
  n = x.shape[0]
  outs = []
  for start in range(0, n, batch_size):
    batch = x[start:start + batch_size]
    if len(batch) < batch_size:
      pad = np.zeros((batch_size - len(batch),) + x.shape[1:], x.dtype)
      batch = np.concatenate([batch, pad])
    outs.append(forward(params, batch))  # dispatched asynchronously; fetched once below
  outs = jax.device_get(outs)
  probs = np.concatenate([o[0] for o in outs])[:n]
  feats = np.concatenate([o[1] for o in outs])[:n]
  return probs, feats


def accuracy_and_nll(apply_fn: Callable, params: Any, images: np.ndarray,
                     labels: np.ndarray) -> dict:
  """{'accuracy': fraction of argmax == label, 'loss': mean NLL} of the classifier on labelled
  images (uint8 or float as in `classify`, labels int [N])."""
  probs, _ = classify(apply_fn, params, images)
  p_true = probs[np.arange(len(labels)), labels].astype(np.float64)
  # Floor at the smallest normal float32 so a confidently wrong, underflowed 0 stays finite.
  nll = -np.log(np.maximum(p_true, np.finfo(np.float32).tiny))
  return {'accuracy': float(np.mean(probs.argmax(-1) == labels)), 'loss': float(nll.mean())}


def load_classifier(path: str | pathlib.Path) -> tuple[Callable, Any, dict]:
  """Loads a classifier trained by `jaxgan.classifier_training.train_classifier`.

  Args:
    path: its workdir, or the workdir's classifier.json.

  Returns:
    (apply_fn, params, info): apply_fn(params, x float [N, 28, 28, 1] in [-1, 1]) -> (logits,
    feats), for `classify`; info is classifier.json.

  Raises:
    UserError: no trained classifier at `path`.
    DataError: the restored parameters do not match the recorded params_sha256.
  """
  path = pathlib.Path(path)
  info_path = path if path.name == INFO_FILE else path / INFO_FILE
  if not info_path.is_file():
    raise UserError(f'no trained classifier at {path} ({info_path} missing); train one with '
                    'python main.py --config=configs/mnist_classifier.py --workdir=DIR')
  info = json.loads(info_path.read_text())
  model = model_from_config(info['model'])
  ckpt = Checkpointer(info_path.parent / PARAMS_DIR, max_to_keep=1)
  try:
    target = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1), jnp.float32))['params'])
    params = ckpt.restore(target, info['steps'])
  finally:
    ckpt.close()
  sha = params_sha256(params)
  if sha != info['params_sha256']:
    raise DataError(f'classifier parameters in {info_path.parent / PARAMS_DIR} have sha256 {sha}, '
                    f'but {info_path} records {info["params_sha256"]}: the files do not belong '
                    'together; retrain the classifier')
  return make_apply_fn(model), params, info


def _flat(params: Any) -> dict[str, np.ndarray]:
  return {'/'.join(str(k.key) for k in path): np.asarray(leaf, np.float32)
          for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(params))[0]}


def _unflat(arrays: dict[str, np.ndarray]) -> dict:
  tree: dict = {}
  for name, value in arrays.items():
    *parents, leaf = name.split('/')
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = jnp.asarray(value)
  return tree


def export(workdir: str | pathlib.Path, out_dir: str | pathlib.Path = SHIPPED_DIR) -> pathlib.Path:
  """Writes the classifier trained in `workdir` as out_dir/<dataset>.npz and .json, the
  form jaxgan ships (run once per dataset: `python -c "from jaxgan.metrics import
  classifier; classifier.export('W')"`)."""
  _, params, info = load_classifier(workdir)
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  np.savez(out_dir / f'{info["dataset"]}.npz', **_flat(params))
  keep = ('dataset', 'test_accuracy', 'epochs', 'steps', 'params_sha256', 'num_params', 'model',
          'input')
  (out_dir / f'{info["dataset"]}.json').write_text(
      json.dumps({k: info[k] for k in keep if k in info}, indent=2) + '\n')
  return out_dir / f'{info["dataset"]}.npz'


def load_shipped(dataset: str) -> tuple[Callable, Any, dict]:
  """The classifier jaxgan ships for `dataset` (mnist | fashion_mnist), checked against
  SHIPPED_SHA256: (apply_fn, params, info) as `load_classifier` returns them."""
  if dataset not in SHIPPED_SHA256:
    raise UserError(f'jaxgan ships classifiers for {sorted(SHIPPED_SHA256)}, not {dataset}; '
                    f'train one (configs/mnist_classifier.py with data.name={dataset}) and point '
                    '--config.eval.classifier_dir at it')
  path = SHIPPED_DIR / f'{dataset}.npz'
  if not path.is_file():
    raise DataError(f'{path} is missing from the installed package; reinstall jaxgan')
  with np.load(path) as z:
    params = _unflat({k: z[k] for k in z.files})
  info = json.loads(path.with_suffix('.json').read_text())
  sha = params_sha256(params)
  if sha != SHIPPED_SHA256[dataset]:
    raise DataError(f'{path} has sha256 {sha}, not the pinned {SHIPPED_SHA256[dataset]}: the '
                    'package data is damaged; reinstall jaxgan')
  return make_apply_fn(model_from_config(info['model'])), params, info
