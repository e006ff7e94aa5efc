#!/usr/bin/env bash
# Every GPU speed check, in one script, on a machine with one NVIDIA GPU.
#
#   bash benchmarks/gpu.sh [--dry-run] [--allow-cpu] [--steps N] [--rounds R] [--cases LIST]
#                          [any other benchmarks/run.py option, e.g. --no-compile]
#
# What it runs, stage by stage (a failed stage is logged and the next one still runs):
#   1. benchmarks/run.py over every case (mnist_mmd_b100, dcgan64_b64, dcgan64_b256,
#      wgan_gp, vtgan, sweep8) in float32 at the backend's default matmul precision
#      (TF32 on H100/H200; the peak matmul is measured the same way, so "% of peak"
#      compares like with like), jaxgan and torch_reference.py (eager; torch.compile in
#      the first round) alternated;
#   2. benchmarks/torch_variants.py: PyTorch's faster settings for the same three torch
#      cases (TF32 + channels_last; bf16 autocast), the "best PyTorch" of the targets
#      (skipped with --no-torch: on a CPU it runs the full-size steps for many minutes);
#   3. run.py over dcgan64_b256 and dcgan64_b64 with bfloat16 compute (float32
#      parameters, optimiser state, losses) against torch eager;
#   4. run.py over mnist_mmd_b100, sweep8 and dcgan64_b256 with train.steps_per_call=16
#      (16 steps a compiled call), jaxgan alone: compare with stage 1's rows;
#   5. (informative, 90 s cap, not in the exit status, --no-tests skips it)
#      tests/test_{kernels,layers,bf16,steps}.py on the GPU.
# Results: $OUT if set (the device tool's output folder), else benchmarks/results/, as
# <date>-<device>.{json,md}, <date>-<device>-bf16.{json,md} and
# <date>-torch-variants.json; the log (gpu_sh.log) beside them.
#
# The torch peer: torch_reference.py is looked for at $TORCH_REF, ../shared/bench/,
# shared/bench/ and .carry/ (in that order); without it, or without a CUDA torch, the
# torch columns are null with the reason. jaxgan needs ml_collections and tensorboardX,
# which the GPU image lacks: their wheels in .carry/wheels/ are installed to /tmp/site
# first (benchmarks/gpu_packages.sh). To stage both on the development machine (once),
# then carry `.carry` with the device tool's run:
#   bash benchmarks/gpu.sh --prepare        # copies torch_reference.py, downloads the wheels
#   # device tool: run(command="bash benchmarks/gpu.sh", carry=[".carry"], timeout_s=600)
# Defaults: 50 steps x 2 rounds per side, torch.compile in the first round only and given
# up after 150 s. Measured on one H200 (2026-11-26): mnist, dcgan64 x2 and wgan_gp took ~6
# minutes with torch.compile, then XLA compiled the vtgan step for over 2 minutes (call
# stopped at 450 s): in a short device call, pass --cases without vtgan.
#
# Checked on CPU: `bash benchmarks/gpu.sh --dry-run` parses everything and prints the
# plan; `bash benchmarks/gpu.sh --allow-cpu --cases mnist_mmd_b100 --steps 1 --rounds 1
# --no-torch --set data.batch_size=8` runs the pipeline end to end on the CPU.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PYTHON:-python3}"
STEPS=50
ROUNDS=2
COMPILE_TIMEOUT=150
TESTS=1
CASES=all
DRY=0
ALLOW_CPU=0
PREPARE=0
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --allow-cpu) ALLOW_CPU=1 ;;
    --prepare) PREPARE=1 ;;
    --steps) STEPS="$2"; shift ;;
    --rounds) ROUNDS="$2"; shift ;;
    --cases) CASES="$2"; shift ;;
    --compile-timeout) COMPILE_TIMEOUT="$2"; shift ;;
    --no-tests) TESTS=0 ;;
    *) EXTRA+=("$1") ;;
  esac
  shift
done

source "$REPO/benchmarks/gpu_packages.sh"
if [[ $PREPARE == 1 ]]; then
  # Run on the development machine: stage what the bare GPU machine lacks.
  mkdir -p .carry/wheels
  cp "$REPO/../shared/bench/torch_reference.py" .carry/
  gpu_packages_download
  ls -l .carry .carry/wheels
  exit 0
fi

OUTDIR="${OUT:-$REPO/benchmarks/results}"
LOG="$OUTDIR/gpu_sh.log"

gpu_packages_install benchmarks/gpu.sh || [[ $DRY == 1 ]] || exit 2

TORCH_REF_FOUND=""
for cand in "${TORCH_REF:-}" "$REPO/../shared/bench/torch_reference.py" \
            "$REPO/shared/bench/torch_reference.py" "$REPO/.carry/torch_reference.py"; do
  if [[ -n "$cand" && -f "$cand" ]]; then TORCH_REF_FOUND="$cand"; break; fi
