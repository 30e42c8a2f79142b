/**
 * excise setup: obtains a LibTorch and builds the native addon inside the installed package.
 * Default: PyTorch's CPU wheel (the version the prebuilt addon was built for, so no compile) into a
 * per-user venv (~/.cache/excise/torch-cpu) through the user's python and pip; --cuda: PyTorch's
 * CUDA wheel into ~/.cache/excise/torch-cuda; --libtorch DIR: an unpacked libtorch; --python PATH: a
 * Python that has torch already (else the Python that makes the venv). Nothing uses Python at run time.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ExciseError } from '../errors.js';
import { flag, parseCommandArgs, str, type OptionSpec } from './args.js';
import type { CliIO, Command } from './common.js';
import { addonHelpers, locator, type AddonRecord } from './install-support.js';

const OPTIONS: OptionSpec = {
  cuda: { type: 'boolean' },
  python: { type: 'string' },
  libtorch: { type: 'string' },
  'torch-version': { type: 'string' },
  'from-source': { type: 'boolean' },
};

const CPU_INDEX = 'https://download.pytorch.org/whl/cpu';

/** The torch the prebuilt addon was built for (prebuilds/<platform>/excise.json), e.g. "2.13.0+cpu". */
function pinnedTorch(): string {
  const helpers = addonHelpers();
  const record = helpers.readJson(helpers.paths.prebuiltRecord) as AddonRecord | null;
  return record?.torchVersion ?? '2.13.0+cpu';
}

const HELP = `Usage: excise setup [--cuda] [--python PATH] [--libtorch DIR] [--torch-version V] [--from-source]

Obtains a LibTorch and builds excise's native addon for it (run once after \`npm install excise\`):
  (default)        PyTorch's CPU wheel (torch==${'${pinned}'}, the version the prebuilt addon fits: no
                   compile) into a per-user venv, <cache>/torch-cpu, with python3 and pip
  --cuda           PyTorch's CUDA wheel (the newest, or --torch-version) into <cache>/torch-cuda;
                   compiles the addon (a C++ compiler, no CUDA toolkit needed)
  --python PATH    use this Python's torch if it has one; otherwise make the venv with this Python
  --libtorch DIR   use an unpacked libtorch (the folder holding include/ and lib/); installs nothing
  --torch-version V  the torch version pip installs (e.g. 2.14.1, or 2.13.0+cpu)
  --from-source    compile even when the prebuilt addon fits
<cache> is $XDG_CACHE_HOME/excise or ~/.cache/excise. Nothing uses Python at run time.
`;

function pythonHasTorch(python: string): boolean {
  return spawnSync(python, ['-c', 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("torch") else 1)'], { stdio: 'ignore' }).status === 0;
}

function run(cmd: string, args: string[], io: CliIO, what: string): void {
  io.stderr.write(`excise setup: ${cmd} ${args.join(' ')}\n`);
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' } });
  if (r.status !== 0) {
    throw new ExciseError('ERR_NATIVE_LOAD', `setup: ${what} failed (${r.error?.message ?? `exit ${r.status}`}); ` +
      'to use a LibTorch you have instead: excise setup --libtorch DIR, or --python PATH');
  }
}

export const setupCommand: Command = {
  name: 'setup',
  summary: 'obtain a LibTorch (CPU, or --cuda) and build the native addon',
  help: HELP.replace('${pinned}', pinnedTorch()),
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs('setup', argv, OPTIONS);
    const helpers = addonHelpers();
    const loc = locator();
    const log = (line: string): void => { io.stderr.write(`excise setup: ${line}\n`); };
    const started = Date.now();
    // The LibTorch chosen here is the only one the build may see.
    for (const v of ['LIBTORCH', 'Torch_DIR', 'CMAKE_PREFIX_PATH', 'EXCISE_PYTHON']) delete process.env[v];

    const libtorch = str(values, 'libtorch');
    const python = str(values, 'python');
    if (libtorch !== undefined) {
      const dir = resolve(libtorch);
      if (!loc.isTorchRoot(dir)) {
        throw new ExciseError('ERR_INVALID_ARGUMENT', `setup: --libtorch ${dir} is not an unpacked libtorch (no include/ATen/ATen.h and share/cmake/Torch)`);
      }
      process.env.LIBTORCH = dir;
    } else if (python !== undefined && pythonHasTorch(python)) {
      log(`using the torch of ${python}`);
      process.env.EXCISE_PYTHON = python;
    } else {
      const cuda = flag(values, 'cuda');
      const venv = join(loc.userCacheDir(), cuda ? 'torch-cuda' : 'torch-cpu');
      const venvPython = join(venv, 'bin', 'python');
      const version = str(values, 'torch-version') ?? (cuda ? undefined : pinnedTorch());
      if (!existsSync(venvPython)) {
        const basePython = python ?? 'python3';
        try {
          execFileSync(basePython, ['-c', 'import venv, ensurepip'], { stdio: 'ignore' });
        } catch {
          throw new ExciseError('ERR_NATIVE_LOAD', `setup: ${basePython} cannot create a virtual environment (install python3 and python3-venv), ` +
            'or give a LibTorch you have: excise setup --libtorch DIR');
        }
        mkdirSync(loc.userCacheDir(), { recursive: true });
        run(basePython, ['-m', 'venv', venv], io, `creating the venv ${venv}`);
      }
      if (pythonHasTorch(venvPython) && (version === undefined || installedTorch(venvPython) === version)) {
        log(`${venv} already has torch ${installedTorch(venvPython)}`);
      } else {
        const spec = version ? `torch==${version}` : 'torch';
        // CPU: PyTorch's CPU index (PyPI's Linux torch is the CUDA build), without torch's Python
        // dependencies (nothing imports torch: only its LibTorch is used). CUDA: PyPI's default torch,
        // with its dependencies (the nvidia-* wheels hold the CUDA libraries LibTorch loads).
        const extra = cuda ? [] : ['--no-deps', '--extra-index-url', CPU_INDEX];
        run(join(venv, 'bin', 'pip'), ['install', spec, ...extra], io, `pip install ${spec}`);
      }
      process.env.EXCISE_PYTHON = venvPython;
    }
    const result = await helpers.build({ log, fromSource: flag(values, 'from-source') });
    if (!result.ok) {
      log(result.message ?? 'the build failed');
      return 1;
    }
    log(`done in ${Math.round((Date.now() - started) / 1000)} s (${result.how === 'prebuilt' ? 'prebuilt addon' : 'compiled'}); ` +
      '`excise doctor` shows what excise runs on');
    return 0;
  },
};

function installedTorch(python: string): string | undefined {
  try {
    return execFileSync(python, ['-c', 'import importlib.metadata as m; print(m.version("torch"))'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}
