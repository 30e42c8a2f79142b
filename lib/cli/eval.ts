/**
 * excise eval: next-token metrics of a model on a dataset (the whole dataset, up to --tokens).
 */
import { ExciseError } from '../errors.js';
import { readChoicesFile } from '../method/choices.js';
import { percent } from '../report/table.js';
import { flag, loadOptions, MASKING_OPTIONS, MODEL_OPTIONS, optionalCount, parseCount, parseMaskingFlags, parseCommandArgs, requireStr, str, delimiterFlag, type OptionSpec, type ParsedValues } from './args.js';
import { checkMaxLength, loadTextModel, openDataset, reportDatasets, type CliIO, type Command } from './common.js';
import { dataHelp, DATA_OPTIONS, longDocsOption, parseDataFlags, tokensLine } from './data.js';
import { groupFromEnv, LAUNCH_HELP, LAUNCH_OPTIONS, launchSettings, launchWorkers, workerDevice } from './launch.js';

const OPTIONS: OptionSpec = {
  model: { type: 'string' },
  data: { type: 'string' },
  tokens: { type: 'string' },
  'top-k': { type: 'string' },
  'batch-size': { type: 'string' },
  'max-length': { type: 'string' },
  json: { type: 'boolean' },
  choices: { type: 'string' },
  fewshot: { type: 'string' },
  'num-fewshot': { type: 'string' },
  seed: { type: 'string' },
  'target-delimiter': { type: 'string' },
  ...MASKING_OPTIONS,
  ...MODEL_OPTIONS,
  ...DATA_OPTIONS,
  ...LAUNCH_OPTIONS,
};

const HELP = `Usage: excise eval --model DIR --data SPEC [options]
       excise eval --model DIR --choices FILE [--fewshot FILE --num-fewshot K] [options]

Evaluates next-token prediction on a dataset: loss, perplexity, top-1 and top-k accuracy, and the
same accuracies over targets outside the 50 most common tokens of the evaluated text.

With --choices: multiple-choice accuracy (acc and length-normalised acc_norm, scored as
lm-evaluation-harness does: the summed log-likelihood of each choice after the question).

  --choices FILE       jsonl(.gz): {"question": "...", "choices": ["...", ...], "answer": index} per line
  --fewshot FILE       examples for k-shot prompts (same format; never the evaluated questions)
  --num-fewshot K      examples per prompt (default 0), drawn with --seed (default 1234)
  --target-delimiter S between question and choice (default " "; '' when choices carry their own)

  --model DIR          Hugging Face model folder (with tokenizer.json)
  --data SPEC          a text or source file, .jsonl(.gz), .parquet, or a folder of these (see --ext)
  --tokens N           tokens to evaluate at most (default 100k)
  --top-k K            k of the top-k accuracy (default 10)
  --batch-size N       documents per batch (default 8)
  --max-length N       tokens per window (default: the model's context, at most 1024)
  --device D           cpu (default), cuda, cuda:N, or auto (layers spread over the GPUs)
  --devices D1,D2,...  one model split over these devices (e.g. cuda:0,cuda:1)
  --dtype T            float32, float16 or bfloat16
  --json               print the metrics as JSON
  --mask-fraction F    masked LMs (RoBERTa): share of the non-special tokens masked and predicted,
                       in (0, 1] (default 0.15)
  --mask-seed N        masked LMs: seeds which tokens are masked (default 0)
${dataHelp(false)}${LAUNCH_HELP}`;

