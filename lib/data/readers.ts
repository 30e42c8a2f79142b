/**
 * Streaming readers for the dataset file formats: each yields a file's texts in order, exactly as
 * stored (byte for byte: only a BOM that starts a txt or jsonl file is dropped), empty and null
 * texts skipped, and never holds more than one line (jsonl) or one row group's text column
 * (parquet) in memory. A .txt (or source) file is one document and is read whole.
 *
 * A document that is not valid UTF-8 is never replaced with U+FFFD: it is skipped and reported to
 * the `onInvalid` callback with where it was (file, file:line, or file#row).
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { closeSync, createReadStream, openSync, readSync, fstatSync } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { parquetMetadata, parquetMetadataAsync, parquetRead, parquetSchema, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { compressors as baseCompressors } from 'hyparquet-compressors';
import { ExciseError } from '../errors.js';

export type DatasetFormat = 'txt' | 'jsonl' | 'parquet';

/** A file's path: a Buffer for a name that is not valid UTF-8 (Linux allows any bytes). */
export type FilePath = string | Buffer;

/** Called for each document skipped because it is not valid UTF-8, with where it was. */
export type InvalidUtf8 = (where: string) => void;

/** A path for messages (a non-UTF-8 name shows U+FFFD where its bad bytes are). */
export function displayPath(file: FilePath): string {
  return typeof file === 'string' ? file : file.toString('utf8');
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

function withoutBom(bytes: Buffer): Buffer {
  return bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? bytes.subarray(BOM.length) : bytes;
}

/** A failure to read `file`, as an ExciseError: a vanished file is ERR_DATASET_NOT_FOUND, the rest ERR_IO. */
export function ioError(file: string, err: unknown): ExciseError {
  if (err instanceof ExciseError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return new ExciseError('ERR_DATASET_NOT_FOUND', `dataset file not found: ${file}`, { cause: err });
  return new ExciseError('ERR_IO', `cannot read dataset file ${file}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

// ---------------------------------------------------------------------------------------------
// txt

export async function* readTxt(file: FilePath, onInvalid: InvalidUtf8): AsyncGenerator<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw ioError(displayPath(file), err);
  }
  bytes = withoutBom(bytes);
  if (!isUtf8(bytes)) {
    onInvalid(displayPath(file));
    return;
  }
  if (bytes.length > 0) yield bytes.toString('utf8');
}

// ---------------------------------------------------------------------------------------------
// jsonl (.jsonl, .jsonl.gz)

/**
 * The first bytes of a paused stream, put back: null at once at the end of an empty stream. Works
 * on pipes and FIFOs, which can be read only once.
 */
function peek(stream: Readable): Promise<Buffer | null> {
  return new Promise((resolvePeek, reject) => {
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const onReadable = () => {
      cleanup();
      const chunk = stream.read() as Buffer | null;
      if (chunk) stream.unshift(chunk);
      resolvePeek(chunk);
    };
    const onEnd = () => { cleanup(); resolvePeek(null); };
    const onError = (err: Error) => { cleanup(); reject(err); };
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('error', onError);
  });
}

/**
 * The lines of a file, as bytes, gzip-compressed or not (told by its first bytes, not its name),
 * with "\n" or "\r\n" endings, streamed: a line split across chunks is joined once, so a long line
 * costs linear time. Bytes, not text, so that a line that is not valid UTF-8 can be told apart.
 * Stopping early (break) closes the file.
 */
export async function* readLines(file: FilePath): AsyncGenerator<Buffer> {
  const name = displayPath(file);
  const raw = createReadStream(file, { highWaterMark: 1 << 18 });
  let head: Buffer | null;
  try {
    head = await peek(raw);
  } catch (err) {
    raw.destroy();
    throw ioError(name, err);
  }
  const gz = head !== null && head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  let stream: Readable = raw;
  if (gz) {
    // pipeline forwards a read error to the gunzip stream (and so to the loop below).
    stream = pipeline(raw, createGunzip(), () => { /* errors surface through the iterator */ });
  }
  const withoutCr = (line: Buffer) => (line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line);
  const parts: Buffer[] = [];
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, start);
        if (nl === -1) break;
        let line = chunk.subarray(start, nl);
        if (parts.length > 0) {
          parts.push(line);
          line = Buffer.concat(parts);
          parts.length = 0;
        }
        yield withoutCr(line);
        start = nl + 1;
      }
      if (start < chunk.length) parts.push(start === 0 ? chunk : chunk.subarray(start));
    }
  } catch (err) {
    if (err instanceof ExciseError) throw err;
    const code = (err as NodeJS.ErrnoException)?.code;
    if (gz && typeof code === 'string' && code.startsWith('Z_')) {
      throw new ExciseError('ERR_DATASET_INVALID', `${name}: not a valid gzip file (${(err as Error).message})`, { cause: err });
    }
    throw ioError(name, err);
  } finally {
    stream.destroy();
    raw.destroy();
  }
  if (parts.length > 0) yield withoutCr(Buffer.concat(parts));
}

/** A line of JSON whitespace only (space, tab; "\r" ends a line): blank. NBSP, U+3000, U+2028, form feed and the like are not JSON whitespace, so such a line is refused as invalid JSON. */
function isBlank(line: Buffer): boolean {
  for (let i = 0; i < line.length; i++) if (line[i] !== 0x20 && line[i] !== 0x09) return false;
  return true;
}

function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/**
 * One JSON object per line; the document is its `textField` (a string; null and "" are skipped).
 * Blank lines (spaces and tabs only) are skipped. Anything else is ERR_DATASET_INVALID naming the
 * file and line number. A line that is valid JSON but not valid UTF-8 is skipped (onInvalid).
 */
export async function* readJsonl(path: FilePath, textField: string, onInvalid: InvalidUtf8): AsyncGenerator<string> {
  const file = displayPath(path);
  let lineNo = 0;
  for await (const rawLine of readLines(path)) {
    lineNo++;
    const bytes = lineNo === 1 ? withoutBom(rawLine) : rawLine;
    if (isBlank(bytes)) continue;
    const valid = isUtf8(bytes);
    // Decoded with U+FFFD for bad bytes only to check the line's structure; such a line is never yielded.
    const line = bytes.toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new ExciseError('ERR_DATASET_INVALID', `${file}:${lineNo}: not valid JSON (${(err as Error).message})`, { cause: err });
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new ExciseError('ERR_DATASET_INVALID', `${file}:${lineNo}: expected a JSON object with a "${textField}" field, found ${describeJson(value)}`);
    }
    const record = value as Record<string, unknown>;
    if (!Object.prototype.hasOwnProperty.call(record, textField)) {
      const fields = Object.keys(record);
      throw new ExciseError('ERR_DATASET_INVALID',
        `${file}:${lineNo}: no field "${textField}" (fields: ${fields.length ? fields.slice(0, 20).join(', ') : 'none'}); choose the text field with the textField option`);
    }
    const text = record[textField];
    if (text === null || text === '') continue;
    if (typeof text !== 'string') {
      throw new ExciseError('ERR_DATASET_INVALID', `${file}:${lineNo}: field "${textField}" is ${describeJson(text)}, not a string`);
    }
    if (!valid) {
      onInvalid(`${file}:${lineNo}`);
      continue;
    }
    yield text;
  }
}

// ---------------------------------------------------------------------------------------------
// parquet

function parquetError(file: string, what: string, err: unknown): ExciseError {
  if (err instanceof ExciseError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (typeof code === 'string' && code.startsWith('E')) return ioError(file, err);
  return new ExciseError('ERR_DATASET_INVALID', `${file}: ${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/** Checks that `field` is exactly one top-level text (BYTE_ARRAY) column of the file. */
function checkTextColumn(file: string, metadata: FileMetaData, field: string): void {
  const columns = parquetSchema(metadata).children;
  const matches = columns.filter((c) => c.element.name === field);
  if (matches.length === 0) {
    const names = columns.map((c) => c.element.name);
    throw new ExciseError('ERR_DATASET_INVALID',
      `${file}: no column "${field}" (columns: ${names.length ? names.slice(0, 20).join(', ') : 'none'}); choose the text column with the textField option`);
  }
  if (matches.length > 1) {
    // pyarrow refuses such a file too: which column is meant cannot be told.
    throw new ExciseError('ERR_DATASET_INVALID', `${file}: two columns named "${field}" (${matches.length} in all); cannot tell which holds the text`);
  }
  const column = matches[0];
  const { type, repetition_type: repetition } = column.element;
  if (column.children.length > 0 || type !== 'BYTE_ARRAY' || repetition === 'REPEATED') {
    const kind = column.children.length > 0 ? 'a nested column' : repetition === 'REPEATED' ? 'a repeated column' : `of type ${type ?? 'unknown'}`;
    throw new ExciseError('ERR_DATASET_INVALID', `${file}: column "${field}" is ${kind}, not text`);
  }
}

/**
 * Reads and checks a parquet file's footer synchronously (a few KB), so that a missing or non-text
 * column is reported when the dataset is loaded, not halfway through a run.
 */
export function checkParquetFile(path: FilePath, field: string): void {
  const file = displayPath(path);
  let fd: number | undefined;
  let metadata: FileMetaData;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    if (size < 12) throw new Error('too short to be a parquet file');
    const tail = new Uint8Array(8);
    readSync(fd, tail, 0, 8, size - 8);
    const view = new DataView(tail.buffer);
    if (view.getUint32(4, true) !== 0x31524150) throw new Error('no parquet footer (the file does not end in "PAR1")');
    const metadataLength = view.getUint32(0, true);
    if (metadataLength + 8 > size) throw new Error(`footer length ${metadataLength} exceeds the file size ${size}`);
    const footer = new Uint8Array(metadataLength + 8);
    let done = 0;
    while (done < footer.length) {
      const n = readSync(fd, footer, done, footer.length - done, size - footer.length + done);
      if (n === 0) throw new Error('unexpected end of file');
      done += n;
    }
    metadata = parquetMetadata(footer.buffer);
  } catch (err) {
    throw parquetError(file, 'not a valid parquet file', err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  checkTextColumn(file, metadata, field);
}

/** An AsyncBuffer over an open file: each slice is one positioned read. */
function fileBuffer(handle: FileHandle, size: number): AsyncBuffer {
  return {
    byteLength: size,
    async slice(start: number, end: number = size): Promise<ArrayBuffer> {
      const length = Math.max(0, Math.min(end, size) - start);
      const bytes = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(bytes, done, length - done, start + done);
        if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${start + done}`);
        done += bytesRead;
      }
      return bytes.buffer;
    },
  };
}

/**
 * The codecs, except that an empty output needs no decoding: pyarrow writes a v2 data page of only
 * nulls as an empty LZ4 block, which hyparquet-compressors' LZ4 refuses ("offset out of range").
 */
const compressors = Object.fromEntries(Object.entries(baseCompressors).map(([codec, decode]) =>
  [codec, (input: Uint8Array, outputLength: number) => (outputLength === 0 ? new Uint8Array(0) : decode(input, outputLength))])) as typeof baseCompressors;

/** Stands for a value that is not valid UTF-8 (never a string, so never confused with a text). */
const NOT_UTF8 = Symbol('not UTF-8');

/**
 * hyparquet's string parser, replaced: its TextDecoder drops a leading U+FEFF from every value and
 * turns bad bytes into U+FFFD. This one keeps every byte and marks invalid values.
 */
const exactStrings = {
  stringFromBytes(bytes: Uint8Array | undefined): string | undefined | typeof NOT_UTF8 {
    if (!bytes) return bytes;
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return isUtf8(b) ? b.toString('utf8') : NOT_UTF8;
  },
};

/**
 * The `textField` column of a parquet file, one row group at a time (only that column's pages are
 * read and decompressed: snappy, gzip, zstd, brotli, lz4). Null and empty texts are skipped. Rows
 * come as arrays, never objects keyed by column name (a column may be called "__proto__").
 */
export async function* readParquet(path: FilePath, textField: string, onInvalid: InvalidUtf8): AsyncGenerator<string> {
  const file = displayPath(path);
  let handle: FileHandle;
  let size: number;
  try {
    handle = await open(path, 'r');
    size = (await handle.stat()).size;
  } catch (err) {
    throw ioError(file, err);
  }
  try {
    const buffer = fileBuffer(handle, size);
    let metadata: FileMetaData;
    try {
      metadata = await parquetMetadataAsync(buffer);
    } catch (err) {
      throw parquetError(file, 'not a valid parquet file', err);
    }
    checkTextColumn(file, metadata, textField);
    let rowStart = 0;
    for (let g = 0; g < metadata.row_groups.length; g++) {
      const rows = Number(metadata.row_groups[g].num_rows);
      if (rows === 0) continue;
      let values: unknown[][] = [];
      try {
        await parquetRead({
          file: buffer, metadata, columns: [textField], rowStart, rowEnd: rowStart + rows, compressors,
          parsers: exactStrings as never, rowFormat: 'array',
          onComplete: (data: unknown[][]) => { values = data; },
        });
      } catch (err) {
        throw parquetError(file, `row group ${g}`, err);
      }
      rowStart += rows;
      for (let r = 0; r < values.length; r++) {
        const text = values[r][0];
        if (text === null || text === undefined || text === '') continue;
        if (text === NOT_UTF8) {
          onInvalid(`${file}#row ${rowStart - rows + r}`);
          continue;
        }
        if (typeof text !== 'string') {
          throw new ExciseError('ERR_DATASET_INVALID', `${file}: row ${rowStart - rows + r} of column "${textField}" is not text`);
        }
        yield text;
      }
    }
  } finally {
    await handle.close();
  }
}
