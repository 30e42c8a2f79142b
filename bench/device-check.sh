#!/usr/bin/env bash
# bench/device-check.sh: is excise ready for a GPU server? One prepared run for a machine with one NVIDIA GPU
# (H100/H200 class, 16 cores), meant to finish in under 8 minutes:
#   1. find a CUDA PyTorch (EXCISE_PYTHON, .venv, python3, or install the local torch CUDA wheel)
#   2. build the addon against it: cmake-js (README "Using a CUDA LibTorch"), node-gyp as fallback
#   3. GPU parity: HF golden fixtures on cuda in float32 and bfloat16, pruning, stats/eval/generate vs CPU;
#      a model split over devices (bench/device/split-parity.ts: cuda:0+cuda:0, cpu+cuda:0, 2 GPUs, 'auto')
#   4. benchmarks: ~1.1B random LLaMA in bf16 (evaluate, collect vs trunk, padded batches, forward,
#      generate) with tokens/s, TFLOP/s and MFU; SDPA backend choice and the stats pass cost in torch
#   5. the test suite (CPU tests with the CUDA build loaded; no test selects a device yet)
#   6. the figures, at the end.
#
# Usage, from the repository root on the GPU machine:   bash bench/device-check.sh
# Rehearsal on a CPU machine (no CUDA needed; reuses the addon built here, device cpu, tiny model,
# every step but the build; EXCISE_PYTHON: a python with torch + transformers for the references):
#   EXCISE_PYTHON=/path/to/python bash bench/device-check.sh --dry-run      (about 2.5 min on 2 cores)
#   (it may live anywhere: REPO defaults to the current directory; logs go to $OUT or .device/out)
# The device machine has no network: node_modules must be there already or carried. On the dev machine:
#   bash device-check.sh --pack     # writes .device/: this script, node_modules.tgz (~26 MB) and the
#                                   # addon built here (fallback); .device/ is git-ignored
# then, on the GPU machine with .device/ carried along (about 9 minutes allowed): bash .device/device-check.sh
# Order: build, GPU parity, benchmarks, SDPA/stats micro-benchmark, then the CPU test suite in the time
# left before 460 s. REUSE_BUILD=1 keeps a build/Release/excise.node that loads (a rerun on a warm machine).
# Knobs: EXCISE_PYTHON (a python whose torch is a CUDA build), PEAK_TFLOPS (dense bf16 peak; guessed
# from the GPU name), SKIP_TESTS=1, SIZE=1b|tiny, SEQ, BATCH, NBATCH.
set -uo pipefail
set -x
REPO=${REPO:-$(pwd)}
cd "$REPO" || exit 1
[ -f package.json ] && grep -q '"name": "excise"' package.json || { echo "run from the excise repository root (REPO=...)"; exit 1; }
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

if [ "${1:-}" = "--dry-run" ]; then
  export DRY_RUN_CPU=1 REUSE_BUILD=${REUSE_BUILD:-1} SKIP_TESTS=${SKIP_TESTS:-1}
  shift
fi
if [ "${1:-}" = "--pack" ]; then  # CPU machine: a compact node_modules to take along (the GPU machine has no network)
  mkdir -p .device
  cp "${BASH_SOURCE[0]}" .device/device-check.sh 2>/dev/null || true
  tar -czf .device/node_modules.tgz --exclude='node_modules/three' --exclude='node_modules/@stdlib' \
    --exclude='node_modules/tokenizers/tokenizers.[!l]*' --exclude='node_modules/tokenizers/tokenizers.linux-arm*' \
    --exclude='node_modules/tokenizers/tokenizers.linux-x64-musl*' --exclude='node_modules/.cache' node_modules
  [ -f build/Release/excise.node ] && cp build/Release/excise.node .device/excise.node
  ls -la .device; exit 0
fi

OUTDIR=${OUT:-$REPO/.device/out}
mkdir -p "$OUTDIR" .device/gpu
LOG=$OUTDIR/device-check.log
exec > >(tee "$LOG") 2>&1
T0=$SECONDS
SUMMARY=()
note() { SUMMARY+=("$(printf '%4ds  %s' $((SECONDS - T0)) "$*")"); echo "### $*"; }
NPROC=$(nproc)

# ---- 0. the machine -----------------------------------------------------------------------------------
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader || note "nvidia-smi failed (no GPU)"
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
case "$GPU" in
  *H100*PCIe*) PEAK=${PEAK_TFLOPS:-756} ;;
  *H100*|*H200*|*H800*|*GH200*) PEAK=${PEAK_TFLOPS:-989} ;;
  *A100*) PEAK=${PEAK_TFLOPS:-312} ;;
  *L40S*) PEAK=${PEAK_TFLOPS:-362} ;;
  *) PEAK=${PEAK_TFLOPS:-989} ;;
