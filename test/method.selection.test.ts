// The pruning method in pure TypeScript: importance statistics, scores, merging of shards, and the
// choice of neurons (top-k and the random baseline). No model is needed: statistics are built from
// explicit per-token activations written out here, and every expected number is derived from those
// raw values, never from the library's own arithmetic.
import { describe, expect, it } from 'vitest';
import {
  ActivationStats,
  ExciseError,
  countFor,
  randomSelection,
  scoreNeurons,
  selectNeurons,
  type NeuronScores,
  type NeuronSums,
} from '../lib/index.js';

const MODEL = { architecture: 'X', nLayers: 1, dMlp: 4, attnDim: 4 };
type Model = typeof MODEL;

/** Raw float64 sums of one hook point from rows[token][neuron]. */
function sumsOf(rows: number[][]): NeuronSums {
  const n = rows[0]?.length ?? 0;
  const s: NeuronSums = {
    sum: new Float64Array(n),
    sumAbs: new Float64Array(n),
    sumSq: new Float64Array(n),
    sumSqrtAbs: new Float64Array(n),
    countPositive: new Float64Array(n),
  };
  for (const row of rows) {
    expect(row.length).toBe(n);
    row.forEach((x, i) => {
      s.sum[i] += x;
      s.sumAbs[i] += Math.abs(x);
      s.sumSq[i] += x * x;
      s.sumSqrtAbs[i] += Math.sqrt(Math.abs(x));
      if (x > 0) s.countPositive[i] += 1;
    });
  }
  return s;
}

/** Statistics over `tokens` tokens; hooks maps a hook name to rows[token][neuron] (one row per token). */
function statsOf(hooks: Record<string, number[][]>, model: Model = MODEL): ActivationStats {
  const entries = Object.entries(hooks);
  const tokens = entries[0][1].length;
  for (const [, rows] of entries) expect(rows.length).toBe(tokens);
  return new ActivationStats(tokens, new Map(entries.map(([h, rows]) => [h, sumsOf(rows)])), model);
}

/** Column i of rows (one neuron's activations over tokens). */
const column = (rows: number[][], i: number) => rows.map((r) => r[i]);

function expectInvalid(fn: () => unknown, ...mentions: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ExciseError);
  expect((caught as ExciseError).code).toBe('ERR_INVALID_ARGUMENT');
  for (const m of mentions) expect((caught as ExciseError).message).toContain(m);
}

function expectClose(actual: ArrayLike<number>, expected: number[], digits = 12): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((v, i) => {
    if (Number.isNaN(v)) expect(actual[i]).toBeNaN();
    else if (!Number.isFinite(v)) expect(actual[i]).toBe(v);
    else expect(actual[i]).toBeCloseTo(v, digits);
  });
}

// Four tokens, four FF neurons. Neuron 0 has negative values (abs differs from mean), neuron 1 has
// zeros (not positive), neuron 2 is constant (std 0), neuron 3 is all zero.
const FF_ROWS = [
  [-2, 0, 3, 0],
  [0, 0, 3, 0],
  [1, 4, 3, 0],
  [3, 0, 3, 0],
];

