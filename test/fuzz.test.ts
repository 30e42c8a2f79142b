// The fuzz test (test/fuzz): 1,000 seeded cases of corrupted model folders and bad calls, each
// in a child process that a crash or hang cannot take the test down with. Every case must end in
// success or an ExciseError with a documented code. Set EXCISE_FUZZ_SEED to explore other seeds;
// a failure prints the command that replays its case.
import { describe, expect, it } from 'vitest';
import { formatFailures, runFuzz } from './fuzz/run.js';

const seed = Number(process.env.EXCISE_FUZZ_SEED ?? 1);
const count = Number(process.env.EXCISE_FUZZ_COUNT ?? 1000);

describe('fuzz', () => {
  it(`seed ${seed}, ${count} cases: no crash, no hang, no uncoded error`, async () => {
    const s = await runFuzz({ seed, count, jobs: 2 });
    console.log(`fuzz seed ${seed}: ${JSON.stringify(s.counts)} by kind ${JSON.stringify(s.byKind)}`);
    const accepted = formatFailures(s, ['accepted-corrupt']);
    if (accepted) console.log(`safetensors files accepted though corrupt (the reader's to refuse):\n${accepted}`);
    expect(s.results.length).toBe(count);
    expect(formatFailures(s, ['crash', 'hang', 'uncoded'])).toBe('');
    expect(s.counts.crash + s.counts.hang + s.counts.uncoded).toBe(0);
    // The cases reach the code: most end in a coded error, and some load and run.
    expect(s.counts.coded).toBeGreaterThan(count / 3);
    expect(s.counts.ok).toBeGreaterThan(count / 20);
  }, 600_000);
});
