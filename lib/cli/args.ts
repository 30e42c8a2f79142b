/**
 * Argument parsing shared by the commands: node:util parseArgs in strict mode with one-line
 * messages, and parsers for the numeric flags.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ExciseError } from '../errors.js';
import { validateDevice, validateDtype, type Device, type Dtype } from '../model.js';

/** A mistake in the command line: reported as `excise: <message>`, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;
export type ParsedValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

/** Parses `argv` strictly; unknown flags, missing values and stray arguments are UsageErrors. */
export function parseCommandArgs(command: string, argv: string[], options: OptionSpec, allowPositionals = false): { values: ParsedValues; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals });
    return { values: values as ParsedValues, positionals };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const quoted = /'([^']*)'/.exec(e.message ?? '')?.[1];
    switch (e.code) {
      case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
        throw new UsageError(`unknown option ${quoted ?? ''} for "excise ${command}" (see "excise ${command} --help")`);
      case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
        throw new UsageError(`unexpected argument ${JSON.stringify(quoted ?? '')} for "excise ${command}" (see "excise ${command} --help")`);
      case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
        const opt = quoted?.split(' ')[0] ?? 'the option';
        if (/ambiguous/.test(e.message)) throw new UsageError(`${opt}: a value starting with "-" must be written ${opt}=VALUE`);
        if (/argument missing/.test(e.message)) throw new UsageError(`${opt} needs a value (see "excise ${command} --help")`);
        if (/does not take an argument/.test(e.message)) throw new UsageError(`${opt} takes no value (see "excise ${command} --help")`);
        throw new UsageError(String(e.message).split('\n')[0]);
      }
      default:
        throw err;
    }
  }
}

export function str(values: ParsedValues, name: string): string | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new UsageError(`--${name} expects a value`);
  if (v.length === 0) throw new UsageError(`--${name}: expected a non-empty value`);
  return v;
}

/** --target-delimiter: any string, the empty one included (choices that carry their own separator). */
export function delimiterFlag(values: ParsedValues): string | undefined {
  const v = values['target-delimiter'];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new UsageError('--target-delimiter expects a value');
  return v;
}

export function requireStr(values: ParsedValues, name: string, command: string): string {
  const v = str(values, name);
  if (v === undefined) throw new UsageError(`missing required option --${name} for "excise ${command}" (see "excise ${command} --help")`);
  return v;
}

export function flag(values: ParsedValues, name: string): boolean {
  return values[name] === true;
}

/** A fraction in [0, 1] with allowZero, else in (0, 1]. */
export function parseFraction(name: string, text: string, { allowZero }: { allowZero: boolean }): number {
  const v = text.trim() === '' ? NaN : Number(text);
  if (!Number.isFinite(v) || v > 1 || (allowZero ? v < 0 : v <= 0)) {
    throw new UsageError(`--${name}: expected a fraction in ${allowZero ? '[0, 1]' : '(0, 1]'}, received ${JSON.stringify(text)}`);
  }
  return v;
}

/**
 * A positive (or, with allowZero, non-negative) integer; "100_000", "100k" and "2M" are accepted
 * for token counts.
 */
export function parseCount(name: string, text: string, { allowZero = false, suffixes = false } = {}): number {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(text.replace(/_/g, '').trim());
  let v = NaN;
  if (m && (suffixes || m[2] === '')) {
    const mult = m[2] === '' ? 1 : m[2].toLowerCase() === 'k' ? 1e3 : 1e6;
    v = Number(m[1]) * mult;
  }
  if (!Number.isSafeInteger(v) || (allowZero ? v < 0 : v < 1)) {
    throw new UsageError(`--${name}: expected ${allowZero ? 'a non-negative' : 'a positive'} integer${suffixes ? ' (e.g. 5000, 100k, 2M)' : ''}, received ${JSON.stringify(text)}`);
  }
  return v;
}

