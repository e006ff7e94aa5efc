r"""Converts pytorch-fid's Inception weights to the .npz that `load_inception` reads.

  python -m jaxgan.metrics.inception_convert pt_inception-2015-12-05-6726825d.pth inception_fid.npz

Reading the .pth needs PyTorch (any CPU build); nothing else does, and the .npz can be copied to
machines without it. Nothing is downloaded: the user fetches the .pth (docs/inception.md).

Name mapping (PyTorch state_dict key -> .npz key; P is the module path with '.' -> '/', e.g.
'Mixed_6b.branch7x7_2' -> 'Mixed_6b/branch7x7_2'):

  P.conv.weight         [O, I, kh, kw] -> params/P/conv/kernel   [kh, kw, I, O]  (OIHW -> HWIO)
  P.bn.weight           [C]            -> params/P/bn/scale      [C]
  P.bn.bias             [C]            -> params/P/bn/bias       [C]
  P.bn.running_mean     [C]            -> batch_stats/P/bn/mean  [C]
  P.bn.running_var      [C]            -> batch_stats/P/bn/var   [C]
  P.bn.num_batches_tracked             -> dropped (a training counter)
  fc.weight             [1008, 2048]   -> params/fc/kernel       [2048, 1008]  (transposed)
  fc.bias               [1008]         -> params/fc/bias         [1008]

Any other key is an error. The result is then checked against the model's names and shapes before
anything is written, which rejects the right kind of key on a module the FID network lacks (e.g.
torchvision's AuxLogits.conv0.conv.weight) or a layer of the wrong size.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import sys
import zipfile
from typing import Mapping, Sequence

import numpy as np

from jaxgan.errors import UserError
from jaxgan.metrics import inception

# (state_dict suffix, .npz collection, .npz leaf name, axes permutation or None).
_RULES = (
    ('.conv.weight', 'params', 'conv/kernel', (2, 3, 1, 0)),
    ('.bn.weight', 'params', 'bn/scale', None),
    ('.bn.bias', 'params', 'bn/bias', None),
    ('.bn.running_mean', 'batch_stats', 'bn/mean', None),
    ('.bn.running_var', 'batch_stats', 'bn/var', None),
)
_FC = {'fc.weight': ('params/fc/kernel', (1, 0)), 'fc.bias': ('params/fc/bias', None)}


def npz_name(key: str) -> tuple[str, tuple[int, ...] | None] | None:
  """The .npz name of one state_dict key and the transpose it needs; None to drop the key.

  Raises:
    UserError: a key the FID InceptionV3 does not have.
  """
  if key.endswith('.num_batches_tracked'):
    return None
  if key in _FC:
    return _FC[key]
  for suffix, collection, leaf, axes in _RULES:
    if key.endswith(suffix):
      module = key[:-len(suffix)].replace('.', '/')
      return f'{collection}/{module}/{leaf}', axes
  raise UserError(f'state_dict key {key!r} is not part of the FID InceptionV3 (is this '
                  'pytorch-fid\'s pt_inception-2015-12-05 file?)')


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Maps a pytorch-fid state_dict (as numpy arrays) to float32 .npz arrays; a pure function.

  Args:
    state_dict: PyTorch key -> array (torch tensors converted with .numpy()).

  Returns:
    .npz name -> float32 C-contiguous array, laid out for Flax (see the module docstring).
  """
  out = {}
  for key, value in state_dict.items():
    mapped = npz_name(key)
    if mapped is None:
      continue
    name, axes = mapped
    array = np.asarray(value, dtype=np.float32)
    if axes is not None:
      if array.ndim != len(axes):
        raise UserError(f'state_dict {key!r} has shape {array.shape}; expected {len(axes)} axes')
      array = array.transpose(axes)
    out[name] = np.ascontiguousarray(array)
  return out


def save_npz(arrays: Mapping[str, np.ndarray], path: str | pathlib.Path) -> str:
  """Writes the arrays as an uncompressed .npz (replaced atomically); returns its sha256.

  np.savez stamps each member with the current time, so converting the same .pth twice would
  give files with different sha256s; here members are sorted by name and dated 1980-01-01, so
  the same arrays always give the same bytes and `weights_sha256` names the network.
  """
  path = pathlib.Path(path)
  tmp = path.with_name(path.name + '.tmp')
  with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_STORED) as zf:
    for name in sorted(arrays):
      member = zipfile.ZipInfo(name + '.npy', date_time=(1980, 1, 1, 0, 0, 0))
      member.create_system = 3  # the Unix value, whatever the converting machine
      member.external_attr = 0o644 << 16
      with zf.open(member, 'w', force_zip64=True) as f:
        np.lib.format.write_array(f, np.ascontiguousarray(arrays[name]), allow_pickle=False)
  os.replace(tmp, path)
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_torch_state_dict(path: pathlib.Path) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError('reading a .pth needs PyTorch: pip install torch (the CPU build is enough), '
                    'or convert on a machine that has it and copy the .npz') from None
  if not path.is_file():
    raise UserError(f'no such file {path}; download pt_inception-2015-12-05-6726825d.pth from '
                    'https://github.com/mseitzer/pytorch-fid/releases (see docs/inception.md)')
  try:
    # weights_only: a state_dict is tensors only, so refuse to unpickle arbitrary objects.
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  (torch raises many types for bad files)
    raise UserError(f'cannot read {path} as a PyTorch state_dict ({type(e).__name__}: '
                    f'{" ".join(str(e).split())[:200]})') from None
  if not isinstance(obj, Mapping) or not all(torch.is_tensor(v) for v in obj.values()):
    raise UserError(f'{path} holds a {type(obj).__name__}, not a state_dict of tensors')
  return {k: v.detach().cpu().numpy() for k, v in obj.items()}


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: IN.pth OUT.npz. Bad input ends with one line on stderr and status 2."""
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(
      prog='python -m jaxgan.metrics.inception_convert',
      description='Convert pytorch-fid\'s pt_inception-2015-12-05-6726825d.pth to the .npz '
                  'that jaxgan.metrics.load_inception reads.')
  parser.add_argument('pth', type=pathlib.Path, help='the pytorch-fid state_dict (.pth)')
  parser.add_argument('npz', type=pathlib.Path, help='the output file (.npz)')
  args = parser.parse_args(argv)
  try:
    arrays = convert_state_dict(_load_torch_state_dict(args.pth))
    inception.check_arrays(arrays, str(args.pth))
    sha = save_npz(arrays, args.npz)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'wrote {args.npz}: {len(arrays)} arrays, '
        f'{sum(a.size for a in arrays.values()):,} numbers, sha256 {sha}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