export const evalCommand: Command = {
  name: 'eval',
  summary: 'loss, perplexity and top-1 / top-k accuracy of a model on a dataset',
  help: HELP,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs('eval', argv, OPTIONS);
    const launch = launchSettings(values, io.env);
    const modelDir = requireStr(values, 'model', 'eval');
    const choicesFile = str(values, 'choices');
    if (choicesFile !== undefined) {
      for (const only of ['mask-fraction', 'mask-seed']) {
        if (values[only] !== undefined) throw new ExciseError('ERR_INVALID_ARGUMENT', `eval: --${only} applies to --data on a masked LM only`);
      }
      return runChoices(values, modelDir, choicesFile, io);
    }
    for (const only of ['fewshot', 'num-fewshot', 'target-delimiter']) {
      if (values[only] !== undefined) throw new ExciseError('ERR_INVALID_ARGUMENT', `eval: --${only} applies to --choices only`);
    }
    const dataSpec = requireStr(values, 'data', 'eval');
    const tokens = parseCount('tokens', str(values, 'tokens') ?? '100000', { suffixes: true });
    const topK = parseCount('top-k', str(values, 'top-k') ?? '10');
    const batchSize = optionalCount(values, 'batch-size');
    const maxLength = optionalCount(values, 'max-length');
    const masking = parseMaskingFlags(values);
    const load = loadOptions(values);
    const flags = parseDataFlags(values, ['data']);
    const data = await openDataset('--data', dataSpec, undefined, flags.forSet('data'));
    if (launch) return launchWorkers('eval', argv, launch, io);
    reportDatasets(io, [['--data', data]]);
    const group = await groupFromEnv(io.env);
    const model = await loadTextModel(modelDir, { ...load, device: workerDevice(load.device, io.env) });
    try {
      checkMaxLength(model, maxLength);
      const r = await model.evaluate(data, {
        maxTokens: tokens, topK, batchSize, maxLength, ...longDocsOption(flags.longDocs), ...masking,
        onProgress: (done) => io.progress.update(`evaluating ${data.name}`, done, tokens),
        ...(group ? { group } : {}),
      });
      io.progress.clear();
      // Every rank holds the same metrics; rank 0 prints them.
      if (group) await group.destroy();
      if (group && !group.isMain) return 0;
      const longLine = tokensLine('--data', r);
      if (longLine) io.stderr.write(longLine + '\n');
      if (flag(values, 'json')) {
        const { skipTokens: _skip, ...metrics } = r;
        io.stdout.write(JSON.stringify({ model: model.dir, data: data.source, device: model.device, dtype: model.dtype, ...metrics }, null, 2) + '\n');
        return 0;
      }
      const rows: Array<[string, string]> = [
        ['model', `${model.dir} (${model.config.architecture}, ${model.device}, ${model.dtype})`],
        ['data', data.source],
        ['tokens', model.config.maskedLm ? `${r.tokens} masked and predicted (masked LM: ${+((masking.maskFraction ?? 0.15) * 100).toFixed(4)}% of the non-special tokens)` : `${r.tokens} predicted`],
        ['loss', r.loss.toFixed(4)],
        ['perplexity', r.perplexity.toFixed(2)],
        ['top1', percent(r.top1)],
        [`top${r.topK}`, percent(r.topk)],
        ['top1-skip', `${percent(r.top1Skip)} (${r.skipCounted} targets outside the ${r.skipTokens.length} most common tokens)`],
        [`top${r.topK}-skip`, percent(r.topkSkip)],
      ];
      const w = Math.max(...rows.map(([k]) => k.length));
      io.stdout.write(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
      return 0;
    } finally {
      io.progress.clear();
      await model.dispose();
    }
  },
};

/** excise eval --choices: multiple-choice accuracy, zero- or k-shot. */
async function runChoices(values: ParsedValues, modelDir: string, file: string, io: CliIO): Promise<number> {
  if (str(values, 'data') !== undefined) throw new ExciseError('ERR_INVALID_ARGUMENT', 'eval: give --data or --choices, not both');
  const numFewshot = optionalCount(values, 'num-fewshot', { allowZero: true }) ?? 0;
  const fewshotFile = str(values, 'fewshot');
  if (numFewshot > 0 && fewshotFile === undefined) throw new ExciseError('ERR_INVALID_ARGUMENT', `eval: --num-fewshot ${numFewshot} needs --fewshot FILE (the examples to draw from)`);
  const seed = optionalCount(values, 'seed', { allowZero: true });
  const batchSize = optionalCount(values, 'batch-size');
  const maxLength = optionalCount(values, 'max-length');
  const targetDelimiter = delimiterFlag(values);
  // Read (and validate) the files before loading the model.
  const items = readChoicesFile(file);
  const fewshot = fewshotFile !== undefined ? readChoicesFile(fewshotFile) : undefined;
  const model = await loadTextModel(modelDir, loadOptions(values));
  try {
    checkMaxLength(model, maxLength);
    const r = await model.evaluateChoices(items, {
      fewshot, numFewshot, seed, batchSize, maxLength, ...(targetDelimiter !== undefined ? { targetDelimiter } : {}),
      onProgress: (done, total) => io.progress.update(`scoring ${file}`, done, total),
    });
    io.progress.clear();
    if (flag(values, 'json')) {
      const { perItem: _perItem, ...metrics } = r;
      io.stdout.write(JSON.stringify({ model: model.dir, choices: file, device: model.device, dtype: model.dtype, ...metrics }, null, 2) + '\n');
      return 0;
    }
    const rows: Array<[string, string]> = [
      ['model', `${model.dir} (${model.config.architecture}, ${model.device}, ${model.dtype})`],
      ['choices', `${file} (${r.items} questions, ${r.numFewshot}-shot${r.truncated ? `, ${r.truncated} contexts cut to fit` : ''})`],
      ['acc', `${percent(r.acc)} ± ${percent(r.accStderr)}`],
      ['acc_norm', `${percent(r.accNorm)} ± ${percent(r.accNormStderr)}`],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    io.stdout.write(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
    return 0;
  } finally {
    io.progress.clear();
    await model.dispose();
  }
}
