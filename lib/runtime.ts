import { native } from './native.js';

export interface RuntimeInfo {
  /** LibTorch version the addon runs on, e.g. "2.13.0". */
  torchVersion: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  /** Whether LibTorch is a CUDA build (true even when no GPU is visible: then cudaAvailable is false). */
  cudaBuild: boolean;
  /** C++ ABI of the build: "cxx11" or "pre-cxx11". */
  cxxAbi: string;
}

/** What this installation of excise runs on. */
export function runtimeInfo(): RuntimeInfo {
  const r = native().runtimeInfo();
  return { torchVersion: r.torchVersion, cudaAvailable: r.cudaAvailable, cudaDeviceCount: r.cudaDeviceCount, cudaBuild: r.cudaBuild, cxxAbi: r.cxxAbi };
}
