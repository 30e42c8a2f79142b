#!/usr/bin/env bash
# Makes the prebuilt addon shipped in the package: prebuilds/linux-x64/node.napi.node (prebuildify
# layout), linked from the objects of the configured build/ (the project's pinned LibTorch, see
# scripts/setup.sh) with the run path $ORIGIN/../../build/torch-lib, stripped; and
# prebuilds/linux-x64/excise.json, the LibTorch it fits (version, C++ ABI). The install step
# (scripts/install.cjs) uses it only for that LibTorch version and ABI and for the native sources it
# was compiled from (scripts/native-sources.cjs: rerun this after any native change; CI checks), and points build/torch-lib at
# the located LibTorch's lib folder.   Run after `npm run build:native`: bash scripts/prebuild.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f build/CMakeCache.txt ] && [ -f build/Release/excise.json ] || { echo "prebuild: run npm run build:native first" >&2; exit 1; }
OUT=prebuilds/$(node -p 'process.platform + "-" + process.arch')
cmake -DEXCISE_PREBUILT=ON build >/dev/null
cmake --build build --target excise_prebuilt --parallel 2
cmake -DEXCISE_PREBUILT=OFF build >/dev/null
mkdir -p "$OUT"
strip --strip-unneeded -o "$OUT/node.napi.node" build/prebuilt/node.napi.node
node -e "
  const r = require('./build/Release/excise.json');
  const rec = { builtWith: 'prebuilt', torchVersion: r.torchVersion, cuda: r.cuda, cxxAbi: r.cxxAbi, cxxStandard: r.cxxStandard,
                napiVersion: r.napiVersion, compiler: process.argv[1],
                nativeSources: require('./scripts/native-sources.cjs').nativeSourcesHash() };
  require('fs').writeFileSync('$OUT/excise.json', JSON.stringify(rec, null, 2) + '\n');
" "$(c++ --version | head -n1)"
readelf -d "$OUT/node.napi.node" | grep -E '\((NEEDED|RUNPATH)\)'
ls -l "$OUT"
