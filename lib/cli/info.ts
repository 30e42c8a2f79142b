/**
 * excise info: what a model is and what it runs on.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExciseError } from '../errors.js';
import { loadModel, type ModelPlacement } from '../model.js';
import { percent } from '../report/table.js';
import { runtimeInfo } from '../runtime.js';
import { flag, loadOptions, MODEL_OPTIONS, parseCommandArgs, requireStr, type OptionSpec } from './args.js';
import type { CliIO, Command } from './common.js';

const OPTIONS: OptionSpec = {
  model: { type: 'string' },
  json: { type: 'boolean' },
  ...MODEL_OPTIONS,
};

const HELP = `Usage: excise info --model DIR [--device D | --devices D1,D2,...] [--dtype T] [--json]

Loads a model and prints its architecture and sizes, the device and dtype it was loaded with, the
LibTorch version and whether CUDA is available. For a model saved by excise, also its pruning
history from excise.json: how many neurons were pruned, from which model, with which settings and
data, and the top-1 accuracies before and after.
`;

/** The model folder's excise.json (written by model.save), or undefined. */
function readExciseJson(dir: string | undefined): Record<string, any> | undefined {
  if (!dir) return undefined;
  const file = join(dir, 'excise.json');
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ExciseError('ERR_CONFIG_INVALID', `${file}: cannot be read as JSON (${(err as Error).message})`, { cause: err });
  }
}

const sum = (a: unknown): number => (Array.isArray(a) ? a.reduce((n: number, v) => n + (typeof v === 'number' ? v : 0), 0) : 0);

/** Rows describing excise.json: what was pruned, how, on what data, and with what result. */
function historyRows(h: Record<string, any>, ffTotal: number, attnTotal: number): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  const ff = sum(h.pruned?.ff);
  const attn = sum(h.pruned?.attn);
  const calls = Array.isArray(h.prunes) ? h.prunes.length : 0;
  rows.push(['pruned', `${ff} FF neurons (${percent(ff / ffTotal)}), ${attn} attention neurons (${percent(attn / attnTotal)}) in ${calls} prune call${calls === 1 ? '' : 's'} (excise.json)`]);
  if (Array.isArray(h.pruned?.ff)) rows.push(['per layer', `FF ${JSON.stringify(h.pruned.ff)}, attention ${JSON.stringify(h.pruned.attn ?? [])}`]);
  if (h.source) rows.push(['pruned from', String(h.source)]);
  if (h.savedAt) rows.push(['saved', String(h.savedAt)]);
  const o = h.options;
  if (o && typeof o === 'object' && o.forget) {
    rows.push(['method', `${o.selection ?? 'selective'} pruning, ${o.steps} steps of ff-frac ${o.ffFrac}, attn-frac ${o.attnFrac}, scoring ${o.scoring}`]);
    rows.push(['forget', String(o.forget)]);
    rows.push(['retain', String(o.retain)]);
  }
  const s = h.fromStatistics;
  if (s && typeof s === 'object') {
    rows.push(['method', `one step from statistics, ff-frac ${s.options?.ffFrac}, attn-frac ${s.options?.attnFrac}, scoring ${s.options?.scoring}`]);
    rows.push(['forget', `${s.forgetStats?.file} (${s.forgetStats?.tokens} tokens)`]);
    rows.push(['retain', `${s.retainStats?.file} (${s.retainStats?.tokens} tokens)`]);
    for (const [name, e] of Object.entries<any>(s.evals ?? {})) rows.push([`top-1 ${name}`, `${percent(e.before.top1)} -> ${percent(e.after.top1)}`]);
  }
  const steps = h.report?.steps;
  if (Array.isArray(steps) && steps.length > 0) {
    const first = steps[0].metrics ?? {};
    const last = steps[steps.length - 1].metrics ?? {};
    for (const name of Object.keys(last)) {
      if (first[name]) rows.push([`top-1 ${name}`, `${percent(first[name].top1)} -> ${percent(last[name].top1)} (step 0 -> ${steps[steps.length - 1].step})`]);
    }
  }
  return rows;
}

export const infoCommand: Command = {
  name: 'info',
  summary: "a model's architecture and sizes, and the runtime (LibTorch, CUDA)",
  help: HELP,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs('info', argv, OPTIONS);
    const dir = requireStr(values, 'model', 'info');
    const model = await loadModel(dir, loadOptions(values));
    try {
      const c = model.config;
      const rt = runtimeInfo();
      const info = {
        model: model.dir,
        architecture: c.architecture,
        family: c.family,
        layers: c.nLayers,
        dModel: c.dModel,
        dMlp: c.dMlp,
        gatedMlp: c.gatedMlp,
        heads: c.nHeads,
        kvHeads: c.nKvHeads,
        headDim: c.headDim,
        vocab: c.vocabSize,
        maxPositions: c.maxPositions,
        parameters: model.parameterCount,
        tokenizer: model.hasTokenizer,
        device: model.device,
        // A model split over several devices: where each layer and the head are.
        ...(model.devices.length > 1 ? { devices: model.devices, placement: model.placement } : {}),
        dtype: model.dtype,
        torchVersion: rt.torchVersion,
        cudaAvailable: rt.cudaAvailable,
        cudaDeviceCount: rt.cudaDeviceCount,
      };
      const history = readExciseJson(model.dir);
      if (flag(values, 'json')) {
        io.stdout.write(JSON.stringify({ ...info, ...(history ? { excise: history } : {}) }, null, 2) + '\n');
        return 0;
      }
      const rows: Array<[string, string]> = [
        ['model', String(info.model)],
        ['architecture', `${c.architecture} (family ${c.family})`],
        ['layers', String(c.nLayers)],
        ['d_model', String(c.dModel)],
        ['d_mlp', `${c.dMlp}${c.gatedMlp ? ' (gated)' : ''}; FF neurons: ${c.nLayers * c.dMlp}`],
        ['heads', `${c.nHeads} (kv heads ${c.nKvHeads}, head dim ${c.headDim}); attention neurons: ${c.nLayers * c.nHeads * c.headDim}`],
        ['vocab', String(c.vocabSize)],
        ['positions', String(c.maxPositions)],
        ['parameters', model.parameterCount.toLocaleString('en-US')],
        ['tokenizer', model.hasTokenizer ? 'tokenizer.json' : 'none (token ids only)'],
        ['device', model.devices.length > 1 ? describePlacement(model.placement) : model.device],
        ['dtype', model.dtype],
        ['libtorch', `${rt.torchVersion} (${rt.cxxAbi} ABI)`],
        ['cuda', rt.cudaAvailable ? `available (${rt.cudaDeviceCount} device${rt.cudaDeviceCount === 1 ? '' : 's'})` : 'not available'],
      ];
      if (history) rows.push(...historyRows(history, c.nLayers * c.dMlp, c.nLayers * c.nHeads * c.headDim));
      const w = Math.max(...rows.map(([k]) => k.length));
      io.stdout.write(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
      return 0;
    } finally {
      await model.dispose();
    }
  },
};

/** "cuda:0 (layers 0-11, embedding), cuda:1 (layers 12-23, head)". */
export function describePlacement(p: ModelPlacement): string {
  return p.devices.map((device, i) => {
    const layers = p.layers.map((d, layer) => (d === i ? layer : -1)).filter((layer) => layer >= 0);
    const roles = [i === p.embedding ? 'embedding' : '', i === p.head ? 'head' : ''].filter(Boolean);
    return `${device} (layers ${layers[0]}-${layers[layers.length - 1]}${roles.length ? ', ' + roles.join(', ') : ''})`;
  }).join(', ');
}
