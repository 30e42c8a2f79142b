/**
 * Choosing which neurons to prune: the top fraction by score, globally across layers (as the
 * reference does) or per layer, FF and attention neurons each with their own fraction; already
 * pruned neurons are never chosen again. And the baseline: as many neurons chosen at random.
 */
import { invalidArgument, checkKeys, positiveInt, nonNegativeInt, checkFraction } from '../errors.js';
import type { NeuronScores } from './scoring.js';

/** Neurons per layer: FF indices into dMlp; attention indices head * headDim + dim. */
export interface Selection {
  ff: number[][];
  attn: number[][];
}

/** Which neurons are pruned already (1 = pruned), per layer; as model.masks gives them. */
export interface PrunedMasks {
  ff: ArrayLike<number>[];
  attn: ArrayLike<number>[];
}

export interface SelectOptions {
  /** Fraction of all FF neurons of the model to select, in [0, 1]. */
  ffFrac: number;
  /** Fraction of all attention neurons to select, in [0, 1]. */
  attnFrac: number;
  /** 'global' (default): the top fraction across all layers; 'layer': the top fraction of each layer. */
  scope?: 'global' | 'layer';
  /** 'neuron' (default) or 'head': score heads by their neurons' mean score and select whole heads. */
  attnUnit?: 'neuron' | 'head';
  /** Needed for attnUnit 'head'. */
  headDim?: number;
  /** Neurons to leave out (already pruned). */
  pruned?: PrunedMasks;
}

/** How many of `total` a fraction selects (rounded to the nearest whole neuron). */
export function countFor(frac: number, total: number): number {
  return Math.round(frac * total);
}

interface Candidate {
  layer: number;
  index: number;
  score: number;
}

// Highest score first; ties by layer, then index (deterministic). NaN sorts last.
function byScore(a: Candidate, b: Candidate): number {
  const sa = Number.isNaN(a.score) ? -Infinity : a.score;
  const sb = Number.isNaN(b.score) ? -Infinity : b.score;
  return sb - sa || a.layer - b.layer || a.index - b.index;
}

function isPruned(masks: ArrayLike<number>[] | undefined, layer: number, index: number): boolean {
  return !!masks && !!masks[layer] && masks[layer][index] === 1;
}

function selectPart(layerScores: Float64Array[], frac: number, scope: 'global' | 'layer', pruned: ArrayLike<number>[] | undefined): number[][] {
  const out: number[][] = layerScores.map(() => []);
  const groups: Candidate[][] = scope === 'global' ? [[]] : layerScores.map(() => []);
  layerScores.forEach((scores, layer) => {
    for (let i = 0; i < scores.length; i++) {
      if (isPruned(pruned, layer, i)) continue;
      groups[scope === 'global' ? 0 : layer].push({ layer, index: i, score: scores[i] });
    }
  });
  const totals = scope === 'global' ? [layerScores.reduce((n, s) => n + s.length, 0)] : layerScores.map((s) => s.length);
  groups.forEach((candidates, g) => {
    const k = Math.min(countFor(frac, totals[g]), candidates.length);
    candidates.sort(byScore);
    for (const c of candidates.slice(0, k)) out[c.layer].push(c.index);
  });
  for (const list of out) list.sort((a, b) => a - b);
  return out;
}

function selectHeads(layerScores: Float64Array[], frac: number, scope: 'global' | 'layer', headDim: number, pruned: ArrayLike<number>[] | undefined): number[][] {
  // A head is a unit of headDim neurons; its score is the mean of its neurons' scores. A head any of
  // whose neurons is pruned counts as pruned.
  const headScores = layerScores.map((scores) => {
    const heads = new Float64Array(scores.length / headDim);
    for (let h = 0; h < heads.length; h++) {
      let sum = 0;
      for (let d = 0; d < headDim; d++) sum += scores[h * headDim + d];
      heads[h] = sum / headDim;
    }
    return heads;
  });
  const headPruned = pruned?.map((mask) => {
    const heads = new Uint8Array(mask.length / headDim);
    for (let h = 0; h < heads.length; h++) for (let d = 0; d < headDim; d++) if (mask[h * headDim + d] === 1) heads[h] = 1;
    return heads;
  });
  const heads = selectPart(headScores, frac, scope, headPruned);
  return heads.map((list) => list.flatMap((h) => Array.from({ length: headDim }, (_, d) => h * headDim + d)));
}

export function selectNeurons(scores: NeuronScores, options: SelectOptions): Selection {
  if (!scores || !Array.isArray(scores.ff) || !Array.isArray(scores.attn)) throw invalidArgument('selectNeurons(scores)', 'scores from scoreNeurons()', scores);
  if (options === null || typeof options !== 'object') throw invalidArgument('selectNeurons(scores, options)', '{ ffFrac, attnFrac, ... }', options);
  const allowed = ['ffFrac', 'attnFrac', 'scope', 'attnUnit', 'headDim', 'pruned'];
  checkKeys('selectNeurons', options, allowed);
  const ffFrac = checkFraction('ffFrac', options.ffFrac, true);
  const attnFrac = checkFraction('attnFrac', options.attnFrac, true);
  const scope = options.scope ?? 'global';
  if (scope !== 'global' && scope !== 'layer') throw invalidArgument('scope', "'global' or 'layer'", scope);
  const attnUnit = options.attnUnit ?? 'neuron';
  if (attnUnit !== 'neuron' && attnUnit !== 'head') throw invalidArgument('attnUnit', "'neuron' or 'head'", attnUnit);
  const ff = selectPart(scores.ff, ffFrac, scope, options.pruned?.ff);
  let attn: number[][];
  if (attnUnit === 'head') {
    const hd = options.headDim;
    positiveInt('headDim (needed for attnUnit "head")', hd);
    attn = selectHeads(scores.attn, attnFrac, scope, hd!, options.pruned?.attn);
  } else {
    attn = selectPart(scores.attn, attnFrac, scope, options.pruned?.attn);
  }
  return { ff, attn };
}

/** mulberry32: a small, fast, seedable PRNG (uniform in [0, 1)). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RandomSelectionOptions {
  ffFrac: number;
  attnFrac: number;
  seed: number;
  pruned?: PrunedMasks;
}

/**
 * The baseline: as many neurons as selectNeurons would pick (global scope), chosen uniformly at
 * random among the unpruned ones, reproducibly for a seed.
 */
export function randomSelection(model: { config: { nLayers: number; dMlp: number; nHeads: number; headDim: number } }, options: RandomSelectionOptions): Selection {
  if (options === null || typeof options !== 'object') throw invalidArgument('randomSelection(model, options)', '{ ffFrac, attnFrac, seed }', options);
  const allowed = ['ffFrac', 'attnFrac', 'seed', 'pruned'];
  checkKeys('randomSelection', options, allowed);
  const ffFrac = checkFraction('ffFrac', options.ffFrac, true);
  const attnFrac = checkFraction('attnFrac', options.attnFrac, true);
  nonNegativeInt('seed', options.seed);
  const { nLayers, dMlp, nHeads, headDim } = model.config;
  const rand = seededRandom(options.seed);
  // Random scores + the same top-k machinery = a uniform random subset of the right size.
  const randomScores = (width: number) => Array.from({ length: nLayers }, () => Float64Array.from({ length: width }, rand));
  const ff = selectPart(randomScores(dMlp), ffFrac, 'global', options.pruned?.ff);
  const attn = selectPart(randomScores(nHeads * headDim), attnFrac, 'global', options.pruned?.attn);
  return { ff, attn };
}
