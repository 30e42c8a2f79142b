/**
 * The one error class excise throws. Every failure has a stable `code` (below) and a message that
 * names the file, tensor or option involved. Native errors arrive as this class too: it is handed
 * to the addon once at load (see native.ts), the better-sqlite3 way.
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
