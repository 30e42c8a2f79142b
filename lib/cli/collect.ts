/**
 * excise collect: activation statistics of a model over a dataset, saved as safetensors (to be
 * merged with `excise merge`, e.g. shards collected on several machines).
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ExciseError } from '../errors.js';
import { flag, loadOptions, MODEL_OPTIONS, optionalCount, parseCommandArgs, requireStr, str, UsageError, type OptionSpec } from './args.js';
import { checkMaxLength, checkWritable, loadTextModel, openDataset, reportDatasets, type CliIO, type Command } from './common.js';
import { dataHelp, DATA_OPTIONS, longDocsOption, parseDataFlags, tokensLine } from './data.js';
import { groupFromEnv, LAUNCH_HELP, LAUNCH_OPTIONS, launchSettings, launchWorkers, workerDevice } from './launch.js';

const OPTIONS: OptionSpec = {
  model: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  tokens: { type: 'string' },
  hooks: { type: 'string' },
  'batch-size': { type: 'string' },
  'max-length': { type: 'string' },
  overwrite: { type: 'boolean' },
  ...MODEL_OPTIONS,
  ...DATA_OPTIONS,
  ...LAUNCH_OPTIONS,
};

const HELP = `Usage: excise collect --model DIR --data SPEC --out STATS.safetensors [options]

Collects per-neuron activation statistics (float64 sums: count, sum, sum |x|, sum x^2, sum sqrt|x|,
count x > 0) over a dataset and saves them. Shards merge exactly with "excise merge".

  --model DIR          Hugging Face model folder (with tokenizer.json)
  --data SPEC          a text or source file, .jsonl(.gz), .parquet, or a folder of these (see --ext)
  --out FILE           the statistics file to write (.safetensors)
  --tokens N           tokens to read at most (default: the whole dataset)
  --hooks LIST         comma-separated hook points, e.g. blocks.0.mlp.pre_out,blocks.1.attn.pre_out;
                       "mlp" / "attn" stand for every layer's (default: all)
  --batch-size N       documents per batch (default 8)
  --max-length N       tokens per window (default: the model's context, at most 1024)
  --overwrite          replace an existing --out file
  --device D           cpu (default), cuda, cuda:N, or auto (layers spread over the GPUs)
  --devices D1,D2,...  one model split over these devices (e.g. cuda:0,cuda:1)
  --dtype T            float32, float16 or bfloat16
${dataHelp(false)}${LAUNCH_HELP}
The statistics feed "excise merge" and "excise prune --forget-stats F --retain-stats R".
`;

export const collectCommand: Command = {
  name: 'collect',
  summary: 'collect activation statistics over a dataset into a .safetensors file',
  help: HELP,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs('collect', argv, OPTIONS);
    const launch = launchSettings(values, io.env);
    const modelDir = requireStr(values, 'model', 'collect');
    const dataSpec = requireStr(values, 'data', 'collect');
    const out = resolve(requireStr(values, 'out', 'collect'));
    const tokens = optionalCount(values, 'tokens', { suffixes: true });
    const batchSize = optionalCount(values, 'batch-size');
    const maxLength = optionalCount(values, 'max-length');
    const hookList = str(values, 'hooks')?.split(',').map((h) => h.trim()).filter((h) => h.length > 0);
    if (hookList !== undefined && hookList.length === 0) throw new UsageError('--hooks: expected a comma-separated list of hook points');
    if (existsSync(out) && statSync(out).isDirectory()) throw new ExciseError('ERR_OUTPUT_EXISTS', `--out ${out} is a folder; give the statistics file to write (e.g. ${join(out, 'stats.safetensors')})`);
    if (existsSync(out) && !flag(values, 'overwrite')) throw new ExciseError('ERR_OUTPUT_EXISTS', `--out ${out} already exists (pass --overwrite to replace it)`);
    checkWritable('--out', out, 'file');
    const load = loadOptions(values);
    const flags = parseDataFlags(values, ['data']);
    const data = await openDataset('--data', dataSpec, undefined, flags.forSet('data'));
    if (launch) return launchWorkers('collect', argv, launch, io);
    reportDatasets(io, [['--data', data]]);
    // Several ranks: join the group once every rank has checked its flags (nothing is written yet).
    const group = await groupFromEnv(io.env);
    const model = await loadTextModel(modelDir, { ...load, device: workerDevice(load.device, io.env) });
    try {
      checkMaxLength(model, maxLength);
      let hooks: string[] | undefined;
      if (hookList) {
        hooks = [];
        for (const h of hookList) {
          if (h === 'mlp' || h === 'attn') hooks.push(...model.hookNames().filter((n) => n.endsWith(`.${h}.pre_out`)));
          else if ((model.hookNames() as string[]).includes(h)) hooks.push(h);
          else throw new UsageError(`--hooks: unknown hook point ${JSON.stringify(h)} (expected blocks.{0..${model.config.nLayers - 1}}.mlp.pre_out, blocks.{L}.attn.pre_out, mlp or attn)`);
        }
        hooks = [...new Set(hooks)];
      }
      const stats = await model.collect(data, {
        hooks, maxTokens: tokens, batchSize, maxLength, ...longDocsOption(flags.longDocs),
        onProgress: (done) => io.progress.update(`collecting ${data.name}`, done, tokens ?? Infinity),
        ...(group ? { group } : {}),
      });
      io.progress.clear();
      const longLine = tokensLine('--data', stats);
      if (longLine) io.stderr.write(longLine + '\n');
      // Every rank holds the same all-reduced statistics; rank 0 writes them.
      if (group) await group.destroy();
      if (group && !group.isMain) return 0;
      await stats.save(out);
      io.stdout.write(`collected ${stats.hookNames.length} hook points over ${stats.tokens} tokens of ${data.source}\nwrote ${out}\n`);
      return 0;
    } finally {
      io.progress.clear();
      await model.dispose();
    }
  },
};
