/**
 * excise merge: adds statistics files (shards of one dataset) into one.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ExciseError } from '../errors.js';
import { ActivationStats } from '../method/stats.js';
import { flag, parseCommandArgs, requireStr, UsageError, type OptionSpec } from './args.js';
import { checkWritable, type CliIO, type Command } from './common.js';

const OPTIONS: OptionSpec = {
  out: { type: 'string' },
  overwrite: { type: 'boolean' },
};

const HELP = `Usage: excise merge --out MERGED.safetensors A.safetensors B.safetensors [...]

Merges statistics files written by "excise collect" (shards of one dataset, e.g. collected on
several machines) into the statistics of the whole: the sums add, exactly. The result feeds
"excise prune --forget-stats F --retain-stats R".

  --out FILE           the merged statistics file to write
  --overwrite          replace an existing --out file
`;

export const mergeCommand: Command = {
  name: 'merge',
  summary: 'merge statistics files (shards) into one',
  help: HELP,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseCommandArgs('merge', argv, OPTIONS, true);
    const out = resolve(requireStr(values, 'out', 'merge'));
    if (positionals.length < 2) throw new UsageError(`merge needs at least two statistics files to merge, received ${positionals.length} (see "excise merge --help")`);
    const inputs = positionals.map((p) => resolve(p));
    if (inputs.includes(out)) throw new UsageError(`--out ${out} is also one of the inputs`);
    if (existsSync(out) && !flag(values, 'overwrite')) throw new ExciseError('ERR_OUTPUT_EXISTS', `--out ${out} already exists (pass --overwrite to replace it)`);
    checkWritable('--out', out, 'file');
    for (const f of inputs) if (!existsSync(f)) throw new ExciseError('ERR_IO', `statistics file not found: ${f}`);
    let merged = await ActivationStats.load(inputs[0]);
    for (const f of inputs.slice(1)) {
      const next = await ActivationStats.load(f);
      try {
        merged = merged.merge(next);
      } catch (err) {
        if (err instanceof ExciseError) throw new ExciseError(err.code, `${f}: ${err.message}`, { cause: err });
        throw err;
      }
    }
    await merged.save(out);
    io.stdout.write(`merged ${inputs.length} files: ${merged.hookNames.length} hook points over ${merged.tokens} tokens\nwrote ${out}\n`);
    return 0;
  },
};
