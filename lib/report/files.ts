/**
 * Atomic file writes: the content goes to a temporary sibling first, then is renamed over the
 * target, so a reader (or an interrupted run) never sees a half-written file.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ExciseError } from '../errors.js';

export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new ExciseError('ERR_IO', `could not write ${file}: ${(err as Error).message}`, { cause: err });
  }
}
