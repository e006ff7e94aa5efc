#!/usr/bin/env bash
# The full-scale experiments (docs/results.md), time-boxed, on a machine with one GPU.
#
#   bash experiments/gpu.sh --prepare          # here, once: stage what the GPU machine lacks
#   bash experiments/gpu.sh --dry-run          # validate every job, print the plan
#   bash experiments/gpu.sh --smoke --allow-cpu  # one step per job, end to end, on a CPU
#   # device tool: run(command="bash experiments/gpu.sh", carry=[".carry"], timeout_s=600)
#
# What it runs, in this order, within --budget-s seconds of wall time (default 480):
#   1. seed000 at full scale: eta {0,5,10,15} x 3 seeds in one program per
#      (protocol, feature_dim), 30 epochs, feature_dim 20 first (both protocols), then 10,
#      then 30; --mode=eval on every member;
#   2. stacked_mnist: DCGAN, MMD-DCGAN and PacDCGAN2, 100,000 steps each, 3 seeds;
#   3. seed001 (AC-GAN, VT-GAN; MNIST, Fashion-MNIST), seed003 (DCGAN 5x5, WGAN,
#      WGAN-GP at 64x64) and seed002 (the maxout GAN and its tricks), 3 seeds each;
#   4. toy2d at full scale: PacGAN's 400 epochs (400,000 steps) for each of the 16 rows x
#      10 seeds. This does not fit in one short device call: it is here so that a longer
#      GPU session runs it with the same command.
# Each experiment runs under `timeout` with what is left of the budget; a job cut short
# keeps its last per-epoch checkpoint, and results.json holds every job that finished.
# Results: $OUT if set (the device tool's output folder), else results/: for each
# experiment <name>_full/results.json and its runs' metrics, eval and sample PNGs
# (checkpoints stay behind: too large to bring back), then the report's markdown, and
# the log gpu_sh.log. Bring them here and run
#   python -m jaxgan.experiments report results/seed000_full --doc=docs/results.md
#
# The GPU image lacks ml_collections and tensorboardX and has no network: --prepare
# downloads their wheels into .carry/wheels/ (benchmarks/gpu_packages.sh) and copies
# MNIST and Fashion-MNIST ($JAXGAN_DATA_DIR, default ../shared/data) into .carry/.
# The scoring classifiers travel with the code: jaxgan
# ships SHA-256-pinned ones for both datasets (jaxgan/metrics/classifiers/), so the
# GPU's FIDs are computed in the same feature space as the CPU's.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PYTHON:-python3}"
BUDGET=480
MODE=run
ALLOW_CPU=0
EXPERIMENTS=(seed000 stacked_mnist seed001 seed003 seed002 toy2d)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prepare) MODE=prepare ;;
    --dry-run) MODE=dry ;;
    --smoke) MODE=smoke ;;
    --allow-cpu) ALLOW_CPU=1 ;;
    --budget-s) BUDGET="$2"; shift ;;
    --experiments) IFS=, read -r -a EXPERIMENTS <<< "$2"; shift ;;
    *) echo "experiments/gpu.sh: unknown option $1 (see the header of this file)" >&2; exit 2 ;;
  esac
  shift
done

DATASETS=(mnist fashion_mnist)
source "$REPO/benchmarks/gpu_packages.sh"
if [[ $MODE == prepare ]]; then
  DATA_SRC="${JAXGAN_DATA_DIR:-$REPO/../shared/data}"
  for d in "${DATASETS[@]}"; do
    [[ -d "$DATA_SRC/$d" ]] || { echo "no $d at $DATA_SRC/$d: set JAXGAN_DATA_DIR" >&2; exit 2; }
  done
  mkdir -p .carry/data
  gpu_packages_download
  for d in "${DATASETS[@]}"; do
    rm -rf ".carry/data/$d"
    cp -r "$DATA_SRC/$d" .carry/data/
  done
  # Classifiers staged here by an earlier version of this script would be used instead of
  # the pinned ones (JAXGAN_CLASSIFIER_DIR); they go.
  rm -rf .carry/classifiers
  du -sh .carry
  exit 0