describe('importance definitions (hand-computed)', () => {
  const stats = statsOf({ 'blocks.0.mlp.pre_out': FF_ROWS });
  const h = stats.mlp(0);

  it('counts the tokens', () => {
    expect(h.tokens).toBe(4);
    expect(stats.tokens).toBe(4);
  });

  it('mean x and abs = mean |x| differ for negative values', () => {
    // neuron 0: (-2 + 0 + 1 + 3) / 4 = 0.5;  |.|: (2 + 0 + 1 + 3) / 4 = 1.5
    expectClose(h.mean, [0.5, 1, 3, 0]);
    expectClose(h.meanAbs, [1.5, 1, 3, 0]);
  });

  it('freq = fraction of tokens with x > 0 (zero is not positive)', () => {
    // neuron 0: 1 and 3 positive -> 2/4; neuron 1: only the 4 -> 1/4; neuron 3: all zero -> 0
    expectClose(h.freq, [0.5, 0.25, 1, 0]);
  });

  it('rms = sqrt(mean x^2)', () => {
    // neuron 0: (4 + 0 + 1 + 9) / 4 = 3.5; neuron 1: 16 / 4 = 4
    expectClose(h.rms, [Math.sqrt(3.5), 2, 3, 0]);
  });

  it('std is the population standard deviation', () => {
    // neuron 0: mean 0.5, deviations -2.5, -0.5, 0.5, 2.5 -> (6.25 + 0.25 + 0.25 + 6.25) / 4 = 3.25
    // neuron 1: mean 1, deviations -1, -1, 3, -1 -> (1 + 1 + 9 + 1) / 4 = 3   (sample std would be /3)
    expectClose(h.std, [Math.sqrt(3.25), Math.sqrt(3), 0, 0]);
  });

  it('sqrt = mean sqrt|x|', () => {
    // neuron 0: (sqrt 2 + 0 + 1 + sqrt 3) / 4; neuron 1: sqrt 4 / 4 = 0.5
    expectClose(h.meanSqrtAbs, [(Math.SQRT2 + 1 + Math.sqrt(3)) / 4, 0.5, Math.sqrt(3), 0]);
  });

  it('unknown hook points are an ERR_INVALID_ARGUMENT naming the hook', () => {
    expectInvalid(() => stats.attn(0), 'blocks.0.attn.pre_out');
    expectInvalid(() => stats.mlp(1), 'blocks.1.mlp.pre_out');
  });
});

