/**
 * Reading and writing .safetensors files from JavaScript.
 *
 * Tensors travel as typed arrays (copies, never views of the file): Float32Array for F32,
 * Float64Array for F64, BigInt64Array for I64, Int32Array/Int16Array/Int8Array for I32/I16/I8,
 * Uint8Array for U8 and BOOL, and Uint16Array holding the raw bits for F16 and BF16.
 * Writes are atomic: a temporary file in the same folder is renamed over the target.
 *
 * Reading accepts exactly the files the official safetensors reader (0.8.0) accepts and returns
 * the same names, dtypes, shapes, metadata and bytes, with two deliberate refusals: duplicate JSON
 * keys (the format forbids them) and dtypes excise does not compute with (FP8/FP6/FP4, U16/U32/U64,
 * C64). All validation is in the native reader (native/safetensors.cc); see the README's
 * "Safetensors files" section and test/safetensors.diff.test.ts.
 */
import { ExciseError, describeValue, invalidArgument, withCallerStack } from './errors.js';
import { native, type NativeSafetensorsTensor } from './native.js';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** The typed array that carries each dtype's elements. */
export interface SafetensorsArrayTypes {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
}

/**
 * One tensor: `data` holds product(shape) elements in row-major order. A dimension that a file
 * declares above Number.MAX_SAFE_INTEGER (legal only in an empty tensor, next to a 0) is read as a
 * bigint so that it stays exact; writeSafetensors takes numbers only.
 */
export type SafetensorsTensor = {
  [D in SafetensorsDtype]: { dtype: D; shape: number[]; data: SafetensorsArrayTypes[D] };
}[SafetensorsDtype];

export interface SafetensorsContents {
  /** The file's `__metadata__` (empty when absent). */
  metadata: Record<string, string>;
  /** Tensors by name, in the file's header order. */
  tensors: Record<string, SafetensorsTensor>;
}

const ARRAY_TYPES: { [D in SafetensorsDtype]: { new (length: number): SafetensorsArrayTypes[D]; name: string } } = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

const DTYPES = Object.keys(ARRAY_TYPES) as SafetensorsDtype[];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

function checkPath(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('path', 'a non-empty string', path);
  if (path.includes('\0')) throw invalidArgument('path', 'a path without NUL characters', path);
  return path;
}

function checkTensor(name: string, value: unknown): NativeSafetensorsTensor {
  const where = `tensors[${JSON.stringify(name)}]`;
  if (!isRecord(value)) throw invalidArgument(where, 'an object { dtype, shape, data }', value);
  const { dtype, shape, data } = value;
  if (typeof dtype !== 'string' || !(DTYPES as string[]).includes(dtype)) {
    throw invalidArgument(`${where}.dtype`, `one of ${DTYPES.join(', ')}`, dtype);
  }
  const d = dtype as SafetensorsDtype;
  if (!Array.isArray(shape)) throw invalidArgument(`${where}.shape`, 'an array of non-negative integers', shape);
  let elements = 1;
  shape.forEach((dim: unknown, i) => {
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) {
      throw invalidArgument(`${where}.shape[${i}]`, 'a non-negative integer', dim);
    }
    elements *= dim;
  });
  const arrayType = ARRAY_TYPES[d];
  if (!(data instanceof arrayType)) {
    throw invalidArgument(`${where}.data`, `a ${arrayType.name} for dtype ${d}`, data);
  }
  const array = data as SafetensorsArrayTypes[typeof d];
  if (array.length !== elements) {
    throw new ExciseError(
      'ERR_INVALID_ARGUMENT',
      `${where}.data: expected ${elements} elements for shape [${shape.join(', ')}], received ${describeValue(array)}`,
    );
  }
  if (d === 'BOOL') {
    const bytes = array as Uint8Array;
    const bad = bytes.findIndex((b) => b > 1);
    if (bad >= 0) {
      throw new ExciseError('ERR_INVALID_ARGUMENT', `${where}.data: BOOL elements must be 0 or 1, received ${bytes[bad]} at index ${bad}`);
    }
  }
  return { dtype: d, shape: [...(shape as number[])], data: array };
}

/**
 * Reads every tensor and the metadata of a .safetensors file. BOOL bytes come back as stored (the
 * format says 0 or 1; a file holding other bytes is returned as is, like the official reader does).
 * Fails with ERR_SAFETENSORS_INVALID (the file breaks the format), ERR_IO (missing, not a regular
 * file, unreadable).
 */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  const checked = checkPath(path);
  return withCallerStack(() => native().readSafetensors(checked) as Promise<SafetensorsContents>);
}

/**
 * Writes `tensors` (and optional string metadata) to `path` atomically, laid out like the
 * safetensors library does (larger dtypes first, then by name; header padded to 8 bytes).
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, SafetensorsTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const checked = checkPath(path);
  if (!isRecord(tensors)) throw invalidArgument('tensors', 'an object mapping tensor names to { dtype, shape, data }', tensors);
  // Null prototype: a tensor named "__proto__" or "constructor" stays an ordinary entry.
  const clean: Record<string, NativeSafetensorsTensor> = Object.create(null);
  for (const [name, value] of Object.entries(tensors)) {
    if (name === '__metadata__') {
      throw new ExciseError('ERR_INVALID_ARGUMENT', 'tensors: the name "__metadata__" is reserved by the safetensors format');
    }
    clean[name] = checkTensor(name, value);
  }
  let meta: Record<string, string> | undefined;
  if (metadata !== undefined) {
    if (!isRecord(metadata)) throw invalidArgument('metadata', 'an object of string values', metadata);
    meta = Object.create(null) as Record<string, string>;
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw invalidArgument(`metadata[${JSON.stringify(key)}]`, 'a string', value);
      meta[key] = value;
    }
  }
  return withCallerStack(() => native().writeSafetensors(checked, clean, meta));
}
