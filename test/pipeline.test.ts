// selectivePrune end to end on a reference model, with token-id datasets.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import {
  loadModel, scoreNeurons, selectNeurons, selectivePrune, splitDataset,
  type Dataset, type PipelineState, type PruneReport,
} from '../lib/index.js';
import { goldenDir } from './helpers/golden.js';

const modelDir = join(goldenDir, 'gpt_neox');
// Two "capabilities": documents over low token ids and over high ones.
const doc = (d: number, lo: number) => Array.from({ length: 10 + (d % 5) }, (_, t) => lo + ((d * 7 + t * 3) % 40));
const forget = Array.from({ length: 60 }, (_, d) => doc(d, 0));
const retain = Array.from({ length: 60 }, (_, d) => doc(d, 50));
const extra = Array.from({ length: 20 }, (_, d) => doc(d, 25));
const base = { forget, retain, evals: { middle: extra }, collectTokens: 300, evalTokens: 200, ffFrac: 0.05, attnFrac: 0.02 };

function metricsOf(r: PruneReport) {
  return r.steps.map((s) => ({ step: s.step, metrics: s.metrics, pruned: s.pruned }));
}

describe('selectivePrune', () => {
  it('evaluates, then collects, scores, selects, prunes and evaluates every step', async () => {
    const model = await loadModel(modelDir);
    const events = new Set<string>();
    const report = await selectivePrune(model, { ...base, steps: 2, onProgress: (e) => events.add(`${e.phase}:${e.set}`) });
    expect(report.steps.map((s) => s.step)).toEqual([0, 1, 2]);
    expect(report.stoppedBy).toBe('steps');
    // 5% of 2 x 128 FF neurons = 13 per step; 2% of 2 x 64 attention neurons = 3 per step.
    expect(report.steps[1].newlyPruned).toEqual({ ff: 13, attn: 3 });
    expect(report.totalPruned).toEqual({ ff: 26, attn: 6 });
    expect(report.steps[2].pruned.ff.reduce((a, b) => a + b)).toBe(26);
    for (const s of report.steps) expect(Object.keys(s.metrics).sort()).toEqual(['forget', 'middle', 'retain']);
    expect(events).toEqual(new Set(['evaluate:forget', 'evaluate:retain', 'evaluate:middle', 'collect:forget', 'collect:retain', 'prune:model']));
    expect(report.steps[0].metrics.forget.tokens).toBeGreaterThan(100);
    await model.dispose();
  });

  it("step 1 prunes exactly the top-scored neurons of the collection split's statistics", async () => {
    const model = await loadModel(modelDir);
    const report = await selectivePrune(model, { ...base, steps: 1 });
    const reference = await loadModel(modelDir);
    const asDs = (docs: number[][], name: string) => ({ name, source: name, async *documents() { yield* docs; } }) as unknown as Dataset;
    const f = await reference.collect(splitDataset(asDs(forget, 'forget'), { evalFraction: 0.1, seed: 0 }).collect, { maxTokens: 300 });
    const r = await reference.collect(splitDataset(asDs(retain, 'retain'), { evalFraction: 0.1, seed: 0 }).collect, { maxTokens: 300 });
    const sel = selectNeurons(scoreNeurons(f, r), { ffFrac: 0.05, attnFrac: 0.02 });
    await reference.prune(sel);
    expect(model.masks.ff.map((m) => Array.from(m))).toEqual(reference.masks.ff.map((m) => Array.from(m)));
    expect(model.masks.attn.map((m) => Array.from(m))).toEqual(reference.masks.attn.map((m) => Array.from(m)));
    expect(report.steps[1].metrics.forget).toEqual((await selectivePrune(await loadModel(modelDir), { ...base, steps: 1 })).steps[1].metrics.forget);
    await model.dispose();
    await reference.dispose();
  });

  it.each([true, false])('resuming after step 1 gives the uninterrupted result (iterative %s)', async (iterative) => {
    const full = await loadModel(modelDir);
    const states: PipelineState[] = [];
    const uninterrupted = await selectivePrune(full, { ...base, iterative, steps: 3, onStep: (s) => { states.push(JSON.parse(JSON.stringify(s))); } });
    expect(states.map((s) => s.completedSteps)).toEqual([0, 1, 2, 3]);
    const resumedModel = await loadModel(modelDir);
    const resumed = await selectivePrune(resumedModel, { ...base, iterative, steps: 3, resume: states[1] });
    expect(metricsOf(resumed)).toEqual(metricsOf(uninterrupted));
    expect(resumedModel.masks).toEqual(full.masks);
    await full.dispose();
    await resumedModel.dispose();
  });

  it('an abort stops after the current batch and leaves the model at the last finished step', async () => {
    const model = await loadModel(modelDir);
    const controller = new AbortController();
    let afterStep1: ReturnType<typeof model.masks.counts> | undefined;
    const report = await selectivePrune(model, {
      ...base, steps: 3, signal: controller.signal,
      onStep: (s) => { if (s.completedSteps === 1) afterStep1 = model.masks.counts; },
      onProgress: (e) => { if (e.step === 2 && e.phase === 'evaluate' && e.set === 'retain') controller.abort(); },
    });
    expect(report.stoppedBy).toBe('aborted');
    expect(report.steps.map((s) => s.step)).toEqual([0, 1]);
    expect(model.masks.counts).toEqual(afterStep1);
    await model.dispose();
  });

  it('random selection prunes as many neurons; stopWhen ends early', async () => {
    const model = await loadModel(modelDir);
    const random = await selectivePrune(model, { ...base, steps: 1, selection: 'random', seed: 3 });
    expect(random.steps[1].newlyPruned).toEqual({ ff: 13, attn: 3 });
    await model.restore();
    const stopped = await selectivePrune(model, { ...base, steps: 4, stopWhen: { retainTop1DropAbove: -1 } });
    expect(stopped.stoppedBy).toBe('stopWhen');
    expect(stopped.steps).toHaveLength(2);
    await model.dispose();
  });

  it('bad options', async () => {
    const model = await loadModel(modelDir);
    await expect(selectivePrune(model, { ...base, ffFrac: 1.5 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('ffFrac') });
    await expect(selectivePrune(model, { ...base, ffFrac: 0, attnFrac: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(selectivePrune(model, { ...base, steps: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('steps') });
    await expect(selectivePrune(model, { ...base, forget: [] })).rejects.toMatchObject({ code: 'ERR_DATASET_EMPTY' });
    await expect(selectivePrune(model, { ...base, evals: { forget: extra } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(selectivePrune(model, { ...base, stepz: 2 } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('stepz') });
    expect(model.masks.counts.ff).toEqual([0, 0]);
    await model.dispose();
  });
});
