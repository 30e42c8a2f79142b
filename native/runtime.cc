#include "runtime.h"

#include <torch/cuda.h>
#include <torch/version.h>

#include <dlfcn.h>

#include <cctype>

#include "errors.h"

namespace excise {

bool IsCudaBuild() {
  // at::hasCUDA() also needs a visible device. A CUDA LibTorch's libtorch_cuda is always loaded with
  // the addon (linked with --no-as-needed, or needed by libtorch itself), a CPU one has none.
  void* handle = dlopen("libtorch_cuda.so", RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  dlclose(handle);
  return true;
}

at::Device ParseDevice(const std::string& name) {
  if (name == "cpu") return at::Device(at::kCPU);
  int index = -1;
  if (name == "cuda") {
    index = 0;
  } else if (name.rfind("cuda:", 0) == 0 && name.size() > 5 && name.size() < 9 && !(name.size() > 6 && name[5] == '0')) {
    // cuda:N, N in 0..999 without leading zeros ("cuda:01" is not a device name).
    index = 0;
    for (size_t i = 5; i < name.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(name[i]))) {
        index = -1;
        break;
      }
      index = index * 10 + (name[i] - '0');
    }
  }
  if (index < 0) {
    throw Error(code::kInvalidDevice, "device: expected 'cpu', 'cuda' or 'cuda:N', received '" + name + "'");
  }
  if (!torch::cuda::is_available()) {
    if (IsCudaBuild()) {
      throw Error(code::kDeviceUnavailable,
                  "device '" + name + "': this is a CUDA build of LibTorch " + TORCH_VERSION +
                      ", but no GPU is visible (no NVIDIA driver, no device, or CUDA_VISIBLE_DEVICES hides them)");
    }
    throw Error(code::kDeviceUnavailable,
                "device '" + name + "': excise runs on a CPU-only build of LibTorch " + TORCH_VERSION +
                    "; rebuild it against a CUDA LibTorch: `npx excise setup --cuda` (see README, 'Using a CUDA LibTorch')");
  }
  const int count = static_cast<int>(torch::cuda::device_count());
  if (index >= count) {
    throw Error(code::kDeviceUnavailable,
                "device '" + name + "': only " + std::to_string(count) + " CUDA device(s) are visible");
  }
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
}

at::ScalarType ParseDtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "float") return at::kFloat;
  if (name == "float16" || name == "fp16" || name == "half") return at::kHalf;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  throw Error(code::kInvalidDtype, "dtype: expected 'float32', 'float16' or 'bfloat16', received '" + name + "'");
}

std::string DtypeToString(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kDouble: return "float64";
    default: return c10::toString(t);
  }
}

RuntimeInfo GetRuntimeInfo() {
  RuntimeInfo info;
  info.torchVersion = TORCH_VERSION;
  info.cudaAvailable = torch::cuda::is_available();
  info.cudaDeviceCount = info.cudaAvailable ? static_cast<int>(torch::cuda::device_count()) : 0;
  info.cudaBuild = IsCudaBuild() || info.cudaAvailable;
  info.tf32 = Tf32Enabled();
#if defined(_GLIBCXX_USE_CXX11_ABI)
  info.cxxAbi = _GLIBCXX_USE_CXX11_ABI ? "cxx11" : "pre-cxx11";
#endif
  return info;
}

}  // namespace excise

namespace excise {

void SetTf32(bool enabled) {
  at::globalContext().setAllowTF32CuBLAS(enabled);
  at::globalContext().setAllowTF32CuDNN(enabled);
}

bool Tf32Enabled() { return at::globalContext().allowTF32CuBLAS(); }

}  // namespace excise
