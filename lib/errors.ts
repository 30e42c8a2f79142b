/**
 * The one error class excise throws. Every failure has a stable `code` (below) and a message that
 * names the file, tensor or option involved. Native errors arrive as this class too: it is handed
 * to the addon once at load (see native.ts), the better-sqlite3 way. Below it, the option checks
 * every entry point shares (checkSignal, checkKeys, positiveInt, ...).
 */
export type ErrorCode =
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_MODEL_NOT_FOUND'
  | 'ERR_CONFIG_MISSING'
  | 'ERR_CONFIG_INVALID'
  | 'ERR_UNSUPPORTED_ARCHITECTURE'
  | 'ERR_UNSUPPORTED_CONFIG'
  | 'ERR_NOT_CAUSAL_LM'
  | 'ERR_WEIGHTS_MISSING'
  | 'ERR_SAFETENSORS_INVALID'
  | 'ERR_TENSOR_MISSING'
  | 'ERR_TENSOR_SHAPE'
  | 'ERR_TOKEN_OUT_OF_RANGE'
  | 'ERR_TOKENIZER_MISSING'
  | 'ERR_TOKENIZER_INVALID'
  | 'ERR_INVALID_DEVICE'
  | 'ERR_DEVICE_UNAVAILABLE'
  | 'ERR_INVALID_DTYPE'
  | 'ERR_MODEL_DISPOSED'
  | 'ERR_NATIVE_LOAD'
  | 'ERR_DATASET_NOT_FOUND'
  | 'ERR_DATASET_UNSUPPORTED'
  | 'ERR_DATASET_INVALID'
  | 'ERR_DATASET_EMPTY'
  | 'ERR_IO'
  | 'ERR_OUTPUT_EXISTS'
  | 'ERR_ABORTED'
  | 'ERR_OUT_OF_MEMORY'
  | 'ERR_TORCH'
  | 'ERR_INTERNAL'
  | 'ERR_RENDEZVOUS'
  | 'ERR_RANK_FAILED';

export class ExciseError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ExciseError';
    this.code = code;
  }
}

/** Describes a received value for messages: "a string ('abc')", "an array of 3", "undefined". */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string') return `a string (${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)})`;
  if (typeof value === 'number') return `the number ${value}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of ${(value as unknown as { length: number }).length}`;
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'Object'})`;
  return `a ${typeof value}`;
}

export function invalidArgument(option: string, expected: string, received: unknown): ExciseError {
  return new ExciseError('ERR_INVALID_ARGUMENT', `${option}: expected ${expected}, received ${describeValue(received)}`);
}

/**
 * Runs a native call so that a failure's stack points at the user's code, not at the promise
 * machinery: the stack is captured before the call (sharp's habit) and attached on rejection.
 */
export async function withCallerStack<T>(run: () => Promise<T>): Promise<T> {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, withCallerStack);
  try {
    return await run();
  } catch (err) {
    if (err instanceof Error && holder.stack) {
      const callerFrames = holder.stack.split('\n').slice(1).join('\n');
      err.stack = `${err.name}: ${err.message}\n${callerFrames}`;
    }
    throw err;
  }
}

/** A `signal` option: undefined or an AbortSignal (ERR_INVALID_ARGUMENT naming `${where}: signal` otherwise). */
export function checkSignal(where: string, signal: unknown): asserts signal is AbortSignal | undefined {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgument(`${where}: signal`, 'an AbortSignal', signal);
}

// Option checks shared by every entry point, so that a bad option reads the same everywhere: each
// throws ERR_INVALID_ARGUMENT naming the option (`name`, or `${where}: ...`), what was expected and
// what was received; the value checks return the value.

/** An options argument: a plain object, not null or an array ("${where}: expected an options object, ..."). */
export function checkOptionsObject(where: string, options: unknown): asserts options is Record<string, unknown> {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArgument(where, 'an options object', options);
  }
}

/** Every key of `options` is one of `allowed` ("${where}: unknown option "x" (expected one of: a, b)"). */
export function checkKeys(where: string, options: object, allowed: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new ExciseError('ERR_INVALID_ARGUMENT', `${where}: unknown option "${key}" (expected one of: ${allowed.join(', ')})`);
    }
  }
}

/** An integer >= 1. */
export function positiveInt(name: string, value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 1) throw invalidArgument(name, 'a positive integer', value);
  return value as number;
}

/** An integer >= 0. */
export function nonNegativeInt(name: string, value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 0) throw invalidArgument(name, 'a non-negative integer', value);
  return value as number;
}

/** A finite number > 0. */
export function positiveNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) throw invalidArgument(name, 'a positive number', value);
  return value;
}

/** A number in (0, 1], or in [0, 1] with allowZero. */
export function checkFraction(name: string, value: unknown, allowZero: boolean): number {
  if (typeof value !== 'number' || !(value <= 1) || !(allowZero ? value >= 0 : value > 0)) {
    throw invalidArgument(name, allowZero ? 'a fraction in [0, 1]' : 'a fraction in (0, 1]', value);
  }
  return value;
}

/** true or false. */
export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidArgument(name, 'a boolean', value);
  return value;
}