/** A finite number > 0, e.g. a learning rate. */
export function parsePositiveNumber(name: string, text: string): number {
  const v = Number(text);
  if (!(v > 0) || !Number.isFinite(v)) throw new UsageError(`--${name}: expected a positive number, received ${JSON.stringify(text)}`);
  return v;
}

/** A count flag (parseCount) when it is given, else undefined: `optionalCount(values, 'batch-size') ?? 8`. */
export function optionalCount(values: ParsedValues, name: string, options: { allowZero?: boolean; suffixes?: boolean } = {}): number | undefined {
  const text = str(values, name);
  return text !== undefined ? parseCount(name, text, options) : undefined;
}

/**
 * --mask-fraction F / --mask-seed N: how a masked LM's evaluation masks tokens (evaluate's
 * maskFraction and maskSeed). Only the flags given are returned: on a model that predicts the next
 * token, evaluate refuses them.
 */
export const MASKING_OPTIONS: OptionSpec = { 'mask-fraction': { type: 'string' }, 'mask-seed': { type: 'string' } };

export function parseMaskingFlags(values: ParsedValues): { maskFraction?: number; maskSeed?: number } {
  const out: { maskFraction?: number; maskSeed?: number } = {};
  const fraction = str(values, 'mask-fraction');
  if (fraction !== undefined) out.maskFraction = parseFraction('mask-fraction', fraction, { allowZero: false });
  const seed = str(values, 'mask-seed');
  if (seed !== undefined) {
    out.maskSeed = parseCount('mask-seed', seed, { allowZero: true });
    if (out.maskSeed > 0xffffffff) throw new UsageError(`--mask-seed: expected an integer in [0, 2^32), received ${JSON.stringify(seed)}`);
  }
  return out;
}

export function parseDevice(text: string | undefined): Device | 'auto' | undefined {
  if (text === undefined) return undefined;
  if (text === 'auto') return 'auto';
  try {
    return validateDevice(text);
  } catch (err) {
    if (err instanceof ExciseError) throw new UsageError(`--device: expected cpu, cuda, cuda:N or auto, received ${JSON.stringify(text)}`);
    throw err;
  }
}

/** --devices cuda:0,cuda:1: one model split over these devices (loadModel's `devices`). */
export function parseDevices(text: string | undefined): Device[] | undefined {
  if (text === undefined) return undefined;
  const names = text.split(',').map((d) => d.trim());
  return names.map((name) => {
    try {
      return validateDevice(name);
    } catch (err) {
      if (err instanceof ExciseError) throw new UsageError(`--devices: expected a comma-separated list of cpu, cuda or cuda:N (e.g. cuda:0,cuda:1), received ${JSON.stringify(text)}`);
      throw err;
    }
  });
}

export function parseDtype(text: string | undefined, flagName = '--dtype'): Dtype | undefined {
  if (text === undefined) return undefined;
  try {
    return validateDtype(text);
  } catch (err) {
    if (err instanceof ExciseError) throw new UsageError(`${flagName}: expected float32, float16 or bfloat16, received ${JSON.stringify(text)}`);
    throw err;
  }
}

/** The common --device / --devices / --dtype as loadModel options. */
export function loadOptions(values: ParsedValues): { device?: Device | 'auto'; devices?: Device[]; dtype?: Dtype } {
  const device = parseDevice(str(values, 'device'));
  const devices = parseDevices(str(values, 'devices'));
  if (device !== undefined && devices !== undefined) throw new UsageError('--device and --devices: give one of them (--devices splits one model over several devices)');
  const dtype = parseDtype(str(values, 'dtype'));
  return { ...(device ? { device } : {}), ...(devices ? { devices } : {}), ...(dtype ? { dtype } : {}) };
}

export const MODEL_OPTIONS: OptionSpec = {
  device: { type: 'string' },
  devices: { type: 'string' },
  dtype: { type: 'string' },
};

/** Whether argv asks for help (before a "--" terminator). */
export function wantsHelp(argv: string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}
