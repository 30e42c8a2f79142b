import { execFileSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExciseError } from '../lib/errors.js';
import { loadModel } from '../lib/index.js';
import { native } from '../lib/native.js';
import { readSafetensors, writeSafetensors, type SafetensorsTensor } from '../lib/safetensors.js';

const GPT2_DIR = join(import.meta.dirname, 'fixtures', 'hf-golden', 'gpt2');
const GPT2 = join(GPT2_DIR, 'model.safetensors');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'excise-safetensors-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Awaits a promise that must reject with an ExciseError, and returns that error. */
async function rejection(promise: Promise<unknown>): Promise<ExciseError> {
  let error: unknown;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  expect(error, 'expected the promise to reject').toBeInstanceOf(ExciseError);
  return error as ExciseError;
}

function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** A safetensors file from parts: the 8-byte length (default: the header's), header, data. */
function fileBytes(header: string | Buffer, data: Buffer = Buffer.alloc(0), declaredLength?: bigint): Buffer {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(declaredLength ?? BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

let fileCounter = 0;
function writeTemp(contents: Buffer): string {
  const path = join(dir, `case-${fileCounter++}.safetensors`);
  writeFileSync(path, contents);
  return path;
}

/** Parses a safetensors file with plain Buffer code, independently of the library. */
function parseByHand(path: string) {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const headerText = buf.subarray(8, 8 + n).toString('utf8');
  const header = JSON.parse(headerText) as Record<string, any>;
  return { buf, n, headerText, header, dataStart: 8 + n };
}

function tempFilesIn(folder: string): string[] {
  return readdirSync(folder).filter((f) => f.includes('.tmp-'));
}

describe('round trip', () => {
  it('writes and reads back every dtype, metadata and odd names unchanged', async () => {
    const tensors: Record<string, SafetensorsTensor> = {
      f64: { dtype: 'F64', shape: [2, 2], data: new Float64Array([1.5, -0, NaN, -Infinity]) },
      f32: { dtype: 'F32', shape: [2, 3], data: new Float32Array([0.1, -2, 3.25, 1e-30, 65504, -7]) },
      f16: { dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0xc000, 0x7c00]) },
      bf16: { dtype: 'BF16', shape: [1, 2], data: new Uint16Array([0x3f80, 0xbfc0]) },
      i64: { dtype: 'I64', shape: [3], data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 42n]) },
      i32: { dtype: 'I32', shape: [2], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1]) },
      i16: { dtype: 'I16', shape: [2], data: new Int16Array([-32768, 32767]) },
      i8: { dtype: 'I8', shape: [3], data: new Int8Array([-128, 0, 127]) },
      u8: { dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) },
      bool: { dtype: 'BOOL', shape: [2, 2], data: new Uint8Array([1, 0, 0, 1]) },
      scalar: { dtype: 'F32', shape: [], data: new Float32Array([3]) },
      empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      'layer.0 😀 "quoted"': { dtype: 'I8', shape: [1], data: new Int8Array([5]) },
      // A computed key makes an own property named __proto__, which must stay an ordinary tensor.
      ['__proto__']: { dtype: 'U8', shape: [1], data: new Uint8Array([9]) },
    };
    const metadata = { format: 'pt', 'note ✓': 'line1\nline2 "q" \\ 😀', empty: '' };
    const path = join(dir, 'all-dtypes.safetensors');
    await writeSafetensors(path, tensors, metadata);

    const read = await readSafetensors(path);
    expect(read.metadata).toEqual(metadata);
    expect(Object.keys(read.tensors).sort()).toEqual(Object.keys(tensors).sort());
    expect(Object.getPrototypeOf(read.tensors)).toBe(Object.prototype);
    for (const [name, t] of Object.entries(tensors)) {
      const got = Object.getOwnPropertyDescriptor(read.tensors, name)!.value as SafetensorsTensor;
      expect(got.dtype, name).toBe(t.dtype);
      expect(got.shape, name).toEqual(t.shape);
      expect(got.data.constructor, name).toBe(t.data.constructor);
      expect(got.data.length, name).toBe(t.data.length);
      expect(bytesOf(got.data).equals(bytesOf(t.data)), name).toBe(true);
    }
  });

  it('rewrites the GPT-2 fixture byte for byte (same layout as the safetensors library)', async () => {
    const read = await readSafetensors(GPT2);
    const path = join(dir, 'gpt2-copy.safetensors');
    await writeSafetensors(path, read.tensors, read.metadata);
    expect(readFileSync(path).equals(readFileSync(GPT2))).toBe(true);
  });
});

