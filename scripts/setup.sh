#!/usr/bin/env bash
# Sets up excise on a fresh machine (`npm run setup`, or `bash scripts/setup.sh`). Safe to rerun.
#   1. LibTorch: an existing one if scripts/find-libtorch.cjs finds it (LIBTORCH, Torch_DIR,
#      CMAKE_PREFIX_PATH, EXCISE_PYTHON, ./.venv, python3's torch); otherwise a CPU PyTorch
#      (EXCISE_TORCH_VERSION, default 2.13.0+cpu: the version of prebuilds/) installed into ./.venv.
#   2. npm dependencies (npm ci --ignore-scripts).
#   3. npm run build: the native addon (cmake-js, CMakeLists.txt) and the TypeScript.
#   4. Checks that build/Release/excise.node loads, and that its torch libraries all come from one folder.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
ADDON=build/Release/excise.node
TORCH_SPEC="torch==${EXCISE_TORCH_VERSION:-2.13.0+cpu}"
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

log() { printf 'setup: %s\n' "$*"; }
die() {
  printf 'setup: ERROR: %s\n' "$1" >&2
  shift
  local line
  for line in "$@"; do printf 'setup:   %s\n' "$line" >&2; done
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
STEP_START=$SECONDS
STEP_TIMES=()
step_done() { STEP_TIMES+=("$1 $((SECONDS - STEP_START))s"); STEP_START=$SECONDS; }
# version_ge A B: A >= B (dotted versions)
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

POINT_AT_LIBTORCH=(
  "To use a LibTorch you already have instead, set one of:"
  "  LIBTORCH=/path/to/libtorch            (an unpacked libtorch: include/, lib/, share/cmake/Torch)"
  "  Torch_DIR=/path/to/share/cmake/Torch  (the folder holding TorchConfig.cmake)"
  "  CMAKE_PREFIX_PATH=\$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  "  EXCISE_PYTHON=/path/to/python          (a Python whose torch to use)"
  "and rerun: bash scripts/setup.sh"
)

# ---- tools ----------------------------------------------------------------------------------------
log "checking tools"
have node || die "node is not installed (excise needs Node.js >= 20): https://nodejs.org/ or apt-get install nodejs npm"
have npm || die "npm is not installed: apt-get install npm (or install Node.js from https://nodejs.org/)"
NODE_VERSION=$(node -p 'process.versions.node')
version_ge "$NODE_VERSION" 20 || die "node $NODE_VERSION is too old: excise needs Node.js >= 20"

have cmake || die "cmake is not installed (needs >= 3.18): apt-get install cmake (or pip install cmake)"
CMAKE_VERSION=$(cmake --version | sed -n '1s/^cmake version \([0-9][0-9.]*\).*/\1/p')
[ -n "$CMAKE_VERSION" ] || die "could not read the version of $(command -v cmake)"
version_ge "$CMAKE_VERSION" 3.18 ||
  die "cmake $CMAKE_VERSION is too old (needs >= 3.18): apt-get install cmake from a newer release, or pip install cmake"

CXX_BIN=""
for c in ${CXX:-} c++ g++ clang++; do
  if have "$c"; then CXX_BIN=$c; break; fi
done
[ -n "$CXX_BIN" ] || die "no C++ compiler found (needs C++17, and C++20 for LibTorch 2.14+: g++ 10+): apt-get install g++ (or set CXX)"
have make || have ninja || die "neither make nor ninja is installed: apt-get install make (or build-essential)"
have readelf || die "readelf is not installed (used to check the built addon): apt-get install binutils"
have ldd || die "ldd is not installed (used to check the built addon): apt-get install libc-bin"
log "node $NODE_VERSION, npm $(npm --version), cmake $CMAKE_VERSION, $CXX_BIN ($("$CXX_BIN" -dumpversion))"

# ---- 1. LibTorch ----------------------------------------------------------------------------------
find_libtorch() { node scripts/find-libtorch.cjs "$@"; }

if TORCH_ROOT=$(find_libtorch --root 2>/dev/null); then
  log "using the LibTorch found at $TORCH_ROOT (nothing to install)"
else
  if [ -n "${LIBTORCH:-}" ]; then
    # A LIBTORCH that is set but wrong is a mistake to report, not a reason to install another torch.
    die "$(find_libtorch --root 2>&1 || true)" "Fix or unset LIBTORCH and rerun."
  fi
  log "no LibTorch found; installing PyTorch's CPU build into $ROOT/.venv"
  have python3 || die "python3 is not installed (needed to install PyTorch): apt-get install python3 python3-venv" \
    "${POINT_AT_LIBTORCH[@]}"
  if [ ! -x .venv/bin/pip ]; then
    python3 -c 'import venv, ensurepip' 2>/dev/null ||
      die "python3 cannot create virtual environments: apt-get install python3-venv" "${POINT_AT_LIBTORCH[@]}"
    log "creating .venv (python3 -m venv .venv)"
    python3 -m venv .venv
  fi
  log "pip install $TORCH_SPEC (extra index $TORCH_CPU_INDEX)"
  if ! PIP_RETRIES=0 .venv/bin/pip install --retries 0 "$TORCH_SPEC" --extra-index-url "$TORCH_CPU_INDEX"; then
    log "$TORCH_SPEC could not be installed; trying the newest torch from $TORCH_CPU_INDEX"
    .venv/bin/pip install torch --index-url "$TORCH_CPU_INDEX" ||
      die "could not install PyTorch into .venv (no network, or no wheel for this platform)." \
        "${POINT_AT_LIBTORCH[@]}"
  fi
  TORCH_ROOT=$(find_libtorch --root) ||
    die "PyTorch was installed into .venv but its LibTorch is not usable (see the message above)." \
      "${POINT_AT_LIBTORCH[@]}"
  log "using the LibTorch in .venv: $TORCH_ROOT"
fi
TORCH_LIB=$(cd "$(find_libtorch --lib)" && pwd -P)
step_done libtorch

# ---- 2. npm dependencies --------------------------------------------------------------------------
# npm ci deletes node_modules and so forces a full native rebuild; on a rerun outside CI, skip it while
# node_modules (npm's own record, node_modules/.package-lock.json) is newer than package*.json.
if [ "${CI:-}" != true ] && [ -f package-lock.json ] && [ -f node_modules/.package-lock.json ] &&
  [ node_modules/.package-lock.json -nt package-lock.json ] && [ node_modules/.package-lock.json -nt package.json ]; then
  log "npm dependencies are up to date with package-lock.json (delete node_modules to reinstall)"
elif [ -f package-lock.json ]; then
  log "installing npm dependencies (npm ci --ignore-scripts)"
  npm ci --ignore-scripts
else
  log "no package-lock.json; installing npm dependencies (npm install --ignore-scripts)"
  npm install --ignore-scripts
fi
step_done npm

# ---- 3. build ---------------------------------------------------------------------------------------
# Build against exactly the LibTorch found above: CMake's own find_package(Torch) also searches the
# system prefixes (e.g. Debian's libtorch-dev in /usr), which the locator does not.
TORCH_CMAKE_DIR="$TORCH_ROOT/share/cmake/Torch"
# build/Release/excise.json records the LibTorch of the last build (CMakeLists.txt writes it).
if [ -f build/CMakeCache.txt ] && [ -f build/Release/excise.json ]; then
  cached=$(node -p "require('./build/Release/excise.json').torchRoot" 2>/dev/null || true)
  if [ -n "$cached" ] && [ "$(cd "$cached" 2>/dev/null && pwd -P)" != "$(cd "$TORCH_ROOT" && pwd -P)" ]; then
    log "build/ was configured with another LibTorch ($cached); reconfiguring"
    rm -f build/CMakeCache.txt
  fi
fi
log "building (npm run build: cmake-js native addon, then tsc) with Torch_DIR=$TORCH_CMAKE_DIR"
Torch_DIR="$TORCH_CMAKE_DIR" npm run build
[ -f "$ADDON" ] || die "the build finished but $ADDON is missing"
step_done build

# ---- 4. checks --------------------------------------------------------------------------------------
log "checking which torch libraries $ADDON loads"
RUNPATH=$(readelf -d "$ADDON" | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]$/\2/p')
log "RUNPATH: ${RUNPATH:-<none>}"
LDD_OUT=$(ldd "$ADDON") || die "ldd $ADDON failed"
if grep -q 'not found' <<<"$LDD_OUT"; then
  die "some libraries of $ADDON are not found:" "$(grep 'not found' <<<"$LDD_OUT")"
fi
RESOLVED=()
STRAY=0
for lib in libc10.so libtorch.so libtorch_cpu.so libc10_cuda.so libtorch_cuda.so; do
  path=$(awk -v l="$lib" '$1 == l && $2 == "=>" { print $3 }' <<<"$LDD_OUT")
  case $lib in
    *cuda*) [ -n "$path" ] || continue ;;
    *) [ -n "$path" ] || die "$ADDON does not load $lib (ldd shows no $lib)" ;;
  esac
  RESOLVED+=("$lib => $path")
  [ "$(cd "$(dirname "$path")" && pwd -P)" = "$TORCH_LIB" ] || STRAY=1
done
if [ "$STRAY" -ne 0 ]; then
  die "$ADDON does not take all its torch libraries from $TORCH_LIB; a second LibTorch (e.g. Debian's libtorch-dev, or one on LD_LIBRARY_PATH) is mixed in, which aborts at load or crashes:" \
    "${RESOLVED[@]}" \
    "Remove the other LibTorch from LD_LIBRARY_PATH (or uninstall it), or point LIBTORCH / Torch_DIR at one install;" \
    "then delete build/ and rerun: bash scripts/setup.sh"
fi
log "libc10, libtorch, libtorch_cpu all load from $TORCH_LIB"

log "loading $ADDON"
node -e "
  const info = require('./$ADDON').runtimeInfo();
  const cuda = info.cudaAvailable ? 'available (' + info.cudaDeviceCount + ' device(s))'
                                  : 'not available' + (info.cudaBuild ? ' (CUDA build, no device)' : ' (CPU build)');
  console.log('setup: torch ' + info.torchVersion + ', CUDA ' + cuda);
" || die "$ADDON was built but does not load (see the error above)"
step_done checks
log "done: $(IFS=,; echo "${STEP_TIMES[*]}" | sed "s/,/, /g")"