fi

# On the GPU machine: the carried wheels and data.
gpu_packages_install experiments/gpu.sh || exit 2
[[ -d .carry/data/mnist ]] && export JAXGAN_DATA_DIR="${JAXGAN_DATA_DIR:-$REPO/.carry/data}"
export JAXGAN_DATA_DIR="${JAXGAN_DATA_DIR:-$REPO/../shared/data}"

OUTDIR="${OUT:-$REPO/results}"
RUNS="$REPO/results"          # training folders (with checkpoints) stay here
SUFFIX=full
FLAGS=()
# A smoke run's folders are scratch: they must never mix with real results.
[[ $MODE == smoke ]] && { SUFFIX=smoke; FLAGS=(--smoke); RUNS="$(mktemp -d)"; OUTDIR="${OUT:-$RUNS/out}"; }
if [[ $MODE == dry ]]; then
  for exp in "${EXPERIMENTS[@]}"; do
    "$PY" -m jaxgan.experiments run "$exp" --scale=full --out="$RUNS/${exp}_full" --dry-run
  done
  echo "budget ${BUDGET}s; results to $OUTDIR; data $JAXGAN_DATA_DIR; classifiers ${JAXGAN_CLASSIFIER_DIR:-the pinned ones jaxgan ships}"
  exit 0
fi

BACKEND="$("$PY" -c 'import jax; print(jax.default_backend())')"
if [[ "$BACKEND" != "gpu" && "$BACKEND" != "cuda" && $ALLOW_CPU == 0 ]]; then
  echo "jax's backend is '$BACKEND', not a GPU: refusing to record CPU runs as full-scale GPU results (--allow-cpu to run anyway)" >&2
  exit 2
fi

mkdir -p "$OUTDIR"
LOG="$OUTDIR/gpu_sh.log"
START=$(date +%s)
STATUS=0
{
  echo "== $(date -u +%FT%TZ) experiments/gpu.sh ($MODE) on backend $BACKEND, budget ${BUDGET}s"
  command -v nvidia-smi > /dev/null && nvidia-smi -L || true
  export PYTHONUNBUFFERED=1
  for exp in "${EXPERIMENTS[@]}"; do
    left=$(( BUDGET - ($(date +%s) - START) ))
    if (( left < 30 )); then echo "== budget spent: $exp not started"; break; fi
    dir="$RUNS/${exp}_$SUFFIX"
    echo "== $exp (${left}s left) -> $dir"
    rc=0
    timeout --signal=INT --kill-after=20 "$left" \
      "$PY" -m jaxgan.experiments run "$exp" --scale=full --out="$dir" "${FLAGS[@]}" || rc=$?
    if (( rc == 124 || rc == 130 || rc == 137 )); then
      echo "== $exp stopped by the budget (exit $rc); results.json holds its finished jobs"
    elif (( rc != 0 )); then
      echo "== $exp failed (exit $rc)"; STATUS=$rc
    fi
    if [[ -f "$dir/results.json" && "$OUTDIR" != "$RUNS" ]]; then
      # Everything but the checkpoints comes back.
      (cd "$RUNS" && find "${exp}_$SUFFIX" -path '*/checkpoints' -prune -o -type f -print0 |
         tar --null -cf - -T -) | tar -xf - -C "$OUTDIR"
    fi
    if [[ $MODE == run && -f "$OUTDIR/${exp}_$SUFFIX/results.json" ]]; then
      "$PY" -m jaxgan.experiments report "$OUTDIR/${exp}_$SUFFIX" --figures "$OUTDIR/figures" \
        > "$OUTDIR/${exp}_$SUFFIX/report.md" || echo "== report of $exp failed"
    fi
  done
  echo "== $(date -u +%FT%TZ) done in $(( $(date +%s) - START ))s (status $STATUS)"
  exit "$STATUS"
} 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
