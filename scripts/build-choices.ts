/**
 * Builds the bundled multiple-choice sets of the demo into assets/choices/ from the bundled corpora:
 * "which continuation follows this text?", four choices, one of them the text's real next line
 * (Python) or sentence (prose), the other three taken from other documents of the same corpus,
 * of similar length. Questions come from each corpus' test split (never trained on), few-shot
 * examples from its train split. Deterministic: a seeded hash chooses every position and distractor.
 *
 *   python.jsonl, prose.jsonl                  80 questions each (test split)
 *   python-fewshot.jsonl, prose-fewshot.jsonl  20 examples each (train split)
 *
 * Choices carry their own leading separator (a space before a sentence; a Python line follows the
 * question's final newline), so these sets are scored with targetDelimiter '' (--target-delimiter '').
 *
 * Run: npx tsx scripts/build-choices.ts
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

const root = join(import.meta.dirname, '..');
const SEED = 'excise-choices-1';
const hash = (s: string) => createHash('sha256').update(SEED + '\0' + s).digest().readUInt32BE(0);

type Item = { question: string; choices: string[]; answer: number };
type Candidate = { doc: number; context: string; answer: string };

function readSplit(corpus: string, split: string): string[] {
  const raw = gunzipSync(readFileSync(join(root, 'assets', 'corpora', corpus, `${split}.jsonl.gz`))).toString('utf8');
  return raw.split('\n').filter((l) => l.trim()).map((l) => (JSON.parse(l) as { text: string }).text);
}

/** Per document, the candidate (context, next unit) pairs: lines of code or sentences of prose. */
function candidates(corpus: string, docs: string[]): Candidate[][] {
  return docs.map((text, doc) => {
    const out: Candidate[] = [];
    if (corpus === 'python') {
      const lines = text.split('\n');
      for (let i = 6; i < lines.length; i++) {
        const line = lines[i];
        const len = line.trim().length;
        if (len < 15 || len > 70 || line.trim().startsWith('#')) continue;
        out.push({ doc, context: lines.slice(i - 6, i).join('\n') + '\n', answer: line });
      }
    } else {
      const sentences = text.replace(/\s+/g, ' ').split(/(?<=[.!?]) (?=[A-Z"])/);
      for (let i = 3; i < sentences.length; i++) {
        const s = sentences[i];
        if (s.length < 30 || s.length > 150) continue;
        out.push({ doc, context: sentences.slice(i - 3, i).join(' '), answer: ' ' + s });
      }
    }
    return out;
  });
}

function build(corpus: string, split: string, count: number): Item[] {
  const perDoc = candidates(corpus, readSplit(corpus, split));
  const pool = perDoc.flat();
  const items: Item[] = [];
  const usedAnswers = new Set<string>();
  for (const cands of perDoc) {
    if (items.length >= count) break;
    if (cands.length === 0) continue;
    const c = cands[hash(cands[0].context) % cands.length];
    if (usedAnswers.has(c.answer.trim())) continue;
    // Distractors: answers of other documents whose length is within 30% of the right one.
    const similar = pool.filter((p) => p.doc !== c.doc && Math.abs(p.answer.length - c.answer.length) <= 0.3 * c.answer.length && p.answer.trim() !== c.answer.trim());
    const distractors: string[] = [];
    for (let k = 0; distractors.length < 3 && k < 50; k++) {
      const d = similar[hash(`${c.answer}#${k}`) % similar.length].answer;
      if (!distractors.includes(d)) distractors.push(d);
    }
    if (distractors.length < 3) continue;
    const answer = hash(c.context + '#answer') % 4;
    const choices = [...distractors];
    choices.splice(answer, 0, c.answer);
    usedAnswers.add(c.answer.trim());
    items.push({ question: c.context, choices, answer });
  }
  return items;
}

mkdirSync(join(root, 'assets', 'choices'), { recursive: true });
for (const corpus of ['python', 'prose']) {
  for (const [file, split, count] of [[`${corpus}.jsonl`, 'test', 80], [`${corpus}-fewshot.jsonl`, 'train', 20]] as const) {
    const items = build(corpus, split, count);
    writeFileSync(join(root, 'assets', 'choices', file), items.map((i) => JSON.stringify(i)).join('\n') + '\n');
    console.log(`${file}: ${items.length} questions`);
  }
}
