#!/usr/bin/env node
// Locates a prebuilt LibTorch for the native build. The same search order as CMakeLists.txt:
//   1. LIBTORCH            an unpacked official libtorch (the folder holding include/ and lib/)
//   2. Torch_DIR           the folder holding TorchConfig.cmake
//   3. CMAKE_PREFIX_PATH   any entry holding Torch/TorchConfig.cmake
//   4. Python's torch      EXCISE_PYTHON, then the project's .venv, then python3 on PATH
//                          (pip's torch wheel ships a complete LibTorch with headers and CMake package)
// Usage: node scripts/find-libtorch.cjs [--root|--include|--lib|--libs|--cflags|--json]
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const projectRoot = path.resolve(__dirname, '..');

function isTorchRoot(dir) {
  return !!dir && fs.existsSync(path.join(dir, 'include', 'ATen', 'ATen.h')) &&
    fs.existsSync(path.join(dir, 'share', 'cmake', 'Torch', 'TorchConfig.cmake'));
}

// <root>/share/cmake/Torch -> <root>
const rootFromTorchDir = (torchDir) => path.resolve(torchDir, '..', '..', '..');

function fromPython(python) {
  try {
    const out = execFileSync(python, ['-c', 'import torch, os; print(os.path.dirname(torch.__file__))'], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60000,
    }).trim().split('\n').pop();
    return out;
  } catch {
    return null;
  }
}

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
  const pythons = [env.EXCISE_PYTHON, path.join(projectRoot, '.venv', 'bin', 'python'), 'python3'].filter(Boolean);
  for (const py of pythons) {
    if (py.includes(path.sep) && !fs.existsSync(py)) continue;
    const root = fromPython(py);
    if (root && isTorchRoot(root)) return { root, via: `python (${py})` };
    tried.push(`python ${py}`);
  }
  throw new Error(
    'No LibTorch found (tried: ' + tried.join(', ') + '). Run `npm run setup` to install a CPU PyTorch into .venv, ' +
    'or set LIBTORCH to an unpacked libtorch, or Torch_DIR / CMAKE_PREFIX_PATH to a CUDA PyTorch\'s share/cmake.');
}

function describe(root) {
  const lib = path.join(root, 'lib');
  const has = (name) => fs.existsSync(path.join(lib, `lib${name}.so`));
  const libs = ['c10', 'torch_cpu', 'torch'];
  if (has('c10_cuda')) libs.push('c10_cuda');
  if (has('torch_cuda')) libs.push('torch_cuda');
  // The C++ ABI flag the library was built with, as its CMake package records it.
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
  return {
    root,
    include: [path.join(root, 'include'), path.join(root, 'include', 'torch', 'csrc', 'api', 'include')],
    lib,
    libs,
    cuda: has('torch_cuda'),
    cflags: [`-D_GLIBCXX_USE_CXX11_ABI=${abi}`],
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
      '--json': JSON.stringify({ ...d, via: found.via }, null, 2),
    }[arg];
    if (out === undefined) throw new Error(`unknown option ${arg}`);
    process.stdout.write(out + '\n');
  } catch (e) {
    process.stderr.write(`find-libtorch: ${e.message}\n`);
    process.exit(1);
  }
}

module.exports = { locate, describe };
