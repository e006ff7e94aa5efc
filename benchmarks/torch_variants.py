r"""PyTorch's faster GPU settings for the torch_reference.py cases: TF32, channels_last, bf16.

  python benchmarks/torch_variants.py [--torch-ref PATH] [--cases a,b] [--steps 50]
                                      [--variants default,tf32_cl,bf16_cl]

torch_reference.py times its steps as written: float32 parameters and activations,
NCHW tensors, PyTorch's defaults for TF32 (cuDNN convolutions may use it, matmuls do
not). jaxgan's GPU targets compare with PyTorch's *best* float32 configuration
and with its bf16 one, so this script times the same networks, losses and updates (the
reference's own modules and MMD, imported from its file) under:

  default   the reference's settings (a check that this harness matches its numbers)
  tf32_cl   TF32 for matmuls and convolutions, networks and images in channels_last
  bf16_cl   tf32_cl plus torch.autocast(bfloat16) around the forward passes and losses
            (float32 parameters and Adam state, as jaxgan's --dtype bfloat16)

One process times every (variant, case) pair: 5 warm-up steps, then --steps timed steps
between CUDA synchronisations. Prints one JSON object
  {"device", "torch", "<variant>": {"<case>": {"step_ms", "img_s"} | {"error"}}}.
Run it on the same GPU in the same call as benchmarks/run.py (benchmarks/gpu.sh does).
On a CPU-only torch it runs too (autocast on the CPU), which is how the test checks it.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import pathlib
import sys
import time

from step_speed import DEFAULT_TORCH_REF as DEFAULT_REF  # one place for the default path
VARIANTS = ('default', 'tf32_cl', 'bf16_cl')


def load_reference(path: pathlib.Path):
  spec = importlib.util.spec_from_file_location('torch_reference', path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def make_step(ref, torch, case: str, variant: str):
  """The D + G step of `case` under `variant` (the reference's step otherwise), as a
  closure returning (loss_d, loss_g), and the batch size it trains on."""
  dev = ref.DEV
  torch.backends.cuda.matmul.allow_tf32 = variant != 'default'
  torch.backends.cudnn.allow_tf32 = True  # PyTorch's default; the reference runs with it
  torch.backends.cudnn.benchmark = variant != 'default'
  g, d, batch, image_shape, eta = ref.CASES[case]()
  fmt = torch.channels_last if variant != 'default' else torch.contiguous_format
  g, d = g.to(dev, memory_format=fmt), d.to(dev, memory_format=fmt)
  opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
  x = (torch.rand((batch,) + image_shape, device=dev) * 2 - 1).contiguous(memory_format=fmt)
  z = torch.randn(batch, 100, device=dev)
  if image_shape[0] == 3:  # the 64x64 G starts from a 1x1 "image" of the noise
    z = z.view(batch, 100, 1, 1).contiguous(memory_format=fmt)
  ones, zeros = torch.ones(batch, device=dev), torch.zeros(batch, device=dev)
  bce = torch.nn.functional.binary_cross_entropy_with_logits
  amp = (torch.autocast(dev, dtype=torch.bfloat16) if variant == 'bf16_cl'
         else contextlib.nullcontext())

  def step():
    opt_d.zero_grad(set_to_none=True)
    with amp:
      fake = g(z)
      loss_d = bce(d(x)[0].float(), ones) + bce(d(fake.detach())[0].float(), zeros)
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    with amp:
      logit, feat = d(fake)
      loss_g = bce(logit.float(), ones)
    if eta:  # MMD in float32, outside autocast (as jaxgan computes it)
      with amp:
        real_feat = d(x)[1]
      loss_g = loss_g + eta * ref.mmd2_unbiased(feat.float(), real_feat.detach().float())
    loss_g.backward()
    opt_g.step()
    return loss_d, loss_g

  return step, batch


def time_case(ref, torch, case: str, variant: str, steps: int) -> dict:
  """Seconds per D + G step of `case` under `variant` (make_step), after 5 warm-up steps."""
  step, batch = make_step(ref, torch, case, variant)
  sync = torch.cuda.synchronize if ref.DEV == 'cuda' else (lambda: None)
  for _ in range(5):
    losses = step()
  sync()
  t = time.perf_counter()
  for _ in range(steps):
    losses = step()
  sync()
  dt = (time.perf_counter() - t) / steps
  if not all(bool(torch.isfinite(l)) for l in losses):
    raise FloatingPointError(f'non-finite loss {[float(l) for l in losses]}')
  return {'step_ms': round(dt * 1e3, 3), 'img_s': round(batch / dt, 1)}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--torch-ref', default=str(DEFAULT_REF))
  p.add_argument('--cases', default='mnist_mmd_b100,dcgan64_b64,dcgan64_b256')
  p.add_argument('--variants', default=','.join(VARIANTS))
  p.add_argument('--steps', type=int, default=50)
  p.add_argument('--threads', type=int, default=0, help="torch threads (0: torch's default)")
  args = p.parse_args(argv)
  path = pathlib.Path(args.torch_ref)
  if not path.is_file():
    sys.exit(f'torch_variants.py: {path} not found: pass --torch-ref PATH to torch_reference.py')
  variants = [v for v in args.variants.split(',') if v]
  unknown = sorted(set(variants) - set(VARIANTS))
  if unknown:
    sys.exit(f'torch_variants.py: unknown variant(s) {unknown}; known: {", ".join(VARIANTS)}')
  ref = load_reference(path)
  import torch  # pylint: disable=g-import-not-at-top
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  out = {'device': torch.cuda.get_device_name() if ref.DEV == 'cuda' else 'cpu',
         'torch': torch.__version__}
  for variant in variants:
    out[variant] = {}
    for case in args.cases.split(','):
      try:
        out[variant][case] = time_case(ref, torch, case, variant, args.steps)
      except Exception as e:  # pylint: disable=broad-except  (reported, not hidden)
        out[variant][case] = {'error': repr(e)[:300]}
      print(f'{variant:8s} {case:15s} {out[variant][case]}', file=sys.stderr, flush=True)
  print(json.dumps(out))
  return out


if __name__ == '__main__':
  main()
