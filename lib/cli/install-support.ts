/**
 * What `excise setup | build | doctor` share: the install-time helpers (scripts/native-addon.cjs and
 * scripts/find-libtorch.cjs, plain CommonJS that `npm install` runs before any TypeScript build).
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../native.js';

export interface TorchDescription {
  root: string;
  version: string;
  lib: string;
  cuda: boolean;
  cxxAbi: string;
  std: string;
}

export interface BuildResult {
  ok: boolean;
  reason?: 'no-libtorch' | 'compile';
  how?: 'prebuilt' | 'compiled';
  desc?: TorchDescription;
  message?: string;
}

export interface AddonRecord {
  builtWith?: string;
  torchRoot: string;
  torchVersion: string;
  cuda: boolean;
  cxxAbi?: string;
  cxxStandard?: string;
}

export interface NativeAddonHelpers {
  paths: { built: string; prebuilt: string; prebuiltRecord: string; torchLink: string; log: string };
  commands: { setup: string; build: string };
  installed: boolean;
  checkAddon(): { file: string | null; kind: 'built' | 'prebuilt' | null; record: AddonRecord | null; problem: string | null };
  prebuiltFits(desc: TorchDescription): { fits: boolean; why?: string; record?: AddonRecord };
  build(options: { log: (line: string) => void; fromSource?: boolean }): Promise<BuildResult>;
  tryLoad(file: string): { ok: true; info: { torchVersion: string; cudaAvailable: boolean; cudaDeviceCount: number; cudaBuild: boolean; cxxAbi: string } } | { ok: false; error: string };
  readJson(file: string): unknown;
  haveCompiler(): string | null;
  nodeGyp(): string | null;
}

export interface LibtorchLocator {
  locate(): { root: string; via: string };
  describe(root: string): TorchDescription;
  isTorchRoot(dir: string): boolean;
  userCacheDir(): string;
}

const require = createRequire(import.meta.url);
export const addonHelpers = (): NativeAddonHelpers => require(join(packageRoot, 'scripts', 'native-addon.cjs')) as NativeAddonHelpers;
export const locator = (): LibtorchLocator => require(join(packageRoot, 'scripts', 'find-libtorch.cjs')) as LibtorchLocator;