describe('scoreNeurons', () => {
  // Retain: neuron 0 is +-1 (abs 1, rms 1, std 1, freq 0.5, sqrt 1); neurons 1..3 are all zero.
  const RETAIN_ROWS = [
    [1, 0, 0, 0],
    [-1, 0, 0, 0],
  ];
  // Attention forget activations: 2 tokens, 4 neurons.
  const ATTN_ROWS = [
    [2, -1, 0, 5],
    [-4, 1, 0, 5],
  ];
  const forget = statsOf({ 'blocks.0.mlp.pre_out': FF_ROWS, 'blocks.0.attn.pre_out': [ATTN_ROWS[0], ATTN_ROWS[1], ATTN_ROWS[0], ATTN_ROWS[1]] });
  const retain = statsOf({ 'blocks.0.mlp.pre_out': RETAIN_ROWS, 'blocks.0.attn.pre_out': RETAIN_ROWS });

  it('default: abs importance, eps 1e-3 for FF and 1e-4 for attention', () => {
    const s = scoreNeurons(forget, retain);
    expect(s.ff).toHaveLength(1);
    expect(s.attn).toHaveLength(1);
    // FF mean|x| of forget: 1.5, 1, 3, 0; retain 1, 0, 0, 0
    expectClose(s.ff[0], [1.5 / (1 + 1e-3), 1 / 1e-3, 3 / 1e-3, 0]);
    // attention mean|x| of forget: (2+4)/2 = 3, 1, 0, 5
    expectClose(s.attn[0], [3 / (1 + 1e-4), 1 / 1e-4, 0, 5 / 1e-4]);
    // the eps really differs between the parts: a zero-retain neuron with I_f = 1 scores 1000 vs 10000
    expect(s.ff[0][1]).toBeCloseTo(1000, 9);
    expect(s.attn[0][1]).toBeCloseTo(10000, 9);
  });

  // Expected importance of each forget FF neuron per scoring, from FF_ROWS (see the tests above).
  const FF_IMPORTANCE: Record<string, number[]> = {
    abs: [1.5, 1, 3, 0],
    freq: [0.5, 0.25, 1, 0],
    rms: [Math.sqrt(3.5), 2, 3, 0],
    std: [Math.sqrt(3.25), Math.sqrt(3), 0, 0],
    sqrt: [(Math.SQRT2 + 1 + Math.sqrt(3)) / 4, 0.5, Math.sqrt(3), 0],
  };
  // Importance of retain neuron 0 (+1, -1) per scoring; neurons 1..3 are 0 under every scoring.
  const RETAIN0: Record<string, number> = { abs: 1, freq: 0.5, rms: 1, std: 1, sqrt: 1 };

  for (const scoring of ['abs', 'freq', 'rms', 'std', 'sqrt'] as const) {
    it(`ffScoring '${scoring}' with a custom ffEps`, () => {
      const eps = 0.25;
      const s = scoreNeurons(forget, retain, { ffScoring: scoring, ffEps: eps });
      const fI = FF_IMPORTANCE[scoring];
      expectClose(s.ff[0], [fI[0] / (RETAIN0[scoring] + eps), fI[1] / eps, fI[2] / eps, fI[3] / eps]);
      // attention keeps its defaults (abs, 1e-4)
      expectClose(s.attn[0], [3 / (1 + 1e-4), 1 / 1e-4, 0, 5 / 1e-4]);
    });
  }

  it('attnScoring and attnEps apply to attention only', () => {
    const s = scoreNeurons(forget, retain, { attnScoring: 'freq', attnEps: 0.5 });
    // attention freq of forget: neuron 0: 2 of 4 tokens > 0; neuron 1: 2 of 4; neuron 2: 0; neuron 3: 1
    // retain freq: neuron 0: 0.5, others 0
    expectClose(s.attn[0], [0.5 / (0.5 + 0.5), 0.5 / 0.5, 0, 1 / 0.5]);
    // FF untouched: abs, 1e-3
    expectClose(s.ff[0], [1.5 / (1 + 1e-3), 1 / 1e-3, 3 / 1e-3, 0]);
  });

  it('eps 0 is allowed (a zero-retain neuron scores Infinity, 0/0 is NaN)', () => {
    const s = scoreNeurons(forget, retain, { ffEps: 0 });
    expectClose(s.ff[0], [1.5, Infinity, Infinity, NaN]);
  });

  it('hooks collected for neither set give empty arrays; for only one set, an error', () => {
    const ffOnly = statsOf({ 'blocks.0.mlp.pre_out': FF_ROWS });
    const ffOnlyRetain = statsOf({ 'blocks.0.mlp.pre_out': RETAIN_ROWS });
    const s = scoreNeurons(ffOnly, ffOnlyRetain);
    expect(s.ff[0]).toHaveLength(4);
    expect(s.attn[0]).toHaveLength(0);
    expectInvalid(() => scoreNeurons(forget, ffOnlyRetain), 'blocks.0.attn.pre_out');
  });

  it('bad options are ERR_INVALID_ARGUMENT naming the option', () => {
    expectInvalid(() => scoreNeurons(forget, retain, { ffEpsilon: 1 } as never), 'ffEpsilon');
    expectInvalid(() => scoreNeurons(forget, retain, { ffScoring: 'l2' } as never), 'ffScoring');
    expectInvalid(() => scoreNeurons(forget, retain, { attnScoring: 'mean' } as never), 'attnScoring');
    expectInvalid(() => scoreNeurons(forget, retain, { ffEps: -1e-3 }), 'ffEps');
    expectInvalid(() => scoreNeurons(forget, retain, { attnEps: -1 }), 'attnEps');
    expectInvalid(() => scoreNeurons(forget, retain, { attnEps: Number.NaN }), 'attnEps');
    expectInvalid(() => scoreNeurons(forget, retain, { ffEps: '0.1' } as never), 'ffEps');
  });

  it('statistics of differently shaped models are refused', () => {
    const other = statsOf({ 'blocks.0.mlp.pre_out': RETAIN_ROWS, 'blocks.0.attn.pre_out': RETAIN_ROWS }, { ...MODEL, dMlp: 8 });
    expectInvalid(() => scoreNeurons(forget, other), 'scoreNeurons');
  });
});

