/**
 * Neuron scores: how much more a neuron matters to the forget set than to the retain set.
 *
 *   importance I(neuron, dataset), by the chosen statistic over that dataset's tokens:
 *     abs   mean |x|            (default)
 *     freq  fraction of tokens with x > 0
 *     rms   sqrt(mean x^2)
 *     std   population standard deviation of x
 *     sqrt  mean sqrt|x|
 *   score = I(forget) / (I(retain) + eps)
 *
 * eps defaults to 1e-3 for FF neurons and 1e-4 for attention neurons (the reference defaults).
 */
import { ExciseError, invalidArgument, checkKeys } from '../errors.js';
import type { ActivationStats, NeuronStats } from './stats.js';

/** Each scoring and the derived statistic (of ActivationStats) it reads: Scoring, SCORINGS and importance() all come from this one table. */
const SCORING_STATISTIC = {
  abs: 'meanAbs',
  freq: 'freq',
  rms: 'rms',
  std: 'std',
  sqrt: 'meanSqrtAbs',
} as const satisfies Record<string, Exclude<keyof NeuronStats, 'tokens'>>;

export type Scoring = keyof typeof SCORING_STATISTIC;
export const SCORINGS: readonly Scoring[] = Object.keys(SCORING_STATISTIC) as Scoring[];

export interface ScoreOptions {
  ffScoring?: Scoring;
  attnScoring?: Scoring;
  ffEps?: number;
  attnEps?: number;
}

/** Per layer, one score per neuron (attention: index head * headDim + dim). Empty arrays where not collected. */
export interface NeuronScores {
  ff: Float64Array[];
  attn: Float64Array[];
}

export function importance(stats: NeuronStats, scoring: Scoring): Float64Array {
  return stats[SCORING_STATISTIC[scoring]];
}

function checkScoring(name: string, v: unknown): Scoring {
  if (!SCORINGS.includes(v as Scoring)) throw invalidArgument(name, `one of ${SCORINGS.join(', ')}`, v);
  return v as Scoring;
}

function checkEps(name: string, v: unknown): number {
  if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) throw invalidArgument(name, 'a finite number >= 0', v);
  return v;
}

export function scoreNeurons(forget: ActivationStats, retain: ActivationStats, options: ScoreOptions = {}): NeuronScores {
  if (options === null || typeof options !== 'object') throw invalidArgument('scoreNeurons(forget, retain, options)', 'an options object', options);
  if (typeof forget?.hook !== 'function' || typeof retain?.hook !== 'function') {
    throw invalidArgument('scoreNeurons(forget, retain)', 'two ActivationStats (from model.collect)', typeof forget?.hook !== 'function' ? forget : retain);
  }
  const allowed = ['ffScoring', 'attnScoring', 'ffEps', 'attnEps'];
  checkKeys('scoreNeurons', options, allowed);
  const ffScoring = checkScoring('ffScoring', options.ffScoring ?? 'abs');
  const attnScoring = checkScoring('attnScoring', options.attnScoring ?? 'abs');
  const ffEps = checkEps('ffEps', options.ffEps ?? 1e-3);
  const attnEps = checkEps('attnEps', options.attnEps ?? 1e-4);
  if (forget.model.nLayers !== retain.model.nLayers || forget.model.dMlp !== retain.model.dMlp || forget.model.attnDim !== retain.model.attnDim) {
    throw new ExciseError('ERR_INVALID_ARGUMENT', 'scoreNeurons: forget and retain statistics come from differently shaped models');
  }
  const nLayers = forget.model.nLayers;
  const scores: NeuronScores = { ff: [], attn: [] };
  for (let l = 0; l < nLayers; l++) {
    for (const [site, out, scoring, eps] of [
      ['mlp', scores.ff, ffScoring, ffEps],
      ['attn', scores.attn, attnScoring, attnEps],
    ] as const) {
      const hook = `blocks.${l}.${site}.pre_out`;
      if (!forget.has(hook) || !retain.has(hook)) {
        if (forget.has(hook) !== retain.has(hook)) {
          throw new ExciseError('ERR_INVALID_ARGUMENT', `scoreNeurons: ${hook} was collected for only one of forget and retain`);
        }
        out.push(new Float64Array(0));
        continue;
      }
      const f = importance(forget.hook(hook), scoring);
      const r = importance(retain.hook(hook), scoring);
      out.push(f.map((v, i) => v / (r[i] + eps)));
    }
  }
  return scores;
}
