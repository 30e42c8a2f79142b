/**
 * The one file that touches the native addon. It loads the addon with node-gyp-build, hands it the
 * ExciseError class, and declares the raw binding's shape. Everything else imports from here.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExciseError } from './errors.js';

/** The package root: lib/ or dist/ sits one level below it. */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface NativeRuntimeInfo {
  torchVersion: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  cudaBuild: boolean;
  cxxAbi: string;
}

export interface NativeBinding {
  setErrorClass(ctor: typeof ExciseError): void;
  runtimeInfo(): NativeRuntimeInfo;
  [name: string]: unknown;
}

function explainLoadFailure(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const hints: string[] = [];
  if (/No native build was found/.test(msg)) {
    hints.push('the addon is not built: run `npm run setup` (or `npm run build:native` when LibTorch is already installed)');
  }
  const missingLib = /lib(torch|c10|torch_cpu|torch_cuda|c10_cuda|cudart|cublas|nvrtc)[\w.-]*\.so[\d.]*/.exec(msg);
  if (missingLib && /cannot open shared object/.test(msg)) {
    hints.push(`the LibTorch library ${missingLib[0]} was not found at run time: the addon was built against a LibTorch ` +
      'that has moved or been removed; rebuild with `npm run build:native`');
  }
  if (/undefined symbol/.test(msg)) {
    hints.push('a symbol is missing: the addon was built against a different LibTorch (version, CUDA or C++ ABI) than ' +
      'the one loaded now, or two LibTorch installs are mixed; rebuild with `npm run build:native` against one install');
  }
  if (/NODE_MODULE_VERSION|was compiled against a different Node\.js/.test(msg)) {
    hints.push('the addon was built for another Node.js version: rebuild with `npm run build:native`');
  }
  if (hints.length === 0) hints.push('rebuild with `npm run build:native`; see README, "Setup"');
  return `could not load the excise native addon: ${msg.split('\n')[0]}\n  ${hints.join('\n  ')}`;
}

let cached: NativeBinding | undefined;

/** Loads the addon once; throws ExciseError(ERR_NATIVE_LOAD) with a fix when it cannot. */
export function native(): NativeBinding {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  let binding: NativeBinding;
  try {
    if (!existsSync(join(packageRoot, 'package.json'))) throw new Error(`package root not found at ${packageRoot}`);
    const load = require('node-gyp-build') as (dir: string) => NativeBinding;
    binding = load(packageRoot);
  } catch (err) {
    throw new ExciseError('ERR_NATIVE_LOAD', explainLoadFailure(err), { cause: err });
  }
  binding.setErrorClass(ExciseError);
  cached = binding;
  return binding;
}
