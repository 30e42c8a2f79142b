// Evidence that the method works (slow tier: about a minute on 2 CPU cores; `npm test` runs it).
// On the bundled demo model: pruning by the forget/retain ratio lowers Python top-1 accuracy far
// more than English prose top-1, and far more than pruning as many neurons at random.
import { describe, expect, it } from 'vitest';
import { runDemo } from '../../bench/evidence.js';

const drop = (r: Awaited<ReturnType<typeof runDemo>>, set: string) =>
  r.steps[0].metrics[set].top1 - r.steps[r.steps.length - 1].metrics[set].top1;

describe('selective pruning on the bundled model (forget Python, retain English)', () => {
  it('removes Python far more than prose, and far more than random pruning does', async () => {
    const selective = await runDemo('selective', 0.02, 0, 10);
    const random = await runDemo('random', 0.02, 0, 10);
    expect(random.totalPruned).toEqual(selective.totalPruned);
    const s = { python: drop(selective, 'forget'), prose: drop(selective, 'retain') };
    const r = { python: drop(random, 'forget'), prose: drop(random, 'retain') };
    console.log(`top-1 drop, selective: Python ${(100 * s.python).toFixed(1)} points, prose ${(100 * s.prose).toFixed(1)}; ` +
      `random: Python ${(100 * r.python).toFixed(1)}, prose ${(100 * r.prose).toFixed(1)}`);
    // The model knows Python to begin with.
    expect(selective.steps[0].metrics.forget.top1).toBeGreaterThan(0.2);
    // Python falls by a large absolute margin ...
    expect(s.python).toBeGreaterThan(0.1);
    // ... far more than prose ...
    expect(s.python).toBeGreaterThan(3 * Math.max(s.prose, 0.01));
    // ... and far more than when as many neurons are pruned at random.
    expect(s.python).toBeGreaterThan(3 * Math.max(r.python, 0.01));
  }, 600_000);
});
