// The native addon of an installed excise: which one loads (a local build or the shipped prebuilt),
// whether it still matches the LibTorch it was made for, and how to make one (link the prebuilt, or
// compile with node-gyp). Used by the install script (scripts/install.cjs), `excise setup | build |
// doctor` (lib/cli/) and the loader (lib/native.ts). Plain CommonJS: it runs at `npm install`, before
// (and without) the TypeScript build.
//
// Files, relative to the package root:
//   build/Release/excise.node   a local build (cmake-js, node-gyp or `excise build`); wins when present
//   build/Release/excise.json   what it was built against (torch root, lib folder, version, CUDA, ABI)
//   prebuilds/linux-x64/node.napi.node  the shipped addon (prebuildify layout, node-gyp-build finds it),
//                               built against the pinned LibTorch; its run path is $ORIGIN/../../build/torch-lib
//   prebuilds/linux-x64/excise.json     what it was built against
//   build/torch-lib             a link to the located LibTorch's lib folder, made when the prebuilt is chosen
'use strict';
const { nativeSourcesHash } = require('./native-sources.cjs');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, spawnSync } = require('child_process');
const { locate, describe, torchVersion, baseVersion, isTorchRoot } = require('./find-libtorch.cjs');

const packageRoot = path.resolve(__dirname, '..');
const paths = {
  built: path.join(packageRoot, 'build', 'Release', 'excise.node'),
  builtRecord: path.join(packageRoot, 'build', 'Release', 'excise.json'),
  prebuilt: path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'node.napi.node'),
  prebuiltRecord: path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'excise.json'),
  torchLink: path.join(packageRoot, 'build', 'torch-lib'),
  // Beside build/, not in it: `node-gyp rebuild` starts by deleting build/ (with the open log in it).
  log: path.join(packageRoot, 'excise-build.log'),
};

/** Installed as a dependency (inside node_modules) or a clone of the repository: the fix commands differ. */
const installed = packageRoot.split(path.sep).includes('node_modules');
const commands = installed
  ? { setup: 'npx excise setup', build: 'npx excise build' }
  : { setup: 'bash scripts/setup.sh', build: 'npm run build:native' };

function readJson(file) {
  try { return JSON.parse(fs.readFileSync(file, 'utf8')); } catch { return null; }
}

const realpath = (p) => { try { return fs.realpathSync(p); } catch { return path.resolve(p); } };

/** Version and CUDA of the LibTorch at root now, cheaply (no nm, no Python), or null if it is gone. */
function torchNow(root) {
  if (!isTorchRoot(root) || !fs.existsSync(path.join(root, 'lib', 'libtorch_cpu.so'))) return null;
  return { version: torchVersion(root), cuda: fs.existsSync(path.join(root, 'lib', 'libtorch_cuda.so')) };
}

/** Where a link points (even when the target is gone), or null when there is no link. */
function linkTarget(link) {
  try { return path.resolve(path.dirname(link), fs.readlinkSync(link)); } catch { return null; }
}

const flavour = (cuda) => (cuda ? 'CUDA' : 'CPU');

/**
 * The addon that would load and whether it fits the LibTorch it was made for. Cheap enough to run at
 * every load: reads two small files and stats a few paths.
 * Returns { file, kind: 'built' | 'prebuilt' | null, record, problem: string | null }.
 */
function checkAddon(env = process.env) {
  if (fs.existsSync(paths.built)) {
    const record = readJson(paths.builtRecord);
    return { file: paths.built, kind: 'built', record, problem: record ? recordProblem(record, env, 'built') : null };
  }
  const link = linkTarget(paths.torchLink);
  if (fs.existsSync(paths.prebuilt) && link) {
    const record = readJson(paths.prebuiltRecord);
    const root = path.dirname(link);
    const now = torchNow(root);
    let problem = null;
    if (!now) {
      problem = `the prebuilt addon was set up for the LibTorch at ${root}, which has moved or been removed; ` +
        `run \`${commands.build}\` to use the LibTorch found now (or \`${commands.setup}\` to install one)`;
    } else if (record && baseVersion(now.version) !== baseVersion(record.torchVersion)) {
      problem = `the prebuilt addon needs LibTorch ${baseVersion(record.torchVersion)}, but the LibTorch at ${root} is now ` +
        `${now.version}; run \`${commands.build}\``;
    } else {
      problem = envProblem(root, env);
    }
    return { file: paths.prebuilt, kind: 'prebuilt', record: record && { ...record, torchRoot: root, torchLib: path.join(root, 'lib'), torchVersion: now ? now.version : record.torchVersion }, problem };
  }
  return {
    file: null, kind: null, record: null,
    problem: installed
      ? `the native addon is not built: run \`${commands.setup}\` (installs a CPU LibTorch into a per-user cache and ` +
        `builds; \`--cuda\` for CUDA, \`--libtorch DIR\` or \`--python PATH\` to use one you have), or \`${commands.build}\` ` +
        'when LibTorch is already installed'
      : `the native addon is not built: run \`${commands.setup}\` (LibTorch, npm packages, native build), or ` +
        `\`${commands.build}\` when LibTorch is already installed`,
  };
}