done
REF_ARGS=()
if [[ -n "$TORCH_REF_FOUND" ]]; then
  REF_ARGS=(--torch-ref "$TORCH_REF_FOUND")
else
  echo "torch_reference.py not found: torch columns will be null" >&2
fi

# The torch peer runs in a subprocess on the same GPU while this jax process holds its
# memory pool: cap jax's pool (default 75% of the GPU) so torch has room.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.6}"
# torch on the GPU runs with its default threads (--threads 0); the jax side uses the GPU.
COMMON=(--steps "$STEPS" --rounds "$ROUNDS" --threads 0 --compile-timeout "$COMPILE_TIMEOUT"
        --out "$OUTDIR" "${REF_ARGS[@]}")
RUN_ALL=("$PY" benchmarks/run.py --cases "$CASES" "${COMMON[@]}" "${EXTRA[@]}")
RUN_BF16=("$PY" benchmarks/run.py --cases dcgan64_b256,dcgan64_b64 --dtype bfloat16 --no-compile
          "${COMMON[@]}" "${EXTRA[@]}")
# Many steps per compiled call (train.steps_per_call): solo, sweep and DCGAN-64 with 16.
RUN_K=("$PY" benchmarks/run.py --cases mnist_mmd_b100,sweep8,dcgan64_b256 --no-torch
       --set train.steps_per_call=16 --tag k16 "${COMMON[@]}" "${EXTRA[@]}")
RUN_VARIANTS=("$PY" benchmarks/torch_variants.py --steps "$STEPS"
              ${TORCH_REF_FOUND:+--torch-ref "$TORCH_REF_FOUND"})

if [[ $DRY == 1 ]]; then
  echo "plan (results to $OUTDIR):"
  echo "  ${RUN_ALL[*]}"
  [[ " ${EXTRA[*]} " == *" --no-torch "* ]] || echo "  ${RUN_VARIANTS[*]} > $OUTDIR/<date>-torch-variants.json"
  echo "  ${RUN_BF16[*]}"
  echo "  ${RUN_K[*]}"
  [[ $TESTS == 1 ]] && echo "  timeout 90 $PY -m pytest -q tests/test_kernels.py tests/test_layers.py tests/test_bf16.py tests/test_steps.py (GPU, informative)"
  "${RUN_ALL[@]}" --dry-run
  "${RUN_BF16[@]}" --dry-run
  "${RUN_K[@]}" --dry-run
  exit 0
fi

BACKEND="$("$PY" -c 'import jax; print(jax.default_backend())')"
if [[ "$BACKEND" != "gpu" && "$BACKEND" != "cuda" && $ALLOW_CPU == 0 ]]; then
  echo "jax's backend is '$BACKEND', not a GPU: refusing to record CPU numbers as GPU results (--allow-cpu to run anyway)" >&2
  exit 2
fi

mkdir -p "$OUTDIR"
STAMP="$(date -u +%Y-%m-%d)"
# Each stage runs even if an earlier one failed (its error is in the log); the exit
# status is that of the first failure.
STATUS=0
stage() {
  echo "== stage: $*"
  "$@" || { rc=$?; echo "== stage failed (exit $rc): $1 ${2:-}"; [[ $STATUS != 0 ]] || STATUS=$rc; }
}
{
  echo "== $(date -u +%FT%TZ) gpu.sh on backend $BACKEND"
  command -v nvidia-smi > /dev/null && nvidia-smi -L || true
  "$PY" -c 'import jax, flax, optax; print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__, jax.devices())'
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' || true
  export PYTHONUNBUFFERED=1
  stage "${RUN_ALL[@]}"
  if [[ " ${EXTRA[*]} " == *" --no-torch "* ]]; then
    echo "== torch_variants.py skipped (--no-torch)"
  elif [[ -n "$TORCH_REF_FOUND" ]]; then
    variants="$OUTDIR/$STAMP-torch-variants.json"
    n=1
    while [[ -e "$variants" ]]; do n=$((n + 1)); variants="$OUTDIR/$STAMP-torch-variants-$n.json"; done
    stage bash -c '"$@" > "'"$variants"'"' _ "${RUN_VARIANTS[@]}"
  fi
  stage "${RUN_BF16[@]}"
  stage "${RUN_K[@]}"
  if [[ $TESTS == 1 ]]; then  # informative: the suite's float64-reference tests on the GPU
    # Not a stage: its 90 s cap may stop it part-way (it does on a CPU), which says
    # nothing about the measurements, so it does not set the exit status.
    echo "== informative: tests/test_{kernels,layers,bf16,steps}.py, capped at 90 s"
    timeout 90 "$PY" -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_layers.py \
      tests/test_bf16.py tests/test_steps.py || echo "== tests ended with exit $? (124: the 90 s cap)"
  fi
  echo "== $(date -u +%FT%TZ) gpu.sh done (status $STATUS)"
  exit "$STATUS"
} 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
