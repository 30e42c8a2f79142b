/**
 * Streaming readers for the dataset file formats: each yields a file's texts in order, empty and
 * null texts skipped, and never holds more than one line (jsonl) or one row group's text column
 * (parquet) in memory. A .txt file is one document and is read whole.
 */
import { closeSync, createReadStream, openSync, readSync, fstatSync } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { parquetMetadata, parquetMetadataAsync, parquetReadObjects, parquetSchema, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { ExciseError } from '../errors.js';

export type DatasetFormat = 'txt' | 'jsonl' | 'parquet';

/** A failure to read `file`, as an ExciseError: a vanished file is ERR_DATASET_NOT_FOUND, the rest ERR_IO. */
export function ioError(file: string, err: unknown): ExciseError {
  if (err instanceof ExciseError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return new ExciseError('ERR_DATASET_NOT_FOUND', `dataset file not found: ${file}`, { cause: err });
  return new ExciseError('ERR_IO', `cannot read dataset file ${file}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

// ---------------------------------------------------------------------------------------------
// txt

export async function* readTxt(file: string): AsyncGenerator<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw ioError(file, err);
  }
  text = stripBom(text);
  if (text.length > 0) yield text;
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
 * The lines of a text file, gzip-compressed or not (told by its first bytes, not its name), with
 * "\n" or "\r\n" endings, streamed: a line split across chunks is joined once, so a long line costs
 * linear time. Stopping early (break) closes the file.
 */
export async function* readLines(file: string): AsyncGenerator<string> {
  const raw = createReadStream(file, { highWaterMark: 1 << 18 });
  let head: Buffer | null;
  try {
    head = await peek(raw);
  } catch (err) {
    raw.destroy();
    throw ioError(file, err);
  }
  const gz = head !== null && head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  let stream: Readable = raw;
  if (gz) {
    // pipeline forwards a read error to the gunzip stream (and so to the loop below).
    stream = pipeline(raw, createGunzip(), () => { /* errors surface through the iterator */ });
  }
  stream.setEncoding('utf8');
  const parts: string[] = [];
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf('\n', start);
        if (nl === -1) break;
        let line = chunk.slice(start, nl);
        if (parts.length > 0) {
          parts.push(line);
          line = parts.join('');
          parts.length = 0;
        }
        yield line.endsWith('\r') ? line.slice(0, -1) : line;
        start = nl + 1;
      }
      if (start < chunk.length) parts.push(start === 0 ? chunk : chunk.slice(start));
    }
  } catch (err) {
    if (err instanceof ExciseError) throw err;
    const code = (err as NodeJS.ErrnoException)?.code;
    if (gz && typeof code === 'string' && code.startsWith('Z_')) {
      throw new ExciseError('ERR_DATASET_INVALID', `${file}: not a valid gzip file (${(err as Error).message})`, { cause: err });
    }
    throw ioError(file, err);
  } finally {
    stream.destroy();
    raw.destroy();
  }
  if (parts.length > 0) {
    const last = parts.join('');
    yield last.endsWith('\r') ? last.slice(0, -1) : last;
  }
}

function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/**
 * One JSON object per line; the document is its `textField` (a string; null and "" are skipped).
 * Blank lines are skipped. Anything else is ERR_DATASET_INVALID naming the file and line number.
 */
export async function* readJsonl(file: string, textField: string): AsyncGenerator<string> {
  let lineNo = 0;
  for await (const rawLine of readLines(file)) {
    lineNo++;
    const line = lineNo === 1 ? stripBom(rawLine) : rawLine;
    if (line.trim().length === 0) continue;
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

/** Checks that `field` is a top-level text (BYTE_ARRAY) column of the file. */
function checkTextColumn(file: string, metadata: FileMetaData, field: string): void {
  const columns = parquetSchema(metadata).children;
  const column = columns.find((c) => c.element.name === field);
  if (!column) {
    const names = columns.map((c) => c.element.name);
    throw new ExciseError('ERR_DATASET_INVALID',
      `${file}: no column "${field}" (columns: ${names.length ? names.slice(0, 20).join(', ') : 'none'}); choose the text column with the textField option`);
  }
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
export function checkParquetFile(file: string, field: string): void {
  let fd: number | undefined;
  let metadata: FileMetaData;
  try {
    fd = openSync(file, 'r');
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
 * The `textField` column of a parquet file, one row group at a time (only that column's pages are
 * read and decompressed: snappy, gzip, zstd, brotli, lz4). Null and empty texts are skipped.
 */
export async function* readParquet(file: string, textField: string): AsyncGenerator<string> {
  let handle: FileHandle;
  let size: number;
  try {
    handle = await open(file, 'r');
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
      let values: Record<string, unknown>[];
      try {
        values = await parquetReadObjects({ file: buffer, metadata, columns: [textField], rowStart, rowEnd: rowStart + rows, compressors });
      } catch (err) {
        throw parquetError(file, `row group ${g}`, err);
      }
      rowStart += rows;
      for (let r = 0; r < values.length; r++) {
        const text = values[r][textField];
        if (text === null || text === undefined || text === '') continue;
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
