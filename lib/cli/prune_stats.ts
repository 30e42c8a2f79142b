/**
 * excise prune --forget-stats F --retain-stats R: one pruning step from saved statistics (files
 * written by `excise collect` or `excise merge`, e.g. collected on several machines), so that
 * statistics gathered elsewhere are usable on the command line. Scores, selects --ff-frac /
 * --attn-frac of the neurons, prunes, evaluates any --eval sets before and after, and writes the
 * pruned model and report.json into --out. Nothing is written before the model is pruned, and a
 * failed run leaves nothing behind.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ExciseError } from '../errors.js';
import type { Dataset } from '../data/datasets.js';
import { loadModel, type Model } from '../model.js';
import { checkModelPath, checkpointDtype } from '../model_path.js';
import { scoreNeurons, SCORINGS, type Scoring } from '../method/scoring.js';
import { selectNeurons } from '../method/selection.js';
import { ActivationStats } from '../method/stats.js';
import type { EvalResult } from '../method/evaluate.js';
import { writeFileAtomic } from '../report/index.js';
import { percent } from '../report/table.js';
import { flag, loadOptions, optionalCount, parseCount, parseDtype, parseFraction, parseMaskingFlags, str, UsageError, type ParsedValues } from './args.js';
import { checkMaxLength, checkWritable, loadTextModel, openDataset, removeCreated, reportDatasets, type CliIO } from './common.js';
import { longDocsOption, parseDataFlags, tokensLine } from './data.js';

/** Flags of the iterative method that have no meaning when pruning once from statistics. */
const NOT_WITH_STATS = ['forget', 'retain', 'steps', 'collect-tokens', 'random', 'seed', 'eval-fraction', 'collect-once', 'stop-forget-below', 'stop-retain-drop', 'resume'];

async function loadStats(label: string, file: string): Promise<ActivationStats> {
  if (!existsSync(file) || !statSync(file).isFile()) throw new ExciseError('ERR_IO', `${label}: statistics file not found: ${file}`);
  try {
    return await ActivationStats.load(file);
  } catch (err) {
    if (err instanceof ExciseError) throw new ExciseError(err.code, `${label}: ${err.message}`, { cause: err });
    throw err;
  }
}

function checkStatsFit(label: string, stats: ActivationStats, model: Model): void {
  const c = model.config;
  const m = stats.model;
  if (m.architecture !== c.architecture || m.nLayers !== c.nLayers || m.dMlp !== c.dMlp || m.attnDim !== c.nHeads * c.headDim) {
    throw new ExciseError('ERR_INVALID_ARGUMENT',
      `${label}: the statistics were collected on a ${m.architecture} with ${m.nLayers} layers, d_mlp ${m.dMlp}, attention width ${m.attnDim}; ` +
      `--model ${model.dir} is a ${c.architecture} with ${c.nLayers} layers, d_mlp ${c.dMlp}, attention width ${c.nHeads * c.headDim}`);
  }
}

