#!/usr/bin/env bash
# Builds the addon against another LibTorch with the CMake build of record (no CUDA toolkit needed,
# even for a CUDA LibTorch) in a scratch folder, and runs the golden tests on CPU against it; the
# project's own build/ is left alone.
#   bash scripts/test-libtorch.sh <LibTorch root | python with torch> [vitest files ...]
# e.g. bash scripts/test-libtorch.sh /tmp/venv-cu/bin/python
#      bash scripts/test-libtorch.sh ~/libtorch test/model.golden.test.ts
# Prints the LibTorch, the build time and the test summary. BUILD_DIR=... keeps the build folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -ge 1 ] || { echo "usage: bash scripts/test-libtorch.sh <libtorch root | python> [test files ...]" >&2; exit 2; }
TARGET=$1
shift
TESTS=("$@")
[ ${#TESTS[@]} -gt 0 ] || TESTS=(test/model.golden.test.ts test/model.variants.test.ts)

unset LIBTORCH Torch_DIR CMAKE_PREFIX_PATH EXCISE_PYTHON
if [ -x "$TARGET" ] && [ ! -d "$TARGET" ]; then
  export EXCISE_PYTHON=$TARGET
else
  export LIBTORCH=$TARGET
fi
node scripts/find-libtorch.cjs --json

NODE_INC=""
for d in "${npm_config_nodedir:-}" "$(npm config get nodedir 2>/dev/null || true)" "$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"; do
  if [ -n "$d" ] && [ -f "$d/include/node/node_api.h" ]; then NODE_INC=$d/include/node; break; fi
done
[ -n "$NODE_INC" ] || { echo "test-libtorch: no Node-API headers (include/node/node_api.h) found; set npm_config_nodedir" >&2; exit 1; }

BUILD_DIR=${BUILD_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/excise-libtorch.XXXXXX")}
START=$SECONDS
cmake -S . -B "$BUILD_DIR" -DNODE_API_INCLUDE_DIR="$NODE_INC" -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$BUILD_DIR/Release" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
ADDON=$BUILD_DIR/Release/excise.node
echo "test-libtorch: built $ADDON in $((SECONDS - START)) s"
cat "$BUILD_DIR/Release/excise.json"
readelf -d "$ADDON" | grep -E '\((NEEDED|RUNPATH|RPATH)\)' | grep -E 'torch|c10|PATH'
# Loads with no LD_LIBRARY_PATH: the run path finds LibTorch (and a CUDA wheel's nvidia libraries).
# runtimeInfo().cudaBuild must match the LibTorch, and without a GPU the device error must say which case it is.
EXCISE_ADDON=$ADDON LD_LIBRARY_PATH= node --import tsx -e "
  import { loadModel, runtimeInfo } from './lib/index.ts';
  const info = runtimeInfo();
  const { readFileSync } = await import('node:fs');
  const record = JSON.parse(readFileSync(process.env.EXCISE_ADDON.replace(/excise\.node\$/, 'excise.json'), 'utf8'));
  console.log('test-libtorch: runtimeInfo', JSON.stringify(info));
  if (info.cudaBuild !== record.cuda) throw new Error('runtimeInfo().cudaBuild is ' + info.cudaBuild + ' for a ' + (record.cuda ? 'CUDA' : 'CPU') + ' LibTorch');
  if (!info.cudaAvailable) {
    const err = await loadModel('test/fixtures/hf-golden/gpt2', { device: 'cuda' }).then(() => null, (e) => e);
    console.log('test-libtorch: device cuda:', err.code, err.message);
    if (!(info.cudaBuild ? /CUDA build.*no GPU is visible/ : /CPU-only build/).test(err.message)) throw new Error('wrong device error');
  }
"
EXCISE_ADDON=$ADDON LD_LIBRARY_PATH= npx vitest run "${TESTS[@]}"