esac
note "GPU: ${GPU:-none}; dense bf16 peak assumed ${PEAK} TFLOP/s; $NPROC cores; node $(node -v); $(cmake --version | head -1)"

# ---- 1. a CUDA PyTorch ----------------------------------------------------------------------------------
# DRY_RUN_CPU=1 rehearses the whole script on a machine without a GPU (CUDA torch build, device cpu, tiny model).
# A rehearsal takes any torch: the CPU machine has no CUDA build of it.
if [ "${DRY_RUN_CPU:-0}" = 1 ]; then DEV=cpu; SIZE=${SIZE:-tiny}; NEED='True'; else DEV=cuda; NEED='torch.version.cuda and torch.cuda.is_available()'; fi
export SIZE
is_cuda_torch() { timeout 120 "$1" -c "import sys, torch; sys.exit(0 if $NEED else 1)" 2>/dev/null; }
PY=""
for c in "${EXCISE_PYTHON:-}" "$REPO/.venv/bin/python" /tmp/venv-cuda/bin/python python3 python /opt/conda/bin/python; do
  [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && is_cuda_torch "$c" && { PY=$(command -v "$c"); break; }
done
if [ -z "$PY" ]; then
  FL=""; for d in /opt/pypi-more/files /opt/pypi/files /opt/wheels "$REPO/.device/wheels"; do [ -d "$d" ] && FL="$FL --find-links $d"; done
  WHEEL=$(ls /opt/pypi-more/files/torch-2*.whl /opt/pypi/files/torch-2*.whl /opt/wheels/torch-2*.whl "$REPO"/.device/wheels/torch-2*.whl 2>/dev/null | grep -v '+cpu' | sort -V | tail -1)
  if [ -n "$WHEEL" ]; then
    note "installing $WHEEL into /tmp/venv-cuda (no CUDA torch found)"
    python3 -m venv /tmp/venv-cuda
    # torch's own requirement cuda-bindings is a Python-only package that LibTorch does not need (and that
    # local wheel mirrors may lack): install torch without dependencies, then its other requirements.
    DEPS=$(python3 - "$WHEEL" <<'PY'
import sys, zipfile, re
z = zipfile.ZipFile(sys.argv[1])
meta = z.read(next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))).decode()
for line in meta.splitlines():
    if line.startswith('Requires-Dist:') and 'extra ==' not in line and 'cuda-bindings' not in line:
        print(line.split(':', 1)[1].split(';')[0].strip().replace(' ', ''))
PY
)
    # shellcheck disable=SC2086
    timeout 240 /tmp/venv-cuda/bin/pip install -q --no-index $FL $DEPS && timeout 120 /tmp/venv-cuda/bin/pip install -q --no-index --no-deps "$WHEEL"
    is_cuda_torch /tmp/venv-cuda/bin/python && PY=/tmp/venv-cuda/bin/python
  fi
