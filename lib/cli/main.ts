#!/usr/bin/env node
/**
 * The `excise` command: parses the command line and dispatches to one file per subcommand.
 * Exit codes: 0 success, 1 failure (an ExciseError prints its message and code; anything else its
 * stack), 2 usage error, 130 interrupted by Ctrl-C.
 */
import { readFileSync } from 'node:fs';
import { ExciseError } from '../errors.js';
import { UsageError, wantsHelp } from './args.js';
import { attackCommand } from './attack.js';
import { buildCommand } from './build.js';
import { compareCommand } from './compare.js';
import { collectCommand } from './collect.js';
import { demoCommand } from './demo.js';
import { doctorCommand } from './doctor.js';
import { processIO, type CliIO, type Command } from './common.js';
import { cliWording } from './data.js';
import { evalCommand } from './eval.js';
import { infoCommand } from './info.js';
import { mergeCommand } from './merge.js';
import { pruneCommand } from './prune.js';
import { serveCommand } from './serve.js';
import { setupCommand } from './setup.js';

const COMMANDS: Command[] = [pruneCommand, demoCommand, evalCommand, compareCommand, attackCommand, collectCommand, mergeCommand, infoCommand, serveCommand, setupCommand, buildCommand, doctorCommand];

function version(): string {
  // lib/cli/main.ts and dist/cli/main.js both sit two folders below package.json.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function globalHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: excise <command> [options]

Removes a capability from a language model by selective pruning.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`).join('\n')}

Options:
  -h, --help     show help (also "excise <command> --help")
  -v, --version  show the version

Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted.
`;
}

export async function main(argv: string[], io: CliIO): Promise<number> {
  try {
    const [name, ...rest] = argv;
    if (name === undefined) {
      io.stderr.write(globalHelp());
      return 2;
    }
    if (name === '--help' || name === '-h' || name === 'help') {
      const sub = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
      io.stdout.write(sub ? sub.help : globalHelp());
      return 0;
    }
    if (name === '--version' || name === '-v') {
      io.stdout.write(`excise ${version()}\n`);
      return 0;
    }
    const command = COMMANDS.find((c) => c.name === name);
    if (!command) {
      const what = name.startsWith('-') ? `unknown option ${name}` : `unknown command "${name}"`;
      throw new UsageError(`${what} (commands: ${COMMANDS.map((c) => c.name).join(', ')}; see "excise --help")`);
    }
    if (wantsHelp(rest)) {
      io.stdout.write(command.help);
      return 0;
    }
    return await command.run(rest, io);
  } catch (err) {
    io.progress.clear();
    if (err instanceof UsageError) {
      io.stderr.write(`excise: ${err.message}\n`);
      return 2;
    }
    if (err instanceof ExciseError) {
      io.stderr.write(`excise: ${cliWording(err.message)} [${err.code}]\n`);
      return 1;
    }
    const sys = err as NodeJS.ErrnoException;
    if (typeof sys?.code === 'string' && typeof sys.syscall === 'string') {
      // A file system failure not caught closer to its cause: one line, not a stack.
      io.stderr.write(`excise: ${sys.message} [ERR_IO]\n`);
      return 1;
    }
    io.stderr.write(`excise: unexpected error\n${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}

const io = processIO();
process.exitCode = await main(process.argv.slice(2), io);
