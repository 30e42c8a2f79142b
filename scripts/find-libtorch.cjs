#!/usr/bin/env node
// Locates a prebuilt LibTorch for the native build, and describes one (version, CUDA, C++ ABI and
// standard) without loading it. Search order (CMakeLists.txt asks this script, so both builds agree):
//   1. LIBTORCH            an unpacked official libtorch (the folder holding include/ and lib/)
//   2. Torch_DIR           the folder holding TorchConfig.cmake
//   3. CMAKE_PREFIX_PATH   any entry holding Torch/TorchConfig.cmake
//   4. Python's torch      EXCISE_PYTHON, the project's .venv, the per-user LibTorch that
//                          `excise setup` installs (~/.cache/excise/torch-cuda, then torch-cpu),
//                          then python3 on PATH (pip's torch wheel ships a complete LibTorch)
// Usage: node scripts/find-libtorch.cjs [--root|--include|--lib|--libs|--cflags|--std|--version|--rpath|--json|--cmake]
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const projectRoot = path.resolve(__dirname, '..');

/** The per-user folder `excise setup` installs PyTorch into (one venv per flavour). */
function userCacheDir() {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'excise');
}

function isTorchRoot(dir) {
  return !!dir && fs.existsSync(path.join(dir, 'include', 'ATen', 'ATen.h')) &&
    fs.existsSync(path.join(dir, 'share', 'cmake', 'Torch', 'TorchConfig.cmake'));
}

// <root>/share/cmake/Torch -> <root>
const rootFromTorchDir = (torchDir) => path.resolve(torchDir, '..', '..', '..');

// Where a Python's torch package is, without importing it (importing torch takes seconds).
function fromPython(python) {
  try {
    const out = execFileSync(python, ['-c',
      'import importlib.util as u; s = u.find_spec("torch"); print(s.submodule_search_locations[0] if s else "")'], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60000,
    }).trim().split('\n').pop();
    return out || null;
  } catch {
    return null;
  }
}

function pythonCandidates() {
  const env = process.env;
  const cache = userCacheDir();
  return [
    env.EXCISE_PYTHON,
    path.join(projectRoot, '.venv', 'bin', 'python'),
    path.join(cache, 'torch-cuda', 'bin', 'python'),
    path.join(cache, 'torch-cpu', 'bin', 'python'),
    'python3',
  ].filter(Boolean);
}

function noneFoundMessage(tried) {
  return 'No LibTorch found (tried: ' + tried.join(', ') + '). Run `npx excise setup` (installs PyTorch\'s CPU ' +
    'build into a per-user cache; --cuda for CUDA), or set LIBTORCH to an unpacked libtorch, or EXCISE_PYTHON to ' +
    'a Python with torch, or Torch_DIR / CMAKE_PREFIX_PATH to a PyTorch\'s share/cmake.';
}

/** { root, via } of the LibTorch to use; throws with what was tried. */
function locate() {
  const tried = [];
  const env = process.env;
  if (env.LIBTORCH) {
    if (isTorchRoot(env.LIBTORCH)) return { root: path.resolve(env.LIBTORCH), via: 'LIBTORCH' };
    throw new Error(`LIBTORCH=${env.LIBTORCH} is not an unpacked libtorch (no include/ATen/ATen.h and share/cmake/Torch)`);
  }
  if (env.Torch_DIR) {
    const root = rootFromTorchDir(env.Torch_DIR);
    if (isTorchRoot(root)) return { root, via: 'Torch_DIR' };
    tried.push(`Torch_DIR=${env.Torch_DIR}`);
  }
  for (const prefix of (env.CMAKE_PREFIX_PATH || '').split(path.delimiter).filter(Boolean)) {
    const candidates = [path.join(prefix, 'Torch'), path.join(prefix, 'share', 'cmake', 'Torch')];
    for (const c of candidates) {
      if (fs.existsSync(path.join(c, 'TorchConfig.cmake')) && isTorchRoot(rootFromTorchDir(c))) {
        return { root: rootFromTorchDir(c), via: 'CMAKE_PREFIX_PATH' };
      }
    }
    tried.push(`CMAKE_PREFIX_PATH entry ${prefix}`);
  }
  for (const py of pythonCandidates()) {
    if (py.includes(path.sep) && !fs.existsSync(py)) continue;
    const root = fromPython(py);
    if (root && isTorchRoot(root)) return { root, via: `python (${py})` };
    tried.push(`${py} (no torch)`);
  }
  throw new Error(noneFoundMessage(tried));
}

function readIf(file) {
  try { return fs.readFileSync(file, 'utf8'); } catch { return null; }
}

