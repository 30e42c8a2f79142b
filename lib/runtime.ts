import { checkBoolean } from './errors.js';
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
  /** Whether float32 matmuls on CUDA may use TF32 (see setTf32). */
  tf32: boolean;
}

/** What this installation of excise runs on. */
export function runtimeInfo(): RuntimeInfo {
  const r = native().runtimeInfo();
  return { torchVersion: r.torchVersion, cudaAvailable: r.cudaAvailable, cudaDeviceCount: r.cudaDeviceCount, cudaBuild: r.cudaBuild, cxxAbi: r.cxxAbi, tf32: r.tf32 };
}

/**
 * Opts float32 models on CUDA into TF32 matmuls (Ampere and later: several times float32's
 * tensor-core throughput, with a 10-bit mantissa, as `torch.backends.cuda.matmul.allow_tf32`).
 * A process-wide LibTorch setting, off by default; it changes nothing on the CPU, nor for bf16/fp16.
 */
export function setTf32(enabled: boolean): void {
  checkBoolean('setTf32(enabled)', enabled);
  native().setTf32(enabled);
}
