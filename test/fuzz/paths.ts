// Fixture paths without test/helpers/golden.ts (which imports vitest, absent in the fuzz child).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const fixturesDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
export const goldenDir = join(fixturesDir, 'hf-golden');
export const TOKENIZER_FILE = join(fixturesDir, 'tokenizer', 'tokenizer.json');
