// Devices, dtypes and what this LibTorch build offers.
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace excise {

// "cpu", "cuda", "cuda:N". Throws ERR_INVALID_DEVICE for anything else and ERR_DEVICE_UNAVAILABLE
// when CUDA is asked for but this LibTorch has none (or the index is out of range).
at::Device ParseDevice(const std::string& name);
// "float32" | "float16" | "bfloat16" (and the aliases "fp32", "fp16", "bf16", "half", "float").
at::ScalarType ParseDtype(const std::string& name);
std::string DtypeToString(at::ScalarType t);

// Whether this LibTorch is a CUDA build (true even when no GPU is visible).
bool IsCudaBuild();

struct RuntimeInfo {
  std::string torchVersion;
  bool cudaAvailable = false;
  int cudaDeviceCount = 0;
  bool cudaBuild = false;
  std::string cxxAbi;
  bool tf32 = false;
};
RuntimeInfo GetRuntimeInfo();

// TF32 for float32 matmuls and convolutions on CUDA (Ampere and later): about 8x the float32
// tensor-core throughput with a 10-bit mantissa. A process-wide LibTorch setting; off by default.
// No effect on the CPU (CPU float32 stays IEEE float32).
void SetTf32(bool enabled);
bool Tf32Enabled();

}  // namespace excise