export async function pruneFromStats(values: ParsedValues, io: CliIO): Promise<number> {
  for (const f of NOT_WITH_STATS) {
    if (values[f] !== undefined) throw new UsageError(`--${f} does not apply when pruning from --forget-stats / --retain-stats (one step from saved statistics)`);
  }
  const modelFlag = str(values, 'model');
  const forgetFile = str(values, 'forget-stats');
  const retainFile = str(values, 'retain-stats');
  if (modelFlag === undefined) throw new UsageError('missing required option --model for "excise prune" (see "excise prune --help")');
  if (forgetFile === undefined || retainFile === undefined) throw new UsageError('--forget-stats and --retain-stats go together: give both statistics files');
  const ffFrac = parseFraction('ff-frac', str(values, 'ff-frac') ?? '0.02', { allowZero: true });
  const attnFrac = parseFraction('attn-frac', str(values, 'attn-frac') ?? '0', { allowZero: true });
  if (ffFrac === 0 && attnFrac === 0) throw new UsageError('--ff-frac and --attn-frac are both 0: nothing would be pruned');
  const scoring = (str(values, 'scoring') ?? 'abs') as Scoring;
  if (!SCORINGS.includes(scoring)) throw new UsageError(`--scoring: expected one of ${SCORINGS.join(', ')}, received ${JSON.stringify(scoring)}`);
  const evalTokens = parseCount('eval-tokens', str(values, 'eval-tokens') ?? '100000', { suffixes: true });
  const batchSize = optionalCount(values, 'batch-size');
  const maxLength = optionalCount(values, 'max-length');
  // --device, --devices (a model split over several devices) and --dtype, as every command reads them.
  const load = loadOptions(values);
  const saveDtypeFlag = parseDtype(str(values, 'save-dtype'), '--save-dtype');
  const masking = parseMaskingFlags(values);
  const evalSpecs: Record<string, string> = {};
  for (const e of (values.eval as string[] | undefined) ?? []) {
    const eq = e.indexOf('=');
    if (eq <= 0 || eq === e.length - 1) throw new UsageError(`--eval: expected NAME=SPEC (e.g. --eval wiki=data/wiki.jsonl), received ${JSON.stringify(e)}`);
    const name = e.slice(0, eq);
    if (name in evalSpecs) throw new UsageError(`--eval: the name "${name}" is given twice`);
    evalSpecs[name] = resolve(e.slice(eq + 1));
  }
  const data = parseDataFlags(values, Object.keys(evalSpecs).length > 0 ? ['forget', 'retain', ...Object.keys(evalSpecs)] : ['data']);
  const modelDir = resolve(modelFlag);
  const out = resolve(str(values, 'out') ?? `${basename(modelDir)}-excised`);

  // Everything is checked before any work: the output folder, the model path, the statistics, the eval sets.
  checkWritable('--out', out, 'folder');
  if (existsSync(out) && readdirSync(out).length > 0 && !flag(values, 'overwrite')) {
    throw new ExciseError('ERR_OUTPUT_EXISTS', `--out ${out} is not empty; pass --overwrite to replace its outputs`);
  }
  checkModelPath(modelFlag, modelDir);
  const forget = await loadStats('--forget-stats', resolve(forgetFile));
  const retain = await loadStats('--retain-stats', resolve(retainFile));
  const evals: Record<string, Dataset> = {};
  for (const [name, spec] of Object.entries(evalSpecs)) evals[name] = await openDataset(`--eval ${name}`, spec, name, data.forSet(name));
  reportDatasets(io, Object.entries(evals).map(([n, ds]) => [`--eval ${n}`, ds]));

  // Statistics need no tokenizer; evaluating texts does.
  const model = Object.keys(evals).length > 0 ? await loadTextModel(modelDir, load) : await loadModel(modelDir, load);
  let firstCreated: string | undefined;
  try {
    checkMaxLength(model, maxLength);
    checkStatsFit('--forget-stats', forget, model);
    checkStatsFit('--retain-stats', retain, model);
    const evaluate = async (when: string): Promise<Record<string, EvalResult>> => {
      const results: Record<string, EvalResult> = {};
      for (const [name, ds] of Object.entries(evals)) {
        results[name] = await model.evaluate(ds, {
          maxTokens: evalTokens, batchSize, maxLength, ...longDocsOption(data.longDocs), ...masking,
          onProgress: (done) => io.progress.update(`evaluating ${name} (${when})`, done, evalTokens),
        });
        io.progress.clear();
        const line = tokensLine(`--eval ${name}`, results[name]);
        if (line) io.stderr.write(line + '\n');
      }
      return results;
    };
    const before = await evaluate('before');
    const scores = scoreNeurons(forget, retain, { ffScoring: scoring, attnScoring: scoring });
    const selection = selectNeurons(scores, { ffFrac, attnFrac, pruned: model.masks });
    const pruned = await model.prune(selection);
    const after = await evaluate('after');

    const counts = model.masks.counts;
    const total = { ff: counts.ff.reduce((a, b) => a + b, 0), attn: counts.attn.reduce((a, b) => a + b, 0) };
    const newly = { ff: selection.ff.reduce((a, l) => a + l.length, 0), attn: selection.attn.reduce((a, l) => a + l.length, 0) };
    const saveDtype = saveDtypeFlag ?? checkpointDtype(modelDir) ?? model.dtype;
    const report = {
      source: 'statistics',
      model: { dir: model.dir, architecture: model.config.architecture },
      forgetStats: { file: resolve(forgetFile), tokens: forget.tokens },
      retainStats: { file: resolve(retainFile), tokens: retain.tokens },
      options: { ffFrac, attnFrac, scoring, evalTokens },
      newlyPruned: newly,
      totalPruned: total,
      pruned,
      evals: Object.fromEntries(Object.keys(evals).map((n) => [n, { before: before[n], after: after[n] }])),
    };

    // Only now is anything written.
    if (flag(values, 'overwrite')) for (const name of ['report.json', 'model']) rmSync(join(out, name), { recursive: true, force: true });
    try {
      firstCreated = mkdirSync(out, { recursive: true });
    } catch (err) {
      throw new ExciseError('ERR_IO', `--out ${out}: cannot create the folder: ${(err as Error).message}`, { cause: err });
    }
    await writeFileAtomic(join(out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
    await model.save(join(out, 'model'), { overwrite: true, dtype: saveDtype, metadata: { fromStatistics: report } });

    const c = model.config;
    io.stdout.write(`pruned from statistics: ${newly.ff} FF neurons (${percent(total.ff / (c.nLayers * c.dMlp))} of all)` +
      `${newly.attn > 0 ? `, ${newly.attn} attention neurons` : ''}; forget ${forget.tokens} tokens, retain ${retain.tokens} tokens\n`);
    for (const name of Object.keys(evals)) {
      const b = before[name].top1;
      const a = after[name].top1;
      io.stdout.write(`${name}: top-1 ${percent(b)} -> ${percent(a)} (${a - b >= 0 ? '+' : ''}${((a - b) * 100).toFixed(1)})\n`);
    }
    const dtypeNote = saveDtype === model.dtype ? '' : ` (saved in ${saveDtype}; computed in ${model.dtype})`;
    io.stdout.write(`pruned model: ${join(out, 'model')}${dtypeNote}\nreport: ${join(out, 'report.json')}\n`);
    return 0;
  } catch (err) {
    io.progress.clear();
    removeCreated(firstCreated);
    throw err;
  } finally {
    await model.dispose();
  }
}