function recordProblem(record, env, kind) {
  const now = torchNow(record.torchRoot);
  const was = `LibTorch ${record.torchVersion} (${flavour(record.cuda)}) at ${record.torchRoot}`;
  if (!now) {
    return `the addon was built against ${was}, which has moved or been removed; rebuild against the LibTorch ` +
      `found now: \`${commands.build}\``;
  }
  if (now.version !== record.torchVersion || now.cuda !== !!record.cuda) {
    return `the addon was built against ${was}, which is now ${now.version} (${flavour(now.cuda)}); rebuild: \`${commands.build}\``;
  }
  return envProblem(record.torchRoot, env);
}

// LIBTORCH or Torch_DIR set now to another LibTorch than the addon uses (checked without running the
// full locator, which may start Python).
function envProblem(root, env) {
  let want = null;
  if (env.LIBTORCH) want = { root: env.LIBTORCH, via: 'LIBTORCH' };
  else if (env.Torch_DIR) want = { root: path.resolve(env.Torch_DIR, '..', '..', '..'), via: 'Torch_DIR' };
  if (!want || realpath(want.root) === realpath(root)) return null;
  return `${want.via} points at the LibTorch at ${want.root}, but the addon uses the one at ${root}; rebuild: \`${commands.build}\``;
}

/** Whether the shipped prebuilt addon fits a described LibTorch (same version and C++ ABI, this platform). */
function prebuiltFits(desc) {
  const record = readJson(paths.prebuiltRecord);
  if (!record || !fs.existsSync(paths.prebuilt)) return { fits: false, why: `no prebuilt addon for ${process.platform}-${process.arch}` };
  if (baseVersion(record.torchVersion) !== baseVersion(desc.version)) {
    return { fits: false, why: `the prebuilt addon is for LibTorch ${baseVersion(record.torchVersion)}, the located one is ${desc.version}` };
  }
  // A CUDA wheel's libtorch_cuda needs the nvidia-* folders on the addon's own run path: compile.
  if (!!record.cuda !== desc.cuda) return { fits: false, why: `the prebuilt addon is for a ${flavour(record.cuda)} LibTorch, the located one is a ${flavour(desc.cuda)} build` };
  if (record.cxxAbi !== desc.cxxAbi) return { fits: false, why: `the prebuilt addon uses the ${record.cxxAbi} C++ ABI, the located LibTorch ${desc.cxxAbi}` };
  // Compiled from other sources than the ones shipped (a packaging mistake): compile instead.
  if (record.nativeSources !== nativeSourcesHash()) return { fits: false, why: 'the prebuilt addon was compiled from other native sources than this package holds' };
  return { fits: true, record };
}

/** Loads an addon in a child process (a failed load can abort the process) and returns its runtimeInfo. */
function tryLoad(file) {
  const r = spawnSync(process.execPath, ['-e', 'console.log(JSON.stringify(require(process.argv[1]).runtimeInfo()))', file], {
    encoding: 'utf8', timeout: 120000, env: { ...process.env, LD_LIBRARY_PATH: '' },
  });
  if (r.status !== 0) return { ok: false, error: (r.stderr || r.error?.message || '').trim().split('\n').slice(0, 3).join('\n') };
  return { ok: true, info: JSON.parse(r.stdout.trim().split('\n').pop()) };
}

/** Points build/torch-lib at the LibTorch's lib folder and sets the prebuilt addon up to load. */
function usePrebuilt(desc, log) {
  fs.mkdirSync(path.dirname(paths.torchLink), { recursive: true });
  fs.rmSync(paths.torchLink, { force: true });
  fs.symlinkSync(desc.lib, paths.torchLink, 'dir');
  // A local build would win over the prebuilt (node-gyp-build's order): it is for another LibTorch.
  fs.rmSync(paths.built, { force: true });
  fs.rmSync(paths.builtRecord, { force: true });
  const loaded = tryLoad(paths.prebuilt);
  if (!loaded.ok) {
    fs.rmSync(paths.torchLink, { force: true });
    log(`the prebuilt addon does not load against ${desc.root}: ${loaded.error}`);
    return false;
  }
  log(`using the prebuilt addon (LibTorch ${loaded.info.torchVersion}); LibTorch libraries from ${desc.lib}`);
  return true;
}

/** The node-gyp to run: npm's own (npm passes its path to scripts), a local one, or the one npm bundles. */
function nodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try { candidates.push(require.resolve('node-gyp/bin/node-gyp.js', { paths: [packageRoot] })); } catch { /* not installed */ }
  candidates.push(path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => c && fs.existsSync(c)) || null;
}