describe('ActivationStats.merge', () => {
  const M2 = { architecture: 'X', nLayers: 2, dMlp: 3, attnDim: 2 };
  const A = {
    'blocks.0.mlp.pre_out': [[1, -2, 0], [0.5, 3, -1]],
    'blocks.1.mlp.pre_out': [[-0.25, 0, 2], [4, 1, 0]],
    'blocks.0.attn.pre_out': [[1, 2], [-3, 0]],
  };
  const B = {
    'blocks.0.mlp.pre_out': [[2, 2, 0], [-1, 0, 0], [0, -5, 9]],
    'blocks.1.mlp.pre_out': [[0, 0, 1], [-4, 7, 0], [1, 1, 1]],
    'blocks.0.attn.pre_out': [[0, 0], [6, -1], [0.5, 0.5]],
  };

  it('two shards merge to the statistics of the concatenated tokens', () => {
    const merged = statsOf(A, M2).merge(statsOf(B, M2));
    expect(merged.tokens).toBe(5);
    expect(merged.hookNames.slice().sort()).toEqual(Object.keys(A).sort());
    for (const hook of Object.keys(A) as (keyof typeof A)[]) {
      const all = [...A[hook], ...B[hook]];
      const d = merged.hook(hook);
      const width = all[0].length;
      const per = (f: (xs: number[]) => number) => Array.from({ length: width }, (_, i) => f(column(all, i)));
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      expect(d.tokens).toBe(5);
      expectClose(d.mean, per(mean));
      expectClose(d.meanAbs, per((xs) => mean(xs.map(Math.abs))));
      expectClose(d.rms, per((xs) => Math.sqrt(mean(xs.map((x) => x * x)))));
      expectClose(d.std, per((xs) => { const m = mean(xs); return Math.sqrt(mean(xs.map((x) => (x - m) ** 2))); }));
      expectClose(d.freq, per((xs) => xs.filter((x) => x > 0).length / xs.length));
      expectClose(d.meanSqrtAbs, per((xs) => mean(xs.map((x) => Math.sqrt(Math.abs(x))))));
    }
  });

  it('a hand-checked merged value', () => {
    // blocks.0.mlp.pre_out neuron 1 over all 5 tokens: -2, 3, 2, 0, -5 -> mean -0.4, mean|x| 2.4, freq 2/5
    const d = statsOf(A, M2).merge(statsOf(B, M2)).mlp(0);
    expect(d.mean[1]).toBeCloseTo(-0.4, 12);
    expect(d.meanAbs[1]).toBeCloseTo(2.4, 12);
    expect(d.freq[1]).toBeCloseTo(0.4, 12);
    // raw sums add exactly
    const raw = statsOf(A, M2).merge(statsOf(B, M2)).raw('blocks.0.mlp.pre_out');
    expect(Array.from(raw.countPositive)).toEqual([3, 2, 1]);
    expect(Array.from(raw.sum)).toEqual([2.5, -2, 8]);
  });

  it('merging leaves both shards unchanged', () => {
    const a = statsOf(A, M2);
    const b = statsOf(B, M2);
    a.merge(b);
    expect(a.tokens).toBe(2);
    expect(Array.from(a.raw('blocks.0.mlp.pre_out').sum)).toEqual([1.5, 1, -1]);
    expect(Array.from(b.raw('blocks.0.mlp.pre_out').sum)).toEqual([1, -3, 9]);
  });

  it('mismatched hook points or models are refused', () => {
    const a = statsOf(A, M2);
    const { 'blocks.1.mlp.pre_out': _dropped, ...fewer } = B;
    expectInvalid(() => a.merge(statsOf(fewer, M2)), 'different hook points');
    expectInvalid(() => a.merge(statsOf(B, { ...M2, architecture: 'Y' })), 'different models');
    expectInvalid(() => a.merge(statsOf(B, { ...M2, dMlp: 4 })), 'different models');
    expectInvalid(() => a.merge(statsOf(B, { ...M2, attnDim: 4 })), 'different models');
    const wider = { ...B, 'blocks.0.attn.pre_out': [[0, 0, 1], [6, -1, 1], [0.5, 0.5, 1]] };
    expectInvalid(() => a.merge(statsOf(wider, M2)), 'different widths');
    expectInvalid(() => a.merge({} as never), 'stats.merge');
  });
});

const f64 = (...xs: number[]) => Float64Array.from(xs);
const scoresOf = (ff: number[][], attn: number[][] = ff.map(() => [])): NeuronScores => ({
  ff: ff.map((l) => Float64Array.from(l)),
  attn: attn.map((l) => Float64Array.from(l)),
});

