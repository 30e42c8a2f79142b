// Differential test: readSafetensors against the official safetensors reader, file for file.
// The corpus (valid files written by the official library, its own tests' malformed buffers, and
// seeded mutations of both) and the official verdicts come from
// scripts/fixtures/make_safetensors_diff.py; no Python runs here.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExciseError } from '../lib/errors.js';
import { readSafetensors } from '../lib/safetensors.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'safetensors-diff');

interface Case {
  name: string;
  at: [number, number];
  official: 'accept' | 'refuse';
  error?: string;
  /** [name, dtype, shape as decimal strings, sha256 of the bytes (first 32 hex digits)], by name. */
  tensors?: [string, string, string[], string][];
  metadata?: Record<string, string> | null;
  dup?: boolean;
  unsupported?: boolean;
}

const manifest = JSON.parse(gunzipSync(readFileSync(join(FIXTURES, 'manifest.json.gz'))).toString('utf8')) as {
  safetensors: string;
  cases: Case[];
};
const corpus = gunzipSync(readFileSync(join(FIXTURES, 'corpus.bin.gz')));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'excise-st-diff-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function digest(view: ArrayBufferView): string {
  return createHash('sha256').update(Buffer.from(view.buffer, view.byteOffset, view.byteLength)).digest('hex').slice(0, 32);
}

/** What excise returned, in the manifest's form, or the error it refused with. */
async function readWithExcise(path: string) {
  try {
    const contents = await readSafetensors(path);
    const tensors = Object.entries(contents.tensors)
      .map(([name, t]) => [name, t.dtype, t.shape.map((d) => String(d)), digest(t.data)] as [string, string, string[], string])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return { accepted: true as const, tensors, metadata: { ...contents.metadata } };
  } catch (error) {
    return { accepted: false as const, error };
  }
}

describe('readSafetensors against the official safetensors reader', () => {
  it(`agrees on the ${manifest.cases.length}-file differential corpus (safetensors ${manifest.safetensors})`, async () => {
    expect(corpus.length).toBe(manifest.cases.reduce((n, c) => Math.max(n, c.at[0] + c.at[1]), 0));
    const counts = { bothAccept: 0, bothRefuse: 0, exciseOnlyAccepts: 0, exciseOnlyRefusesAllowed: 0, exciseOnlyRefusesOther: 0, contentMismatch: 0 };
    const problems: string[] = [];
    for (const [i, c] of manifest.cases.entries()) {
      const path = join(dir, `${i}.safetensors`);
      writeFileSync(path, corpus.subarray(c.at[0], c.at[0] + c.at[1]));
      const got = await readWithExcise(path);
      if (!got.accepted) {
        // Every refusal is a coded ExciseError naming the file, never a crash or a stray error.
        if (!(got.error instanceof ExciseError) || !got.error.message.includes(path)) {
          problems.push(`${c.name}: uncoded refusal ${String(got.error)}`);
        }
      }
      if (c.official === 'refuse') {
        if (got.accepted) {
          counts.exciseOnlyAccepts++;
          problems.push(`${c.name}: accepted, official refuses (${c.error})`);
        } else {
          counts.bothRefuse++;
        }
        continue;
      }
      if (!got.accepted) {
        const message = got.error instanceof Error ? got.error.message : String(got.error);
        // Duplicate keys (the format forbids them) and dtypes excise does not read are the only
        // refusals allowed where the official reader accepts; the error must say which.
        const allowed = (c.dup && /duplicate key/.test(message)) || (c.unsupported && /unsupported dtype/.test(message));
        if (allowed) {
          counts.exciseOnlyRefusesAllowed++;
        } else {
          counts.exciseOnlyRefusesOther++;
          problems.push(`${c.name}: refused, official accepts: ${message}`);
        }
        continue;
      }
      const official = { tensors: c.tensors ?? [], metadata: c.metadata ?? {} };
      if (JSON.stringify(got.tensors) !== JSON.stringify(official.tensors) || !sameRecord(got.metadata, official.metadata)) {
        counts.contentMismatch++;
        problems.push(`${c.name}: different contents: ${JSON.stringify(got.tensors)} vs ${JSON.stringify(official.tensors)}`);
      } else {
        counts.bothAccept++; // same names, dtypes, shapes, bytes and metadata
      }
    }
    console.log(`safetensors differential (${manifest.cases.length} files): ${JSON.stringify(counts)}`);
    // Disagreements by cell and kind of case (the case name without its base file and parameters).
    const byKind = new Map<string, number>();
    for (const p of problems) {
      const [name, verdict] = p.split(': ');
      const kind = name.startsWith('stacked/') ? 'stacked' : name.replace(/^[^/]*\//, '').replace(/[[@=#].*$/, '').replace(/[-+]?\d+$/, '');
      const key = `${verdict.split(',')[0].split(' (')[0]}: ${kind}`;
      byKind.set(key, (byKind.get(key) ?? 0) + 1);
    }
    for (const [key, n] of [...byKind].sort((a, b) => (a[0] < b[0] ? -1 : 1))) console.log(`  ${String(n).padStart(4)}  ${key}`);
    for (const p of problems.slice(0, 20)) console.log(`  ${p}`);
    expect(problems.slice(0, 20)).toEqual([]);
    expect(counts.exciseOnlyAccepts).toBe(0);
    expect(counts.contentMismatch).toBe(0);
    expect(counts.exciseOnlyRefusesOther).toBe(0);
    // The corpus really exercises every cell that must be empty, and the allowed refusals.
    expect(counts.bothAccept).toBeGreaterThan(300);
    expect(counts.bothRefuse).toBeGreaterThan(1000);
    expect(counts.exciseOnlyRefusesAllowed).toBeGreaterThan(20);
  });
});

function sameRecord(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return JSON.stringify(ka) === JSON.stringify(kb) && ka.every((k) => a[k] === b[k]);
}
