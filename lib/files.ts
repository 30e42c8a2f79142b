/**
 * Reading the small files of a model folder (config.json, tokenizer.json ...) safely: a FIFO, a
 * device (/dev/zero) or a folder under a model file's name must fail with a code, never block the
 * process or read without end.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { ExciseError, type ErrorCode } from './errors.js';

export interface FileCodes {
  /** Code when the file does not exist. */
  missing: ErrorCode;
  /** Code when it is not a regular file, is too large or cannot be read. */
  invalid: ErrorCode;
}

/** Size cap of tokenizer.json (far above any real model's; config.json is read and capped natively). */
export const MAX_TOKENIZER_BYTES = 256 * 1024 * 1024;

/**
 * Reads a regular file of at most maxBytes as UTF-8. Opened non-blocking, so a FIFO without a
 * writer fails at once instead of hanging; then checked to be a regular file before any read.
 */
export function readRegularFile(file: string, maxBytes: number, codes: FileCodes): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ExciseError(codes.missing, `${file}: file not found`);
    throw new ExciseError(codes.invalid, `${file}: cannot open (${code ?? (err as Error).message})`, { cause: err });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ExciseError(codes.invalid, `${file}: not a regular file (${st.isDirectory() ? 'a folder' : st.isFIFO() ? 'a FIFO' : 'a device or socket'})`);
    if (st.size > maxBytes) throw new ExciseError(codes.invalid, `${file}: ${st.size} bytes, more than the ${maxBytes} bytes such a file may have`);
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const got = readSync(fd, buf, n, buf.length - n, n);
      if (got === 0) break;  // shrank while read
      n += got;
    }
    return buf.subarray(0, n).toString('utf8');
  } catch (err) {
    if (err instanceof ExciseError) throw err;
    throw new ExciseError(codes.invalid, `${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  } finally {
    closeSync(fd);
  }
}
