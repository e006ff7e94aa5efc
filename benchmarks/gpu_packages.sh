# Sourced by benchmarks/gpu.sh and experiments/gpu.sh: the Python packages jaxgan needs
# that the GPU machine's image lacks (its package list: ml_collections and tensorboardX
# are missing; jax, flax, optax, orbax-checkpoint, chex, absl-py, numpy, pillow,
# matplotlib, tqdm, protobuf are there). Both are pure-Python wheels, so one download
# serves any Python version there. The machine has no network: they travel in .carry/.
#
#   gpu_packages_download    here, with network: the wheels into .carry/wheels/
#   gpu_packages_install S   there: installs them to /tmp/site if a module is missing and
#                            puts it on PYTHONPATH; returns 1 with one line naming script
#                            S's --prepare if it cannot

GPU_PACKAGES=(ml_collections tensorboardX)   # pip names; the import names are the same

# The carried wheel of a package, if any (wheel names may be lower-cased: tensorboardx-...).
_gpu_packages_wheel() {
  find .carry/wheels -maxdepth 1 -iname "$1-*.whl" 2>/dev/null | sort | tail -n 1
}

gpu_packages_download() {
  mkdir -p .carry/wheels
  local pkg
  for pkg in "${GPU_PACKAGES[@]}"; do
    [[ -n "$(_gpu_packages_wheel "$pkg")" ]] ||
      "$PY" -m pip download -q --no-deps --only-binary=:all: -d .carry/wheels "$pkg"
  done
  grep -qx '/.carry/' .git/info/exclude 2>/dev/null || echo '/.carry/' >> .git/info/exclude
}

gpu_packages_install() {
  local pkg missing=()
  for pkg in "${GPU_PACKAGES[@]}"; do
    "$PY" -c "import $pkg" 2>/dev/null || missing+=("$pkg")
  done
  (( ${#missing[@]} == 0 )) && return 0
  local wheels=()
  for pkg in "${missing[@]}"; do
    local w
    w="$(_gpu_packages_wheel "$pkg")"
    if [[ -z "$w" ]]; then
      echo "$pkg is not installed and .carry/wheels/ has no wheel for it: run 'bash ${1:-benchmarks/gpu.sh} --prepare' here first and carry .carry" >&2
      return 1
    fi
    wheels+=("$w")
  done
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/site "${wheels[@]}"
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
}