function haveCompiler() {
  for (const c of [process.env.CXX, 'c++', 'g++', 'clang++'].filter(Boolean)) {
    if (spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0) return c;
  }
  return null;
}

/**
 * Compiles the addon with node-gyp (binding.gyp) against desc, all cores, printing one line per
 * compiled file; the full output goes to excise-build.log (in the package root). Resolves true on success.
 */
function compile(desc, log, { jobs = os.availableParallelism?.() ?? os.cpus().length } = {}) {
  const gyp = nodeGyp();
  if (!gyp) { log('node-gyp is not available (it ships with npm): install npm, or run the build from a clone with cmake-js'); return Promise.resolve(false); }
  const cxx = haveCompiler();
  if (!cxx) { log(`no C++ compiler found (needs ${desc.std === 'c++20' ? 'C++20: g++ 10+ or clang++ 12+' : 'C++17'}): apt-get install g++ (or set CXX)`); return Promise.resolve(false); }
  const sources = fs.readdirSync(path.join(packageRoot, 'native'), { recursive: true }).filter((f) => String(f).endsWith('.cc')).length;
  fs.mkdirSync(path.dirname(paths.log), { recursive: true });
  const logFile = fs.openSync(paths.log, 'w');
  const started = Date.now();
  log(`compiling the addon against LibTorch ${desc.version} (${flavour(desc.cuda)}, ${desc.std}) at ${desc.root}: ` +
    `${sources} files, ${jobs} jobs, a few minutes (log: ${paths.log})`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [gyp, 'rebuild', '-j', String(jobs)], {
      cwd: packageRoot, env: { ...process.env, LIBTORCH: desc.root, Torch_DIR: '', CMAKE_PREFIX_PATH: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let done = 0;
    let tail = '';
    const onData = (chunk) => {
      fs.writeSync(logFile, chunk);
      tail = (tail + chunk.toString()).slice(-4000);
      for (const m of chunk.toString().matchAll(/CXX\(target\) Release\/obj\.target\/excise\/native\/(\S+)\.o/g)) {
        done += 1;
        log(`  [${done}/${sources}] compiling ${m[1]}.cc (${Math.round((Date.now() - started) / 1000)} s)`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code) => {
      fs.closeSync(logFile);
      if (code !== 0 || !fs.existsSync(paths.built)) {
        log(`the compile failed (exit ${code}); the end of ${paths.log}:\n${tail.split('\n').filter((l) => /error|Error/.test(l)).slice(-8).join('\n') || tail.slice(-1500)}`);
        resolve(false);
        return;
      }
      writeBuiltRecord(desc, 'node-gyp');
      const loaded = tryLoad(paths.built);
      if (!loaded.ok) { log(`the addon was built but does not load: ${loaded.error}`); resolve(false); return; }
      log(`built in ${Math.round((Date.now() - started) / 1000)} s: ${paths.built} (LibTorch ${loaded.info.torchVersion})`);
      resolve(true);
    });
  });
}

function writeBuiltRecord(desc, builtWith) {
  fs.writeFileSync(paths.builtRecord, JSON.stringify({
    builtWith, torchRoot: desc.root, torchLib: desc.lib, torchVersion: desc.version, cuda: desc.cuda,
    cxxAbi: desc.cxxAbi, cxxStandard: desc.std, napiVersion: 8,
  }, null, 2) + '\n');
}

/**
 * Makes an addon for the located LibTorch: the prebuilt when it fits (unless fromSource), else a
 * compile. Returns { ok, desc?, how?, message? }; never throws for a missing LibTorch.
 */
async function build({ log, fromSource = false, env = process.env } = {}) {
  let found;
  try {
    found = locate();
  } catch (err) {
    return { ok: false, reason: 'no-libtorch', message: err.message };
  }
  const desc = describe(found.root);
  log(`LibTorch ${desc.version} (${flavour(desc.cuda)}, ${desc.cxxAbi} ABI) at ${desc.root}, found via ${found.via}`);
  if (!fromSource) {
    const fit = prebuiltFits(desc);
    if (fit.fits && usePrebuilt(desc, log)) return { ok: true, desc, how: 'prebuilt' };
    if (!fit.fits) log(`${fit.why}: compiling`);
  }
  fs.rmSync(paths.torchLink, { force: true });
  const ok = await compile(desc, log);
  return ok ? { ok: true, desc, how: 'compiled' } : { ok: false, reason: 'compile', desc, message: `the build failed; see ${paths.log}` };
}

module.exports = { packageRoot, paths, installed, commands, checkAddon, prebuiltFits, usePrebuilt, compile, build, tryLoad, torchNow, readJson, haveCompiler, nodeGyp };