describe('layout of written files', () => {
  it('is length + compact JSON padded to 8 + data, sorted by dtype size then name', async () => {
    const tensors: Record<string, SafetensorsTensor> = {
      b: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
      a: { dtype: 'F32', shape: [3], data: new Float32Array([3, 4, 5]) },
      c: { dtype: 'I64', shape: [1], data: new BigInt64Array([-1n]) },
      d: { dtype: 'U8', shape: [3], data: new Uint8Array([7, 8, 9]) },
      e: { dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
      z: { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
      f: { dtype: 'F64', shape: [1], data: new Float64Array([0.5]) },
    };
    const path = join(dir, 'layout.safetensors');
    await writeSafetensors(path, tensors, { k: 'v' });

    const { buf, n, headerText, header, dataStart } = parseByHand(path);
    expect(n % 8).toBe(0);
    const trimmed = headerText.trimEnd();
    expect(headerText.slice(trimmed.length)).toMatch(/^ {0,7}$/);
    expect(trimmed).toBe(JSON.stringify(header)); // compact, no whitespace
    // I64 before F64 (the safetensors library's dtype order), then F32, F16, U8, BOOL.
    expect(Object.keys(header)).toEqual(['__metadata__', 'c', 'f', 'a', 'b', 'e', 'd', 'z']);
    expect(header.__metadata__).toEqual({ k: 'v' });
    const expected: Record<string, [number, number]> = {
      c: [0, 8],
      f: [8, 16],
      a: [16, 28],
      b: [28, 36],
      e: [36, 38],
      d: [38, 41],
      z: [41, 43],
    };
    for (const [name, offsets] of Object.entries(expected)) {
      expect(header[name].data_offsets, name).toEqual(offsets);
      expect(header[name].dtype, name).toBe(tensors[name].dtype);
      expect(header[name].shape, name).toEqual(tensors[name].shape);
      const stored = buf.subarray(dataStart + offsets[0], dataStart + offsets[1]);
      expect(stored.equals(bytesOf(tensors[name].data)), name).toBe(true);
    }
    expect(buf.length).toBe(dataStart + 43);
  });

  it('omits __metadata__ when there is none', async () => {
    const path = join(dir, 'no-meta.safetensors');
    await writeSafetensors(path, { x: { dtype: 'U8', shape: [1], data: new Uint8Array([1]) } });
    const { header } = parseByHand(path);
    expect(Object.keys(header)).toEqual(['x']);
  });
});

describe('reading the GPT-2 fixture', () => {
  it('returns all 28 tensors with the header shapes and the file bytes', async () => {
    const read = await readSafetensors(GPT2);
    const { buf, header, dataStart } = parseByHand(GPT2);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    expect(names).toHaveLength(28);
    expect(Object.keys(read.tensors)).toEqual(names);
    expect(read.metadata).toEqual({ format: 'pt' });
    for (const name of names) {
      expect(read.tensors[name].dtype).toBe('F32');
      expect(read.tensors[name].shape).toEqual(header[name].shape);
    }
    const wte = read.tensors['transformer.wte.weight'];
    expect(wte.shape).toEqual([97, 64]);
    expect(wte.data).toBeInstanceOf(Float32Array);
    // Element [5, 7], located by hand from the header's offsets.
    const [begin] = header['transformer.wte.weight'].data_offsets as [number, number];
    const byHand = buf.readFloatLE(dataStart + begin + (5 * 64 + 7) * 4);
    expect(byHand).not.toBe(0);
    expect(wte.data[5 * 64 + 7]).toBe(byHand);
  });
});

describe('corrupt files', () => {
  const f32x2 = Buffer.from(new Float32Array([1, 2]).buffer);
  const entry = (extra: Record<string, unknown> = {}) => ({ dtype: 'F32', shape: [2], data_offsets: [0, 8], ...extra });
  const header = (o: unknown) => JSON.stringify(o);

  // [what, file contents, expected code, fragments the message must contain besides the path]
  const cases: Array<[string, () => Buffer, string, string[]]> = [
    ['file shorter than 8 bytes', () => Buffer.from([1, 2, 3]), 'ERR_SAFETENSORS_INVALID', ['shorter than the 8-byte']],
    ['header length 0', () => fileBytes('{}', f32x2, 0n), 'ERR_SAFETENSORS_INVALID', ['header length is 0']],
    ['header length past the end', () => fileBytes('{}', Buffer.alloc(0), 100n), 'ERR_SAFETENSORS_INVALID', ['runs past the end']],
    ['header length over 100 MB', () => fileBytes('{}', Buffer.alloc(0), 200_000_000n), 'ERR_SAFETENSORS_INVALID', ['exceeds the 100000000-byte limit']],
    ['header not JSON', () => fileBytes('{"w": '), 'ERR_SAFETENSORS_INVALID', ['not valid JSON']],
    ['trailing garbage after the JSON', () => fileBytes('{} x'), 'ERR_SAFETENSORS_INVALID', ['not valid JSON', 'unexpected data after', 'at byte 3']],
    ['duplicate keys', () => fileBytes(`{"w":${header(entry())},"w":${header(entry())}}`, f32x2), 'ERR_SAFETENSORS_INVALID', ['duplicate key "w"']],
    // serde_json's recursion limit (the official reader's parser): 127 levels, the header's own braces included.
    ['nesting deeper than 127', () => fileBytes(`{"w":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"x":${'['.repeat(126)}${']'.repeat(126)}}}`), 'ERR_SAFETENSORS_INVALID', ['nesting deeper than 127']],
    ['raw control character in a string', () => fileBytes('{"__metadata__":{"a":"x\ny"}}'), 'ERR_SAFETENSORS_INVALID', ['control character']],
    ['lone surrogate escape', () => fileBytes('{"__metadata__":{"a":"\\ud800"}}'), 'ERR_SAFETENSORS_INVALID', ['surrogate']],
    ['invalid UTF-8', () => fileBytes(Buffer.concat([Buffer.from('{"__metadata__":{"a":"'), Buffer.from([0xff]), Buffer.from('"}}')])), 'ERR_SAFETENSORS_INVALID', ['invalid UTF-8']],
    ['header that is an array', () => fileBytes(' [1]'), 'ERR_SAFETENSORS_INVALID', ['not a JSON object']],
    ['header padded with NUL bytes', () => fileBytes('{}\0\0'), 'ERR_SAFETENSORS_INVALID', ['not valid JSON']],
    ['header led by a non-JSON space (form feed)', () => fileBytes('\f{}'), 'ERR_SAFETENSORS_INVALID', ['not valid JSON']],
    ['__metadata__ not an object', () => fileBytes('{"__metadata__":["a"]}'), 'ERR_SAFETENSORS_INVALID', ['__metadata__ is not an object']],
    ['__metadata__ value not a string', () => fileBytes('{"__metadata__":{"a":1}}'), 'ERR_SAFETENSORS_INVALID', ['value for "a" is not a string']],
    ['tensor entry not an object', () => fileBytes('{"w":[1]}'), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'not an object']],
    ['missing key', () => fileBytes(header({ w: { dtype: 'F32', shape: [2] } }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'missing "data_offsets"']],
    ['__metadata__ twice', () => fileBytes('{"__metadata__":{},"__metadata__":{}}'), 'ERR_SAFETENSORS_INVALID', ['duplicate key "__metadata__"']],
    ['__metadata__ value null', () => fileBytes('{"__metadata__":{"a":null}}'), 'ERR_SAFETENSORS_INVALID', ['value for "a" is not a string']],
    ['unknown dtype', () => fileBytes(header({ w: entry({ dtype: 'X32' }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'unknown dtype "X32"']],
    ['lower-case dtype', () => fileBytes(header({ w: entry({ dtype: 'f32' }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'unknown dtype "f32"']],
    ['FP8 dtype', () => fileBytes(header({ w: entry({ dtype: 'F8_E4M3', shape: [8] }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'unsupported dtype "F8_E4M3"', 'excise reads F64, F32']],
    ['U32 dtype', () => fileBytes(header({ w: entry({ dtype: 'U32' }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'unsupported dtype "U32"']],
    ['shape not an array', () => fileBytes(header({ w: entry({ shape: 2 }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', '"shape" is not an array']],
    ['negative dimension', () => fileBytes(header({ w: entry({ shape: [-2] }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'integers from 0 to 2^64-1']],
    ['fractional dimension', () => fileBytes(header({ w: entry({ shape: [1.5] }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'integers from 0 to 2^64-1']],
    ['dimension written 2.0', () => fileBytes('{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'integers from 0 to 2^64-1']],
    ['dimension of 2^64', () => fileBytes('{"w":{"dtype":"F32","shape":[0,18446744073709551616],"data_offsets":[0,0]}}'), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'integers from 0 to 2^64-1']],
    ['shape product overflow', () => fileBytes(header({ w: entry({ shape: [2 ** 32, 2 ** 32] }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'element count overflows 64 bits']],
    // The official order: the count overflows before the 0 is reached.
    ['element count overflow before a 0', () => fileBytes('{"w":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}'), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'element count overflows 64 bits']],
    ['bit count overflow', () => fileBytes('{"w":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,0]}}'), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'byte size overflows 64 bits']],
    ['data_offsets not a pair', () => fileBytes(header({ w: entry({ data_offsets: [0, 8, 16] }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'not a [begin, end] pair']],
    ['data_offsets not integers', () => fileBytes(header({ w: entry({ data_offsets: [0, '8'] }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'integers from 0 to 2^64-1']],
    // serde_json reads -0 as a float, so the official reader refuses it as an offset.
    ['-0 as an offset', () => fileBytes('{"w":{"dtype":"F32","shape":[2],"data_offsets":[-0,8]}}', f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'integers from 0 to 2^64-1']],
    ['data_offsets begin after end', () => fileBytes(header({ w: entry({ data_offsets: [8, 0] }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'begin 8 is after end 0']],
    ['data_offsets end beyond the data', () => fileBytes(header({ w: entry({ shape: [4], data_offsets: [0, 16] }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'end 16 is beyond the data buffer (8 bytes)']],
    // 2^53 + 1 is not a double: the message shows the exact integer only if offsets stay int64.
    ['huge data_offsets end (exact int64)', () => fileBytes(`{"w":{"dtype":"U8","shape":[9007199254740993],"data_offsets":[0,9007199254740993]}}`, f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'end 9007199254740993 is beyond']],
    ['byte size disagreeing with the shape', () => fileBytes(header({ w: entry({ shape: [3] }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['tensor "w"', 'span 8 bytes', 'need 12']],
    ['overlapping tensors', () => fileBytes(header({ a: entry(), b: entry({ data_offsets: [4, 12] }) }), Buffer.alloc(12)), 'ERR_SAFETENSORS_INVALID', ['"a" and "b" overlap']],
    ['an empty tensor inside another', () => fileBytes(header({ a: entry(), e: entry({ shape: [0], data_offsets: [4, 4] }) }), f32x2), 'ERR_SAFETENSORS_INVALID', ['"a" and "e" overlap']],
    ['a hole between tensors', () => fileBytes(header({ a: entry(), b: entry({ data_offsets: [12, 20] }) }), Buffer.alloc(20)), 'ERR_SAFETENSORS_INVALID', ['bytes 8 to 12 of the data buffer belong to no tensor', 'before tensor "b"']],
    // The case: one F32 [2,3] tensor at [1, 25] in a 25-byte buffer.
    ['a hole at the start', () => fileBytes(header({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [1, 25] } }), Buffer.alloc(25)), 'ERR_SAFETENSORS_INVALID', ['bytes 0 to 1 of the data buffer belong to no tensor']],
    ['bytes after the last tensor', () => fileBytes(header({ w: entry() }), Buffer.concat([f32x2, Buffer.from('polyglot')])), 'ERR_SAFETENSORS_INVALID', ['data buffer is 16 bytes but the tensors cover 8', 'trailing data']],
    ['data but no tensors', () => fileBytes('{}', f32x2), 'ERR_SAFETENSORS_INVALID', ['data buffer is 8 bytes but the tensors cover 0']],
    // A header length 1 byte short that still ends inside the padding: the header parses, but
    // the data buffer would start a byte early.
    ['header length 1 byte short (inside the padding)', () => {
      const good = fileBytes(`${header({ w: entry() })}   `, f32x2);
      good.writeBigUInt64LE(good.readBigUInt64LE(0) - 1n);
      return good;
    }, 'ERR_SAFETENSORS_INVALID', ['data buffer is 9 bytes but the tensors cover 8']],
  ];

  it.each(cases)('rejects %s', async (_what, build, code, fragments) => {
    const path = writeTemp(build());
    const err = await rejection(readSafetensors(path));
    expect(err.code).toBe(code);
    expect(err.message).toContain(path);
    for (const fragment of fragments) expect(err.message).toContain(fragment);
  });

  it('rejects a missing file with ERR_IO naming it', async () => {
    const path = join(dir, 'does-not-exist.safetensors');
    const err = await rejection(readSafetensors(path));
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(path);
    expect(err.message).toContain('No such file');
  });

  it('rejects a folder with ERR_IO', async () => {
    const err = await rejection(readSafetensors(dir));
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(dir);
  });

  it('puts the failure at the caller in the stack', async () => {
    const err = await rejection(readSafetensors(join(dir, 'nope.safetensors')));
    expect(err.stack).toContain('safetensors.test.ts');
  });
});

describe('unusual but valid files', () => {
  it('tolerates whitespace around the header, padding, unknown fields, null metadata, empty tensors at boundaries and escaped names', async () => {
    const data = Buffer.alloc(12);
    data.writeFloatLE(1.5, 0);
    data.writeFloatLE(-2, 4);
    data.writeInt32LE(7, 8);
    // Leading whitespace (the official reader's test_whitespace_leading_padded_header), unknown
    // fields in an entry (ignored), "__metadata__": null, empty tensors at 0 and at the end.
    const header = `\t\n { "w" : {"dtype":"F32","shape":[2],"data_offsets":[0,8], "extra": {"x": [1, null]}},
      "\\ud83d\\ude00\\u00e9\\n": {"data_offsets":[8,12],"shape":[1],"dtype":"I32"}, "__metadata__": null,
      "e": {"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}, "z": {"dtype":"BF16","shape":[4,0],"data_offsets":[12,12]} } \r  `;
    const read = await readSafetensors(writeTemp(fileBytes(header, data)));
    expect(Array.from(read.tensors.w.data as Float32Array)).toEqual([1.5, -2]);
    expect(Array.from(read.tensors['😀é\n'].data as Int32Array)).toEqual([7]);
    expect(read.tensors.e.shape).toEqual([0, 3]);
    expect(read.tensors.e.data.length).toBe(0);
    expect(read.tensors.z.shape).toEqual([4, 0]);
    expect(read.metadata).toEqual({});
  });

  it('keeps names and metadata keys with an escaped NUL whole (no truncation, no collision)', async () => {
    const header = '{"__metadata__":{"k\\u0000x":"1","k":"2"},"a\\u0000b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},' +
      '"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    const read = await readSafetensors(writeTemp(fileBytes(header, Buffer.from([5, 6]))));
    expect(Object.keys(read.tensors).sort()).toEqual(['a', 'a\0b']);
    expect(Array.from(read.tensors['a\0b'].data as Uint8Array)).toEqual([5]);
    expect(Array.from(read.tensors.a.data as Uint8Array)).toEqual([6]);
    expect(read.metadata).toEqual({ 'k\0x': '1', k: '2' });
  });

  it('returns dimensions above 2^53 of an empty tensor exactly, as bigints', async () => {
    const header = '{"e":{"dtype":"F32","shape":[0,4611686018427387905,3],"data_offsets":[0,0]},' +
      '"f":{"dtype":"I64","shape":[18446744073709551615,0],"data_offsets":[0,0]}}';
    const read = await readSafetensors(writeTemp(fileBytes(header)));
    expect(read.tensors.e.shape).toEqual([0, 4611686018427387905n, 3]);
    expect(read.tensors.f.shape).toEqual([18446744073709551615n, 0]);
    expect(read.tensors.f.data).toBeInstanceOf(BigInt64Array);
    expect(read.tensors.f.data.length).toBe(0);
  });

  it('reads tensors whose data is not aligned to the element size', async () => {
    // Header length 9: the data buffer starts at byte 17, so F64 data is misaligned in memory.
    const header = '{"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}';
    const padded = header.padEnd(header.length + ((9 - (header.length % 8)) % 8));
    expect(padded.length % 8).toBe(1);
    const data = Buffer.from(new Float64Array([Math.PI, -1e300]).buffer);
    const read = await readSafetensors(writeTemp(fileBytes(padded, data)));
    expect(Array.from(read.tensors.w.data as Float64Array)).toEqual([Math.PI, -1e300]);
  });

  it('returns BOOL bytes as stored, as the official reader does', async () => {
    const header = '{"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}';
    const read = await readSafetensors(writeTemp(fileBytes(header, Buffer.from([0, 2, 255]))));
    expect(Array.from(read.tensors.m.data as Uint8Array)).toEqual([0, 2, 255]);
  });
});

describe('files that are not regular files', () => {
  it('refuses a FIFO with ERR_IO instead of blocking on it (readSafetensors and loadModel)', async () => {
    const folder = join(dir, 'fifo-model');
    mkdirSync(folder);
    copyFileSync(join(GPT2_DIR, 'config.json'), join(folder, 'config.json'));
    const fifo = join(folder, 'model.safetensors');
    execFileSync('mkfifo', [fifo]); // no writer: opening it for reading would block forever
    let err = await rejection(readSafetensors(fifo));
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(`${fifo}: not a regular file`);
    err = await rejection(loadModel(folder));
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(`${fifo}: not a regular file`);
    // The same for a sharded index.
    const index = join(folder, 'model.safetensors.index.json');
    execFileSync('mkfifo', [index]);
    err = await rejection(loadModel(folder));
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(`${index}: not a regular file`);
  });
});

describe('loadModel on a damaged GPT-2 checkpoint', () => {
  // The fixture's header is padded with spaces, so a length 1 or 2 bytes short still parses as
  // JSON: only the rule that the tensors cover the data buffer exactly catches the shift.
  it.each([1n, 2n])('refuses the header length shortened by %s byte(s) instead of loading shifted weights', async (by) => {
    const folder = join(dir, `gpt2-short-${by}`);
    mkdirSync(folder);
    copyFileSync(join(GPT2_DIR, 'config.json'), join(folder, 'config.json'));
    const bytes = readFileSync(join(GPT2_DIR, 'model.safetensors'));
    const n = bytes.readBigUInt64LE(0);
    expect(bytes.subarray(8 + Number(n) - 2, 8 + Number(n)).toString()).toBe('  ');
    bytes.writeBigUInt64LE(n - by);
    writeFileSync(join(folder, 'model.safetensors'), bytes);
    const err = await rejection(loadModel(folder));
    expect(err.code).toBe('ERR_SAFETENSORS_INVALID');
    expect(err.message).toContain(join(folder, 'model.safetensors'));
    expect(err.message).toContain(`data buffer is ${bytes.length - 8 - Number(n - by)} bytes but the tensors cover ${bytes.length - 8 - Number(n)}`);
  });
});

describe('loadModel on a GPT-2 checkpoint with an extra empty tensor torch cannot hold', () => {
  // Valid for the official reader (the element count is 0), but torch sizes and strides are int64:
  // a coded ERR_SAFETENSORS_INVALID naming the tensor, not ERR_TORCH from a stride overflow.
  it.each([
    ['[0, 2^62, 8] (strides overflow int64)', [0, '4611686018427387904', 8]],
    ['[2^63, 0] (a dimension above int64)', ['9223372036854775808', 0]],
  ])('refuses %s', async (_what, shape) => {
    const folder = join(dir, `gpt2-extra-${fileCounter++}`);
    mkdirSync(folder);
    copyFileSync(join(GPT2_DIR, 'config.json'), join(folder, 'config.json'));
    const { buf, header, dataStart } = parseByHand(GPT2);
    const end = buf.length - dataStart;
    const extra = `"extra.empty":{"dtype":"F32","shape":[${shape.join(',')}],"data_offsets":[${end},${end}]}`;
    const text = `${JSON.stringify(header).slice(0, -1)},${extra}}`;
    const file = fileBytes(text.padEnd(Math.ceil(text.length / 8) * 8), buf.subarray(dataStart));
    writeFileSync(join(folder, 'model.safetensors'), file);
    const read = await readSafetensors(join(folder, 'model.safetensors')); // the file itself is valid
    expect(read.tensors['extra.empty'].shape.map(String)).toEqual(shape.map(String));
    const err = await rejection(loadModel(folder));
    expect(err.code).toBe('ERR_SAFETENSORS_INVALID');
    expect(err.message).toContain('tensor "extra.empty": its shape is too large for a torch tensor');
  });
});

describe('argument validation', () => {
  const path = () => join(dir, 'invalid-args.safetensors');
  const cases: Array<[string, () => Promise<unknown>, string[]]> = [
    ['an empty path', () => readSafetensors(''), ['path: expected a non-empty string, received a string ("")']],
    ['a non-string path', () => writeSafetensors(3 as unknown as string, {}), ['path: expected a non-empty string, received the number 3']],
    ['tensors that are not an object', () => writeSafetensors(path(), [] as unknown as Record<string, SafetensorsTensor>), ['tensors: expected an object', 'received an array of 0']],
    ['an unknown dtype', () => writeSafetensors(path(), { w: { dtype: 'F8', shape: [1], data: new Uint8Array(1) } as unknown as SafetensorsTensor }), ['tensors["w"].dtype: expected one of F64, F32', 'received a string ("F8")']],
    ['a bad dimension', () => writeSafetensors(path(), { w: { dtype: 'F32', shape: [2, -1], data: new Float32Array(2) } }), ['tensors["w"].shape[1]: expected a non-negative integer, received the number -1']],
    ['the wrong typed array', () => writeSafetensors(path(), { w: { dtype: 'F32', shape: [2], data: new Float64Array(2) } as unknown as SafetensorsTensor }), ['tensors["w"].data: expected a Float32Array for dtype F32, received a Float64Array of 2']],
    ['a length that does not match the shape', () => writeSafetensors(path(), { w: { dtype: 'I32', shape: [2, 3], data: new Int32Array(5) } }), ['tensors["w"].data: expected 6 elements for shape [2, 3], received a Int32Array of 5']],
    ['BOOL data other than 0/1', () => writeSafetensors(path(), { m: { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 3]) } }), ['tensors["m"].data: BOOL elements must be 0 or 1, received 3 at index 1']],
    ['the reserved name __metadata__', () => writeSafetensors(path(), { __metadata__: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }), ['"__metadata__" is reserved']],
    ['a non-string metadata value', () => writeSafetensors(path(), {}, { a: 1 as unknown as string }), ['metadata["a"]: expected a string, received the number 1']],
  ];

  it.each(cases)('rejects %s with ERR_INVALID_ARGUMENT', async (_what, call, fragments) => {
    const err = await rejection(call());
    expect(err.code).toBe('ERR_INVALID_ARGUMENT');
    for (const fragment of fragments) expect(err.message).toContain(fragment);
    expect(() => statSync(path())).toThrow(); // nothing was written
  });

  it('is also enforced by the native binding (byte length, dtype, shape)', async () => {
    const raw = native();
    const p = path();
    let err = await rejection(raw.writeSafetensors(p, { w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }));
    expect(err.code).toBe('ERR_INVALID_ARGUMENT');
    expect(err.message).toContain('tensor "w": data has 8 bytes but shape [3] of F32 needs 12');
    err = await rejection(raw.writeSafetensors(p, { w: { dtype: 'Q4' as 'F32', shape: [1], data: new Uint8Array(1) } }));
    expect(err.message).toContain('tensor "w": unsupported dtype "Q4"');
    err = await rejection(raw.writeSafetensors(p, { w: { dtype: 'U8', shape: [0.5], data: new Uint8Array(1) } }));
    expect(err.message).toContain('tensor "w": shape must be an array of non-negative integers');
    err = await rejection(raw.readSafetensors(42 as unknown as string));
    expect(err.code).toBe('ERR_INVALID_ARGUMENT');
    expect(() => statSync(p)).toThrow();
  });
});

describe('atomic writes', () => {
  const big = (value: number) => ({ w: { dtype: 'F32' as const, shape: [1 << 20], data: new Float32Array(1 << 20).fill(value) } });

  it('replaces the file by rename: a reader holding the old file still sees it whole', async () => {
    const folder = join(dir, 'replace-open');
    mkdirSync(folder);
    const path = join(folder, 'model.safetensors');
    await writeSafetensors(path, big(1));
    const oldBytes = readFileSync(path);
    const fd = openSync(path, 'r');
    try {
      await writeSafetensors(path, big(2));
      // Writing in place would have changed (or truncated) what this descriptor reads.
      expect(fstatSync(fd).ino).not.toBe(statSync(path).ino);
      expect(readFileSync(fd).equals(oldBytes)).toBe(true);
    } finally {
      closeSync(fd);
    }
    const now = (await readSafetensors(path)).tensors.w.data as Float32Array;
    expect(now.every((x) => x === 2)).toBe(true);
    expect(readdirSync(folder)).toEqual(['model.safetensors']);
  });

  it('replaces an existing file and leaves no temporary file', async () => {
    const folder = join(dir, 'replace');
    mkdirSync(folder);
    const path = join(folder, 'x.safetensors');
    await writeSafetensors(path, { old: { dtype: 'U8', shape: [1], data: new Uint8Array([1]) } });
    await writeSafetensors(path, { new: { dtype: 'U8', shape: [2], data: new Uint8Array([2, 3]) } });
    const read = await readSafetensors(path);
    expect(Object.keys(read.tensors)).toEqual(['new']);
    expect(readdirSync(folder)).toEqual(['x.safetensors']);
  });

  it('fails with ERR_IO naming the path when the folder does not exist', async () => {
    const path = join(dir, 'no-such-folder', 'x.safetensors');
    const err = await rejection(writeSafetensors(path, big(1)));
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(path);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it('removes the temporary file when the final rename fails', async () => {
    const folder = join(dir, 'rename-fails');
    mkdirSync(folder);
    const target = join(folder, 'occupied');
    mkdirSync(join(target, 'child'), { recursive: true }); // rename() cannot replace a non-empty folder
    const err = await rejection(writeSafetensors(target, big(1)));
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(target);
    expect(err.message).toContain('rename failed');
    expect(readdirSync(folder)).toEqual(['occupied']);
    expect(statSync(target).isDirectory()).toBe(true);
  });
});