describe('selectNeurons', () => {
  it('global scope takes the top round(frac * total) across layers, even all from one layer', () => {
    const s = scoresOf([[1, 2, 3, 4], [10, 20, 30, 40], [0, 0, 0, 0]]);
    // 12 neurons, 0.25 -> 3, all in layer 1
    expect(selectNeurons(s, { ffFrac: 0.25, attnFrac: 0 }).ff).toEqual([[], [1, 2, 3], []]);
    // 0.5 -> 6: all of layer 1, then 4 and 3 of layer 0
    expect(selectNeurons(s, { ffFrac: 0.5, attnFrac: 0 }).ff).toEqual([[2, 3], [0, 1, 2, 3], []]);
  });

  it('layer scope takes the top fraction of each layer', () => {
    const s = scoresOf([[1, 2, 3, 4], [10, 20, 30, 40], [0, 0, 0, 0]]);
    expect(selectNeurons(s, { ffFrac: 0.25, attnFrac: 0, scope: 'layer' }).ff).toEqual([[3], [3], [0]]);
    expect(selectNeurons(s, { ffFrac: 0.5, attnFrac: 0, scope: 'layer' }).ff).toEqual([[2, 3], [2, 3], [0, 1]]);
  });

  it('global rounds once over the total, layer scope once per layer', () => {
    // 3 layers of 5: 0.1 -> global round(1.5) = 2, per layer round(0.5) = 1 each
    const s = scoresOf([[5, 0, 0, 0, 0], [0, 4, 0, 0, 0], [0, 0, 3, 0, 0]]);
    expect(countFor(0.1, 15)).toBe(2);
    expect(countFor(0.1, 5)).toBe(1);
    expect(selectNeurons(s, { ffFrac: 0.1, attnFrac: 0 }).ff).toEqual([[0], [1], []]);
    expect(selectNeurons(s, { ffFrac: 0.1, attnFrac: 0, scope: 'layer' }).ff).toEqual([[0], [1], [2]]);
  });

  it('the result lists are sorted ascending, not by score', () => {
    const s = scoresOf([[1, 9, 3, 7, 5]]);
    expect(selectNeurons(s, { ffFrac: 0.6, attnFrac: 0 }).ff).toEqual([[1, 3, 4]]);
  });

  it('ties are broken by lower layer, then lower index', () => {
    const s = scoresOf([[1, 5, 1, 5], [5, 1, 5, 1], [5, 5, 5, 5]]);
    // 12 neurons, 0.25 -> 3 of the eight 5s: (0,1), (0,3), (1,0)
    expect(selectNeurons(s, { ffFrac: 0.25, attnFrac: 0 }).ff).toEqual([[1, 3], [0], []]);
    // layer scope: 1 per layer, lowest index among the layer's best
    expect(selectNeurons(s, { ffFrac: 0.25, attnFrac: 0, scope: 'layer' }).ff).toEqual([[1], [0], [0]]);
  });

  it('NaN scores are never chosen before finite ones (Infinity first)', () => {
    const s = scoresOf([[Number.NaN, Number.NaN, 0.1], [Number.NaN, 0.05, Infinity]]);
    // 6 neurons, 0.5 -> 3: Infinity, 0.1, 0.05 even though NaNs sit at lower layers/indices
    expect(selectNeurons(s, { ffFrac: 0.5, attnFrac: 0 }).ff).toEqual([[2], [1, 2]]);
    // 4: the finite ones, then the first NaN by layer/index
    expect(selectNeurons(s, { ffFrac: 4 / 6, attnFrac: 0 }).ff).toEqual([[0, 2], [1, 2]]);
    // layer scope: layer 0 has one finite neuron
    expect(selectNeurons(s, { ffFrac: 1 / 3, attnFrac: 0, scope: 'layer' }).ff).toEqual([[2], [2]]);
  });

  it('pruned neurons are skipped; the count is of all neurons, capped by what is left', () => {
    const s = scoresOf([[9, 8, 7, 6], [5, 4, 3, 2]]);
    const pruned = { ff: [Uint8Array.of(1, 1, 0, 0), Uint8Array.of(0, 0, 0, 0)], attn: [] };
    // 0.5 of all 8 -> 4 (of the 6 left it would be 3)
    expect(selectNeurons(s, { ffFrac: 0.5, attnFrac: 0, pruned }).ff).toEqual([[2, 3], [0, 1]]);
    // 1.0 -> 8, capped at the 6 left
    expect(selectNeurons(s, { ffFrac: 1, attnFrac: 0, pruned }).ff).toEqual([[2, 3], [0, 1, 2, 3]]);
    // layer scope: layer 0 has 2 left, 0.75 of 4 -> 3 capped to 2; layer 1 -> 3
    expect(selectNeurons(s, { ffFrac: 0.75, attnFrac: 0, scope: 'layer', pruned }).ff).toEqual([[2, 3], [0, 1, 2]]);
    // without masks the top 4 are all of layer 0
    expect(selectNeurons(s, { ffFrac: 0.5, attnFrac: 0 }).ff).toEqual([[0, 1, 2, 3], []]);
  });

  it('attention masks apply to attention, FF masks to FF', () => {
    const s = scoresOf([[3, 2, 1]], [[3, 2, 1]]);
    const pruned = { ff: [Uint8Array.of(1, 0, 0)], attn: [Uint8Array.of(0, 1, 0)] };
    const sel = selectNeurons(s, { ffFrac: 1 / 3, attnFrac: 2 / 3, pruned });
    expect(sel.ff).toEqual([[1]]);
    expect(sel.attn).toEqual([[0, 2]]);
  });

  it('FF and attention use their own fractions', () => {
    const s = scoresOf([[4, 3, 2, 1]], [[1, 2, 3, 4]]);
    const sel = selectNeurons(s, { ffFrac: 0.25, attnFrac: 0.75 });
    expect(sel.ff).toEqual([[0]]);
    expect(sel.attn).toEqual([[1, 2, 3]]);
  });

  describe("attnUnit 'head'", () => {
    // headDim 2, 3 heads per layer. Head means: layer 0: 1, 5, 2; layer 1: 3, 0, 2.
    // (By max instead of mean, layer 1's best head would be head 2 with its 4.)
    const attn = [
      [1, 1, 0, 10, 2, 2],
      [3, 3, 0, 0, 4, 0],
    ];
    const s = scoresOf([[], []], attn);

    it('global: whole heads by mean score', () => {
      // 6 heads, 1/3 -> 2: L0h1 (5), L1h0 (3)
      expect(selectNeurons(s, { ffFrac: 0, attnFrac: 1 / 3, attnUnit: 'head', headDim: 2 }).attn).toEqual([[2, 3], [0, 1]]);
      // the neuron unit picks differently: 12 neurons, 1/6 -> 2: 10 (L0 #3) and 4 (L1 #4)
      expect(selectNeurons(s, { ffFrac: 0, attnFrac: 1 / 6 }).attn).toEqual([[3], [4]]);
    });

    it('layer scope: the best head of each layer', () => {
      expect(selectNeurons(s, { ffFrac: 0, attnFrac: 1 / 3, attnUnit: 'head', headDim: 2, scope: 'layer' }).attn).toEqual([[2, 3], [0, 1]]);
      expect(selectNeurons(s, { ffFrac: 0, attnFrac: 2 / 3, attnUnit: 'head', headDim: 2, scope: 'layer' }).attn).toEqual([[2, 3, 4, 5], [0, 1, 4, 5]]);
    });

    it('a head with any pruned neuron counts as pruned; ties by lower layer', () => {
      const pruned = { ff: [], attn: [Uint8Array.of(0, 0, 0, 1, 0, 0), Uint8Array.of(0, 0, 0, 0, 0, 0)] };
      // L0h1 is out: L1h0 (3), then L0h2 and L1h2 tie at 2 -> layer 0
      expect(selectNeurons(s, { ffFrac: 0, attnFrac: 1 / 3, attnUnit: 'head', headDim: 2, pruned }).attn).toEqual([[4, 5], [0, 1]]);
    });

    it('needs a positive integer headDim', () => {
      expectInvalid(() => selectNeurons(s, { ffFrac: 0, attnFrac: 0.5, attnUnit: 'head' }), 'headDim');
      expectInvalid(() => selectNeurons(s, { ffFrac: 0, attnFrac: 0.5, attnUnit: 'head', headDim: 0 }), 'headDim');
      expectInvalid(() => selectNeurons(s, { ffFrac: 0, attnFrac: 0.5, attnUnit: 'head', headDim: 1.5 }), 'headDim');
    });
  });

  it('a fraction of 0 selects nothing', () => {
    const s = scoresOf([[1, 2], [3, 4], [5, 6]], [[1, 2], [3, 4], [5, 6]]);
    const sel = selectNeurons(s, { ffFrac: 0, attnFrac: 0 });
    expect(sel.ff).toEqual([[], [], []]);
    expect(sel.attn).toEqual([[], [], []]);
    expect(selectNeurons(s, { ffFrac: 0, attnFrac: 0, scope: 'layer' }).ff).toEqual([[], [], []]);
    // while a small fraction does select
    expect(selectNeurons(s, { ffFrac: 0.1, attnFrac: 0 }).ff).toEqual([[], [], [1]]);
  });

  it('bad options are ERR_INVALID_ARGUMENT naming the option', () => {
    const s = scoresOf([[1, 2, 3, 4]], [[1, 2, 3, 4]]);
    expectInvalid(() => selectNeurons(s, { ffFrac: -0.01, attnFrac: 0 }), 'ffFrac');
    expectInvalid(() => selectNeurons(s, { ffFrac: 1.01, attnFrac: 0 }), 'ffFrac');
    expectInvalid(() => selectNeurons(s, { ffFrac: Number.NaN, attnFrac: 0 }), 'ffFrac');
    expectInvalid(() => selectNeurons(s, { ffFrac: '0.5', attnFrac: 0 } as never), 'ffFrac');
    expectInvalid(() => selectNeurons(s, { ffFrac: 0, attnFrac: -1 }), 'attnFrac');
    expectInvalid(() => selectNeurons(s, { ffFrac: 0, attnFrac: 2 }), 'attnFrac');
    expectInvalid(() => selectNeurons(s, { ffFrac: 0 } as never), 'attnFrac');
    expectInvalid(() => selectNeurons(s, { ffFrac: 0, attnFrac: 0, scope: 'model' } as never), 'scope');
    expectInvalid(() => selectNeurons(s, { ffFrac: 0, attnFrac: 0, attnUnit: 'layer' } as never), 'attnUnit');
    expectInvalid(() => selectNeurons(s, { ffFrac: 0, attnFrac: 0, topK: 3 } as never), 'topK');
    expectInvalid(() => selectNeurons({ ff: f64(1) } as never, { ffFrac: 0, attnFrac: 0 }), 'selectNeurons');
    // the bounds themselves are fine
    expect(selectNeurons(s, { ffFrac: 1, attnFrac: 0 }).ff).toEqual([[0, 1, 2, 3]]);
  });
});