/** "2.13.0+cpu" (wheel: torch/version.py; libtorch zip: build-version; else the CMake package's "2.13.0"). */
function torchVersion(root) {
  const py = readIf(path.join(root, 'version.py'));
  const m = py && /^__version__\s*=\s*['"]([^'"]+)['"]/m.exec(py);
  if (m) return m[1];
  const bv = readIf(path.join(root, 'build-version'));
  if (bv && bv.trim()) return bv.trim();
  const cfg = readIf(path.join(root, 'share', 'cmake', 'Torch', 'TorchConfigVersion.cmake'));
  const c = cfg && /set\(PACKAGE_VERSION "([^"]+)"\)/.exec(cfg);
  return c ? c[1] : 'unknown';
}

/** "2.13.0+cpu" -> "2.13.0" (what the headers' TORCH_VERSION and runtimeInfo() report). */
const baseVersion = (v) => v.split('+')[0];

function describe(root) {
  const lib = path.join(root, 'lib');
  const has = (name) => fs.existsSync(path.join(lib, `lib${name}.so`));
  const libs = ['c10', 'torch_cpu', 'torch'];
  if (has('c10_cuda')) libs.push('c10_cuda');
  if (has('torch_cuda')) libs.push('torch_cuda');
  // The C++ ABI flag the library was built with, as its CMake package records it (older LibTorch), or
  // as its symbols show (newer ones dropped the flag: always the C++11 ABI).
  let abi = '1';
  const cfg = fs.readFileSync(path.join(root, 'share', 'cmake', 'Torch', 'TorchConfig.cmake'), 'utf8');
  const m = /_GLIBCXX_USE_CXX11_ABI=(\d)/.exec(cfg);
  if (m) abi = m[1];
  else {
    try {
      const abiOut = execFileSync('nm', ['-DC', path.join(lib, 'libc10.so')], { encoding: 'utf8', maxBuffer: 1 << 28 });
      abi = abiOut.includes('std::__cxx11::') ? '1' : '0';
    } catch { /* keep the default */ }
  }
  // Newer LibTorch headers refuse anything older than C++20 (ATen.h: "#error C++20 or later ...").
  const aten = readIf(path.join(root, 'include', 'ATen', 'ATen.h')) || '';
  const std = /C\+\+20 or later/.test(aten) ? 'c++20' : 'c++17';
  const version = torchVersion(root);
  // A CUDA PyTorch wheel's libtorch_cuda has no run path: Python preloads the CUDA libraries of the
  // nvidia-* wheels beside it. The addon's run path (DT_RPATH, which also serves libtorch_cuda's own
  // dependencies) lists their lib folders.
  const runtimeDirs = [lib];
  const nvidia = path.join(root, '..', 'nvidia');
  if (has('torch_cuda') && fs.existsSync(nvidia)) {
    for (const pkg of fs.readdirSync(nvidia).sort()) {
      const dir = path.join(nvidia, pkg, 'lib');
      if (fs.existsSync(dir)) runtimeDirs.push(path.resolve(dir));
    }
  }
  return {
    root,
    version,
    include: [path.join(root, 'include'), path.join(root, 'include', 'torch', 'csrc', 'api', 'include')],
    lib,
    libs,
    cuda: has('torch_cuda'),
    cxxAbi: abi === '1' ? 'cxx11' : 'pre-cxx11',
    std,
    cflags: [`-D_GLIBCXX_USE_CXX11_ABI=${abi}`],
    runtimeDirs,
  };
}

if (require.main === module) {
  try {
    const found = locate();
    const d = describe(found.root);
    const arg = process.argv[2] || '--json';
    const out = {
      '--root': d.root,
      '--include': d.include.join(' '),
      '--lib': d.lib,
      '--libs': d.libs.map((l) => `-l${l}`).join(' '),
      '--cflags': d.cflags.join(' '),
      '--std': d.std,
      '--version': d.version,
      '--rpath': d.runtimeDirs.join(':'),
      '--json': JSON.stringify({ ...d, via: found.via }, null, 2),
      // For CMakeLists.txt: root;version;standard;ABI flag;cuda;ABI name;run-time folders (':'-joined)
      '--cmake': [d.root, d.version, d.std.replace('c++', ''), d.cflags[0], d.cuda ? 1 : 0, d.cxxAbi, d.runtimeDirs.join(':')].join(';'),
    }[arg];
    if (out === undefined) throw new Error(`unknown option ${arg}`);
    process.stdout.write(out + '\n');
  } catch (e) {
    process.stderr.write(`find-libtorch: ${e.message}\n`);
    process.exit(1);
  }
}

module.exports = { locate, describe, isTorchRoot, torchVersion, baseVersion, userCacheDir, noneFoundMessage };