fi
[ -n "$PY" ] || [ "${DRY_RUN_CPU:-0}" = 1 ] || { note "FATAL: no CUDA PyTorch (set EXCISE_PYTHON); nothing else can run"; printf '%s\n' "${SUMMARY[@]}"; exit 1; }
TORCH_ROOT=$("$PY" -c 'import torch, os; print(os.path.dirname(torch.__file__))')
TORCH_VER=$("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())')
note "CUDA torch: $PY ($TORCH_VER) at $TORCH_ROOT"
export EXCISE_PYTHON=$PY

# ---- 2. npm packages (no registry on the device machine: the carried tarball, else npm ci) ---------------
if [ ! -d node_modules/node-addon-api ]; then
  if [ -f .device/node_modules.tgz ]; then tar -xzf .device/node_modules.tgz && note "node_modules from .device/node_modules.tgz"
  else timeout 180 npm ci --ignore-scripts && note "node_modules from npm ci" || note "FATAL? npm ci failed (no registry?)"; fi
fi

# ---- 3. build ---------------------------------------------------------------------------------------------
# torch >= 2.14 headers refuse C++17 (ATen.h: "C++20 or later compatible compiler is required"); CMake < 3.26
# has no CUDA20 flags for nvcc. Patch this copy when the repository has not been fixed yet.
if grep -q 'set(CMAKE_CXX_STANDARD 17)' CMakeLists.txt; then
  sed -i 's/set(CMAKE_CXX_STANDARD 17)/set(CMAKE_CXX_STANDARD 20)\nset(CMAKE_CUDA_STANDARD 17)/' CMakeLists.txt
  sed -i "s/'-std=c++17',/'-std=c++20',/" binding.gyp
  note "patched CMakeLists.txt / binding.gyp to C++20 (repository still says C++17)"
fi
BUILT=""
if [ "${REUSE_BUILD:-0}" = 1 ] && node -e "require('./build/Release/excise.node')" 2>/dev/null; then BUILT=reused; note "build: reusing build/Release/excise.node"
elif [ "${DRY_RUN_CPU:-0}" = 1 ]; then note "FATAL: the rehearsal reuses this checkout's addon: npm run build:native first"; printf '%s\n' "${SUMMARY[@]}"; exit 1
else rm -rf build; fi
export CMAKE_PREFIX_PATH; CMAKE_PREFIX_PATH=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
# Torch's CMake package (Caffe2/public/cuda.cmake) needs a CUDA toolkit: nvcc, headers, libcudart.so, libnvrtc.so.
# FindCUDA reads CUDA_PATH (not CUDA_HOME). Use a real toolkit, else the pip nvcc wheel in torch's env.
CMJS_EXTRA=()
NVW=$(dirname "$TORCH_ROOT")/nvidia/cu13; [ -d "$NVW" ] || NVW=$(ls -d "$(dirname "$TORCH_ROOT")"/nvidia/cu1* 2>/dev/null | head -1)
for c in "${CUDA_PATH:-}" "${CUDA_HOME:-}" /usr/local/cuda; do
  if [ -n "$c" ] && [ -x "$c/bin/nvcc" ] && [ -f "$c/include/cuda_runtime_api.h" ]; then export CUDA_PATH=$c; break; fi
done
if [ -z "${CUDA_PATH:-}" ] && [ -x "$NVW/bin/nvcc" ]; then
  export CUDA_PATH=$NVW CUDAFLAGS="-L$NVW/lib"
  CMJS_EXTRA+=("--CDCUDA_CUDART_LIBRARY=$NVW/lib/libcudart.so.13" "--CDCUDA_cudart_LIBRARY=$NVW/lib/libcudart.so.13" "--CDCUDA_CUDART=$NVW/lib/libcudart.so.13")
fi
if [ -n "${CUDA_PATH:-}" ] && ! ls "$CUDA_PATH"/lib*/libnvrtc.so >/dev/null 2>&1 && [ -f "$NVW/lib/libnvrtc.so.13" ]; then
  CMJS_EXTRA+=("--CDCUDA_nvrtc_LIBRARY=$NVW/lib/libnvrtc.so.13")
fi
t=$SECONDS
if [ -n "$BUILT" ]; then :
elif timeout 240 npx cmake-js rebuild --parallel "$NPROC" "${CMJS_EXTRA[@]}" > "$OUTDIR/build-cmake-js.log" 2>&1; then
  BUILT="cmake-js"; note "build: cmake-js OK in $((SECONDS - t)) s (CUDA_PATH=${CUDA_PATH:-unset})"
else
  note "build: cmake-js FAILED in $((SECONDS - t)) s (CUDA_PATH=${CUDA_PATH:-unset}): $(grep -m3 -E 'CMake Error|error:|Could NOT' "$OUTDIR/build-cmake-js.log" | tr '\n' ' ' | cut -c1-300)"
  t=$SECONDS
  if LIBTORCH=$TORCH_ROOT timeout 240 npx node-gyp rebuild -j "$NPROC" > "$OUTDIR/build-node-gyp.log" 2>&1; then
    BUILT="node-gyp"; note "build: node-gyp OK in $((SECONDS - t)) s (no CUDA toolkit needed)"
  else
    note "build: node-gyp FAILED: $(grep -m3 -E 'error' "$OUTDIR/build-node-gyp.log" | tr '\n' ' ' | cut -c1-300)"
    if [ -f .device/excise.node ]; then  # carried addon built elsewhere against the same torch version
      mkdir -p build/Release && cp .device/excise.node build/Release/ && export LD_LIBRARY_PATH=$TORCH_ROOT/lib:${LD_LIBRARY_PATH:-}
      BUILT="carried"; note "build: using the carried .device/excise.node with LD_LIBRARY_PATH=$TORCH_ROOT/lib"
    fi
  fi
fi
[ -n "$BUILT" ] || { note "FATAL: no addon"; printf '%s\n' "${SUMMARY[@]}"; exit 1; }
readelf -d build/Release/excise.node | grep -E 'NEEDED|RUNPATH|RPATH'
ldd build/Release/excise.node | grep -E 'not found|torch|cudart' || true
note "runtimeInfo: $(node -e "console.log(JSON.stringify(require('./build/Release/excise.node').runtimeInfo()))" 2>&1 | tail -1)"

# ---- 5. GPU parity and benchmarks ------------------------------------------------------------------------
# The helper programs live in bench/device/ (kept in step with the code).
t=$SECONDS
DEVICE=$DEV timeout 150 npx tsx bench/device/gpu-parity.ts > "$OUTDIR/parity.log" 2>&1; rc=$?
note "parity (rc $rc, $((SECONDS - t)) s): $(grep 'PARITY SUMMARY' "$OUTDIR/parity.log" || tail -2 "$OUTDIR/parity.log" | tr '\n' ' ')"
grep -E 'PARITY FAIL|INFO' "$OUTDIR/parity.log" | head -30
# A model split over devices (loadModel's devices / 'auto'): ['cuda:0','cuda:0'], ['cpu','cuda:0'], ['cuda:0','cpu'],
# and with 2+ GPUs ['cuda:0','cuda:1'] and 'auto', against the CPU model (README "Models larger than one device").
t=$SECONDS
DEVICE=$DEV timeout 120 npx tsx bench/device/split-parity.ts > "$OUTDIR/split.log" 2>&1; rc=$?
note "split over devices (rc $rc, $((SECONDS - t)) s): $(grep 'SPLIT SUMMARY' "$OUTDIR/split.log" || tail -2 "$OUTDIR/split.log" | tr '\n' ' ')"
grep -E 'SPLIT FAIL|INFO' "$OUTDIR/split.log" | head -30

nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits -lms 250 > "$OUTDIR/smi.csv" 2>/dev/null &
SMI=$!
t=$SECONDS
DEVICE=$DEV DTYPE=bfloat16 PEAK_TFLOPS=$PEAK timeout 200 npx tsx bench/device/gpu-bench.ts > "$OUTDIR/bench.log" 2>&1; rc=$?
kill "$SMI" 2>/dev/null
note "bench (rc $rc, $((SECONDS - t)) s; peak GPU memory used $(sort -t, -k1 -n "$OUTDIR/smi.csv" | tail -1 | cut -d, -f1) MiB)"
# excise collect against HF transformers' forward (plain and with float64 hooks) and F.linear's limit,
# side by side at the issue's shapes (bench/side-by-side.ts runs bench/hf-collect.py).
t=$SECONDS
if [ "${DRY_RUN_CPU:-0}" = 1 ]; then SXS=(--shapes gpt2 --dtypes float32 --layers 1 --batch 2 --seq 32 --reps 1)
else SXS=(--shapes gpt2,llama,tinyllama --dtypes float32,bfloat16 --reps 3); fi
timeout 150 npx tsx bench/side-by-side.ts --device "$DEV" --python "$PY" "${SXS[@]}" > "$OUTDIR/side-by-side.log" 2>&1; rc=$?
note "side-by-side collect vs HF (rc $rc, $((SECONDS - t)) s)"
t=$SECONDS
DEVICE=$DEV timeout 60 "$PY" bench/device/sdpa_stats.py > "$OUTDIR/sdpa_stats.log" 2>&1; rc=$?
note "sdpa/stats micro (rc $rc, $((SECONDS - t)) s)"

# ---- 6. tests (the CPU suite, with the CUDA build loaded and a GPU present) in the time left ------------------
LEFT=$((460 - (SECONDS - T0)))
if [ "${SKIP_TESTS:-0}" != 1 ] && [ "$LEFT" -gt 45 ]; then
  t=$SECONDS
  timeout "$LEFT" npx vitest run --exclude 'test/slow/**' > "$OUTDIR/vitest.log" 2>&1; rc=$?
  note "tests (without test/slow, rc $rc, $((SECONDS - t)) s, budget $LEFT s): $(grep -E '^ +Tests ' "$OUTDIR/vitest.log" | tail -1 | sed 's/  */ /g')"
  grep -E '✗|×|FAIL' "$OUTDIR/vitest.log" | head -20
else
  note "tests skipped (SKIP_TESTS or only $LEFT s left)"
fi

# ---- 7. figures ------------------------------------------------------------------------------------------
set +x
echo; echo "================ device-check summary ($((SECONDS - T0)) s) ================"
printf '%s\n' "${SUMMARY[@]}"
echo "---- parity (all lines in $OUTDIR/parity.log)"; grep -E '^PARITY (FAIL|SUMMARY|ok   [a-z0-9_]+ (f32 logits|f32 pruned|bf16|f32 stats)|ok   cuda)|^INFO' "$OUTDIR/parity.log"
echo "---- split over devices (all lines in $OUTDIR/split.log)"; grep -E '^SPLIT (FAIL|SUMMARY)|^INFO' "$OUTDIR/split.log"
echo "---- benchmarks"; grep -E '^BENCH' "$OUTDIR/bench.log" || tail -5 "$OUTDIR/bench.log"
echo "---- side by side (collect vs HF forward, F.linear limit)"; grep -v '^\s*$' "$OUTDIR/side-by-side.log" | tail -12
echo "---- SDPA / statistics"; cat "$OUTDIR/sdpa_stats.log" | grep -v -i warn | tail -8
echo "logs: $OUTDIR"