describe('countFor', () => {
  it('rounds frac * total to the nearest whole neuron', () => {
    expect(countFor(0.5, 3)).toBe(2);
    expect(countFor(0.1, 12)).toBe(1);
    expect(countFor(0.3, 10)).toBe(3);
    expect(countFor(0.01, 10)).toBe(0);
    expect(countFor(1, 7)).toBe(7);
    expect(countFor(0, 7)).toBe(0);
  });
});

describe('randomSelection', () => {
  const model = { config: { nLayers: 4, dMlp: 10, nHeads: 3, headDim: 2 } };
  const total = (sel: number[][]) => sel.reduce((n, l) => n + l.length, 0);
  const wellFormed = (sel: number[][], width: number) => {
    expect(sel).toHaveLength(4);
    for (const l of sel) {
      expect(new Set(l).size).toBe(l.length);
      for (const i of l) expect(Number.isInteger(i) && i >= 0 && i < width).toBe(true);
      expect(l).toEqual(l.slice().sort((a, b) => a - b));
    }
  };

  it('selects as many as countFor for each part', () => {
    // FF: 40 neurons * 0.15 = 6; attention: 24 * 0.3 = 7.2 -> 7
    const sel = randomSelection(model, { ffFrac: 0.15, attnFrac: 0.3, seed: 1 });
    expect(total(sel.ff)).toBe(countFor(0.15, 40));
    expect(total(sel.ff)).toBe(6);
    expect(total(sel.attn)).toBe(countFor(0.3, 24));
    expect(total(sel.attn)).toBe(7);
    wellFormed(sel.ff, 10);
    wellFormed(sel.attn, 6);
    // the same counts as selectNeurons in global scope
    const scores = scoresOf(Array.from({ length: 4 }, (_, l) => Array.from({ length: 10 }, (_, i) => l * 10 + i)), Array.from({ length: 4 }, () => [1, 2, 3, 4, 5, 6]));
    const top = selectNeurons(scores, { ffFrac: 0.15, attnFrac: 0.3 });
    expect(total(top.ff)).toBe(total(sel.ff));
    expect(total(top.attn)).toBe(total(sel.attn));
  });

  it('is reproducible for a seed and differs for another', () => {
    const a = randomSelection(model, { ffFrac: 0.2, attnFrac: 0.25, seed: 42 });
    const b = randomSelection(model, { ffFrac: 0.2, attnFrac: 0.25, seed: 42 });
    const c = randomSelection(model, { ffFrac: 0.2, attnFrac: 0.25, seed: 43 });
    expect(b).toEqual(a);
    expect(c.ff).not.toEqual(a.ff);
    expect(c.attn).not.toEqual(a.attn);
    expect(total(c.ff)).toBe(total(a.ff));
  });

  it('excludes pruned neurons, still counting all neurons (capped by what is left)', () => {
    const pruned = {
      ff: [Uint8Array.of(1, 1, 1, 1, 1, 0, 0, 0, 0, 0), new Uint8Array(10), new Uint8Array(10), new Uint8Array(10)],
      attn: [Uint8Array.of(1, 1, 1, 1, 1, 1), new Uint8Array(6), new Uint8Array(6), new Uint8Array(6)],
    };
    for (let seed = 0; seed < 50; seed++) {
      const sel = randomSelection(model, { ffFrac: 0.25, attnFrac: 0.5, seed, pruned });
      expect(total(sel.ff)).toBe(10);
      expect(total(sel.attn)).toBe(12);
      for (const i of sel.ff[0]) expect(i).toBeGreaterThanOrEqual(5);
      expect(sel.attn[0]).toEqual([]);
    }
    // everything: only the unpruned ones (35 FF, 18 attention)
    const all = randomSelection(model, { ffFrac: 1, attnFrac: 1, seed: 7, pruned });
    expect(total(all.ff)).toBe(35);
    expect(all.ff[0]).toEqual([5, 6, 7, 8, 9]);
    expect(total(all.attn)).toBe(18);
    expect(all.attn[0]).toEqual([]);
  });

  it('spreads over all layers and neurons across seeds (fixed seeds, deterministic)', () => {
    const perLayer = new Array(4).fill(0);
    const perNeuron = new Array(40).fill(0);
    const seeds = 200;
    for (let seed = 0; seed < seeds; seed++) {
      const sel = randomSelection(model, { ffFrac: 0.1, attnFrac: 0, seed });
      sel.ff.forEach((l, layer) => l.forEach((i) => { perLayer[layer]++; perNeuron[layer * 10 + i]++; }));
      expect(total(sel.attn)).toBe(0);
    }
    // 200 seeds * 4 picks = 800; each layer expects 200, each neuron 20
    expect(perLayer.reduce((a, b) => a + b, 0)).toBe(800);
    for (const n of perLayer) {
      expect(n).toBeGreaterThan(120);
      expect(n).toBeLessThan(280);
    }
    for (const n of perNeuron) expect(n).toBeGreaterThan(0);
  });

  it('bad options are ERR_INVALID_ARGUMENT naming the option', () => {
    expectInvalid(() => randomSelection(model, { ffFrac: 1.5, attnFrac: 0, seed: 1 }), 'ffFrac');
    expectInvalid(() => randomSelection(model, { ffFrac: 0, attnFrac: -0.5, seed: 1 }), 'attnFrac');
    expectInvalid(() => randomSelection(model, { ffFrac: 0, attnFrac: 0, seed: -1 }), 'seed');
    expectInvalid(() => randomSelection(model, { ffFrac: 0, attnFrac: 0, seed: 1.5 }), 'seed');
  });
});
