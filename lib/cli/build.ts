/**
 * excise build: (re)makes the native addon for the LibTorch found now: the shipped prebuilt when it
 * fits that LibTorch (same version and C++ ABI), else a compile with node-gyp.
 */
import { flag, parseCommandArgs, type OptionSpec } from './args.js';
import type { CliIO, Command } from './common.js';
import { addonHelpers } from './install-support.js';

const OPTIONS: OptionSpec = { 'from-source': { type: 'boolean' } };

const HELP = `Usage: excise build [--from-source]

Makes the native addon for the LibTorch found now (LIBTORCH, Torch_DIR, CMAKE_PREFIX_PATH,
EXCISE_PYTHON, the LibTorch \`excise setup\` installed, python3's torch): links the prebuilt addon when
it was built for that LibTorch version and C++ ABI, otherwise compiles (node-gyp, all cores, a few
minutes; needs a C++ compiler). Run it after moving, upgrading or switching LibTorch.

Options:
  --from-source   compile even when the prebuilt addon fits
`;

export const buildCommand: Command = {
  name: 'build',
  summary: 'rebuild the native addon for the LibTorch found now',
  help: HELP,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs('build', argv, OPTIONS);
    const helpers = addonHelpers();
    const log = (line: string): void => { io.stderr.write(`excise build: ${line}\n`); };
    const result = await helpers.build({ log, fromSource: flag(values, 'from-source') });
    if (result.ok) return 0;
    log(result.message ?? 'the build failed');
    if (result.reason === 'no-libtorch') log(`install one with: ${helpers.commands.setup}`);
    return 1;
  },
};
