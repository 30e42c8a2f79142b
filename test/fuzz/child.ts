/**
 * The fuzz child: runs cases [from, to) of a seed in this one process (the addon and LibTorch load
 * once), printing a line before and after each so that the parent (run.ts) can pin a crash or a
 * hang on the case in progress. Usage: child.ts <seed> <from> <to> <scratch>
 */
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, type Model } from '../../lib/index.js';
import { copyFixture, loadAndProbe, makeCase, runCase, type CaseContext } from './cases.js';
import { goldenDir, TOKENIZER_FILE } from './paths.js';

const [seed, from, to] = process.argv.slice(2, 5).map(Number);
const scratch = process.argv[5];
let current = -1;

function say(line: string): void {
  process.stdout.write(line + '\n');
}

// A rejection nobody handles, or an exception escaping to the event loop, counts against the
// case in progress (the library must never leave one behind).
process.on('unhandledRejection', (err) => {
  say(`unhandled ${current} ${JSON.stringify(String((err as Error)?.stack ?? err).split('\n').slice(0, 3).join(' | '))}`);
});
process.on('uncaughtException', (err) => {
  say(`uncaught ${current} ${JSON.stringify(String(err?.stack ?? err).split('\n').slice(0, 3).join(' | '))}`);
});

let sharedModel: Promise<Model> | undefined;
const baselines = new Map<string, Promise<Float32Array>>();

async function main(): Promise<void> {
  const sharedDir = join(scratch, `shared-${process.pid}`);
  rmSync(sharedDir, { recursive: true, force: true });
  copyFixture('llama', sharedDir);
  cpSync(TOKENIZER_FILE, join(sharedDir, 'tokenizer.json'));
  const ctxBase = {
    shared: () => (sharedModel ??= loadModel(sharedDir)),
    baseline: (family: string) => {
      if (!baselines.has(family)) baselines.set(family, loadAndProbe(join(goldenDir, family)));
      return baselines.get(family)!;
    },
  };
  say('ready');
  for (let i = from; i < to; i++) {
    current = i;
    const dir = join(scratch, `case-${i}`);
    mkdirSync(dir, { recursive: true });
    const c = makeCase(seed, i);
    say(`start ${i} ${c.kind}`);
    const ctx: CaseContext = { dir, ...ctxBase, note: (label) => say(`note ${i} ${JSON.stringify(label)}`) };
    const out = await runCase(c, ctx);
    // A shared model some case disposed is replaced by a fresh one.
    if (sharedModel) {
      const m = await sharedModel.catch(() => undefined);
      if (!m || (m as unknown as { disposed: boolean }).disposed) sharedModel = undefined;
    }
    rmSync(dir, { recursive: true, force: true });
    say(`done ${i} ${JSON.stringify({ kind: c.kind, label: c.label, ...out })}`);
  }
  current = -1;
  if (sharedModel) await (await sharedModel).dispose();
}

main().then(
  () => process.exit(0),
  (err) => {
    say(`fatal ${current} ${JSON.stringify(String(err?.stack ?? err))}`);
    process.exit(3);
  },
);
