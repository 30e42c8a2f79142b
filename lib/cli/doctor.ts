/**
 * excise doctor: what the native addon was made for, what the LibTorch locator finds now, and
 * whether they match; the GPUs, compiler and Node.js the build depends on. Loads the addon in a child
 * process (a mismatched LibTorch can abort the process that loads it). Exit 0 when the addon loads
 * and fits the LibTorch found now, 1 otherwise.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { realpathSync } from 'node:fs';
import { flag, parseCommandArgs, type OptionSpec } from './args.js';
import type { CliIO, Command } from './common.js';
import { addonHelpers, locator, type TorchDescription } from './install-support.js';

const OPTIONS: OptionSpec = { json: { type: 'boolean' } };

const HELP = `Usage: excise doctor [--json]

Prints the LibTorch the native addon uses (version, CPU or CUDA build, where), the LibTorch the
locator finds now, whether they match, the GPUs visible, the C++ compiler and the Node.js ABI, and
the command that fixes a mismatch. Exit code 0 when the addon loads and matches, 1 otherwise.
`;

const flavour = (cuda: boolean | undefined): string => (cuda ? 'CUDA' : 'CPU');
const real = (p: string): string => { try { return realpathSync(p); } catch { return p; } };

function visibleGpus(): string[] {
  const smi = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' });
  if (smi.status === 0) return smi.stdout.trim().split('\n').filter(Boolean);
  const dir = '/proc/driver/nvidia/gpus';
  return existsSync(dir) ? readdirSync(dir).map((bus) => `GPU at ${bus}`) : [];
}

function compilerVersion(cxx: string | null): string | null {
  if (!cxx) return null;
  const r = spawnSync(cxx, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? `${cxx}: ${r.stdout.split('\n')[0]}` : null;
}

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'which LibTorch the native addon uses and finds now, GPUs, compiler, Node ABI',
  help: HELP,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs('doctor', argv, OPTIONS);
    const helpers = addonHelpers();
    const loc = locator();
    const check = helpers.checkAddon();
    let located: (TorchDescription & { via: string }) | null = null;
    let locateError: string | null = null;
    try {
      const found = loc.locate();
      located = { ...loc.describe(found.root), via: found.via };
    } catch (err) {
      locateError = (err as Error).message;
    }
    const load = check.file && !check.problem ? helpers.tryLoad(check.file) : null;
    const problems: string[] = [];
    if (check.problem) problems.push(check.problem);
    if (load && !load.ok) problems.push(`the addon does not load: ${load.error}; rebuild: \`${helpers.commands.build}\``);
    if (check.record && located && real(located.root) !== real(check.record.torchRoot)) {
      problems.push(`the addon uses the LibTorch at ${check.record.torchRoot}, but the locator now finds ${located.root} ` +
        `(${located.version}, via ${located.via}); to use that one: \`${helpers.commands.build}\``);
    }
    const report = {
      addon: check.file ? {
        file: check.file,
        kind: check.kind,
        builtWith: check.record?.builtWith ?? (check.kind === 'prebuilt' ? 'prebuilt' : undefined),
        torchVersion: check.record?.torchVersion,
        build: check.record ? flavour(check.record.cuda) : undefined,
        torchRoot: check.record?.torchRoot,
      } : null,
      runtime: load?.ok ? load.info : null,
      located: located ? { root: located.root, via: located.via, version: located.version, build: flavour(located.cuda), cxxAbi: located.cxxAbi, cxxStandard: located.std } : null,
      locateError,
      prebuilt: located ? helpers.prebuiltFits(located) : null,
      gpus: visibleGpus(),
      compiler: compilerVersion(helpers.haveCompiler()),
      nodeGyp: helpers.nodeGyp(),
      node: { version: process.version, abi: process.versions.modules, napi: process.versions.napi, platform: `${process.platform}-${process.arch}` },
      ok: problems.length === 0 && !!load?.ok,
      problems,
    };
    if (flag(values, 'json')) {
      io.stdout.write(JSON.stringify(report, null, 2) + '\n');
      return report.ok ? 0 : 1;
    }
    const lines: string[] = [];
    const a = report.addon;
    lines.push(a
      ? `addon:       ${a.kind === 'prebuilt' ? 'prebuilt' : `built (${a.builtWith ?? 'unrecorded'})`}, ${a.file}`
      : 'addon:       not built');
    if (a?.torchVersion) lines.push(`  uses:      LibTorch ${a.torchVersion} (${a.build}) at ${a.torchRoot}`);
    if (report.runtime) {
      const r = report.runtime;
      lines.push(`  loads:     yes: torch ${r.torchVersion}, ${r.cudaBuild ? 'CUDA' : 'CPU-only'} build, ` +
        `${r.cudaAvailable ? `${r.cudaDeviceCount} CUDA device(s) usable` : 'no CUDA device usable'}, ${r.cxxAbi} ABI`);
    }
    lines.push(located
      ? `located now: LibTorch ${located.version} (${flavour(located.cuda)}, ${located.cxxAbi} ABI, ${located.std}) at ${located.root}, via ${located.via}`
      : `located now: none (${locateError})`);
    if (report.prebuilt) lines.push(`prebuilt:    ${report.prebuilt.fits ? 'fits the located LibTorch' : `does not fit: ${report.prebuilt.why}`}`);
    lines.push(`GPUs:        ${report.gpus.length ? report.gpus.join('; ') : 'none visible'}`);
    lines.push(`compiler:    ${report.compiler ?? 'none found (needed only to compile: apt-get install g++)'}`);
    lines.push(`node:        ${process.version} (ABI ${report.node.abi}, N-API ${report.node.napi}, ${report.node.platform}); node-gyp ${report.nodeGyp ?? 'not found'}`);
    lines.push(report.ok ? 'match:       yes' : `match:       no\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    io.stdout.write(lines.join('\n') + '\n');
    return report.ok ? 0 : 1;
  },
};
