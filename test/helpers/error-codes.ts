/**
 * The project's error-code lists, read from their three homes: native/errors.h (what the native
 * core can throw), lib/errors.ts (the ErrorCode union) and the README's "Errors" section.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function codesIn(text: string, pattern: RegExp): string[] {
  return [...new Set([...text.matchAll(pattern)].map((m) => m[1]))].sort();
}

/** Codes of the ErrorCode union in lib/errors.ts. */
export function tsErrorCodes(): string[] {
  const text = readFileSync(join(root, 'lib', 'errors.ts'), 'utf8');
  const union = /export type ErrorCode =([^;]*);/.exec(text);
  if (!union) throw new Error('lib/errors.ts: no ErrorCode union');
  return codesIn(union[1], /'(ERR_[A-Z_]+)'/g);
}

/** Codes declared in native/errors.h's code namespace. */
export function nativeErrorCodes(): string[] {
  const text = readFileSync(join(root, 'native', 'errors.h'), 'utf8');
  return codesIn(text, /inline constexpr const char\* k\w+ = "(ERR_[A-Z_]+)"/g);
}

/** Codes listed in the README's "## Errors" section. */
export function readmeErrorCodes(): string[] {
  const text = readFileSync(join(root, 'README.md'), 'utf8');
  const section = /\n## Errors\n([\s\S]*?)\n## /.exec(text);
  if (!section) throw new Error('README.md: no "## Errors" section');
  return codesIn(section[1], /`(ERR_[A-Z_]+)`/g);
}
