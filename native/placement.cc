#include "placement.h"

#include <c10/core/DeviceGuard.h>
#include <torch/cuda.h>
#include <torch/version.h>
#if (TORCH_VERSION_MAJOR > 2) || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 10)
#define EXCISE_HAS_DEVICE_MEMORY_INFO 1
#include <c10/core/CachingDeviceAllocator.h>  // DeviceAllocator::getMemoryInfo (LibTorch 2.10+)
#else
#define EXCISE_HAS_DEVICE_MEMORY_INFO 0
#endif

#include <algorithm>

#include "errors.h"
#include "runtime.h"

namespace excise {

Placement PlanPlacement(const std::vector<at::Device>& devices, const std::vector<double>& capacity,
                        const PlacementSizes& sizes, bool tiedHead) {
  const int k = static_cast<int>(devices.size());
  const int64_t n = static_cast<int64_t>(sizes.layerBytes.size());
  if (k == 0 || capacity.size() != devices.size()) throw Error(code::kInternal, "placement: no devices");
  if (k > n) {
    throw Error(code::kInvalidArgument, "devices: " + std::to_string(k) + " devices for a model of " + std::to_string(n) +
                                            " layers (every device takes at least one layer; give at most " +
                                            std::to_string(n) + ")");
  }
  Placement p;
  p.devices = devices;
  p.finalDevice = k - 1;
  p.headDevice = tiedHead ? 0 : k - 1;
  // Device i owns the bytes in [shareEnd[i-1], shareEnd[i]) of the model laid out in forward order
  // (embeddings, layer 0, ..., final norm and head), its share proportional to its capacity. A layer
  // goes to the device whose share holds its middle byte: with equal layers and capacities this is
  // an even split, with the embedding (and an untied head) counted on the end devices.
  double total = static_cast<double>(sizes.embedBytes + sizes.finalBytes);
  for (int64_t b : sizes.layerBytes) total += static_cast<double>(b);
  double capacityTotal = 0;
  for (double c : capacity) capacityTotal += std::max(c, 0.0);
  std::vector<double> shareEnd(static_cast<size_t>(k));
  double cumulative = 0;
  for (int i = 0; i < k; ++i) {
    cumulative += capacityTotal > 0 ? std::max(capacity[static_cast<size_t>(i)], 0.0) : 1.0;
    shareEnd[static_cast<size_t>(i)] = total * cumulative / (capacityTotal > 0 ? capacityTotal : k);
  }
  p.layerDevice.resize(static_cast<size_t>(n));
  double before = static_cast<double>(sizes.embedBytes);  // bytes ahead of layer L
  int previous = -1;
  for (int64_t L = 0; L < n; ++L) {
    const double middle = before + static_cast<double>(sizes.layerBytes[static_cast<size_t>(L)]) / 2;
    int want = 0;
    while (want < k - 1 && middle >= shareEnd[static_cast<size_t>(want)]) ++want;
    // Contiguous and complete: never go back, never skip a device, and leave at least one layer
    // for each device after this one.
    const int lo = std::max(previous, static_cast<int>(std::max<int64_t>(k - n + L, 0)));
    const int hi = std::min(previous + 1, k - 1);
    previous = std::clamp(want, lo, hi);
    p.layerDevice[static_cast<size_t>(L)] = previous;
    before += static_cast<double>(sizes.layerBytes[static_cast<size_t>(L)]);
  }
  return p;
}

AutoDevices ResolveAutoDevices() {
  AutoDevices out;
  if (!torch::cuda::is_available()) {
    out.devices = {at::Device(at::kCPU)};
    out.capacity = {1.0};
    return out;
  }
  const int count = static_cast<int>(torch::cuda::device_count());
  for (int i = 0; i < count; ++i) {
    out.devices.emplace_back(at::kCUDA, static_cast<c10::DeviceIndex>(i));
    out.capacity.push_back(1.0);
  }
  if (count < 2) return out;
  // Free memory per GPU, as torch.cuda.mem_get_info reports it (cudaMemGetInfo), through the
  // device-generic allocator interface: no CUDA headers in this build. LibTorch before 2.10 has no
  // such query: then every GPU weighs the same (a balanced split by bytes).
#if EXCISE_HAS_DEVICE_MEMORY_INFO
  try {
    std::vector<double> freeBytes;
    for (int i = 0; i < count; ++i) {
      c10::DeviceGuard guard(out.devices[static_cast<size_t>(i)]);
      freeBytes.push_back(static_cast<double>(c10::getDeviceAllocator(at::kCUDA)->getMemoryInfo(static_cast<c10::DeviceIndex>(i)).first));
    }
    // A GPU with no free memory at all still takes one layer (PlanPlacement), weighted as 1 byte.
    for (double& f : freeBytes) f = std::max(f, 1.0);
    out.capacity = std::move(freeBytes);
  } catch (...) {
    // The allocator cannot say: fall back to equal weights rather than fail the load.
  }
#endif
  return out;
}

std::vector<at::Device> ParseDeviceList(const std::vector<std::string>& names) {
  std::vector<at::Device> out;
  for (size_t i = 0; i < names.size(); ++i) {
    try {
      out.push_back(ParseDevice(names[i]));
    } catch (const Error& e) {
      throw Error(e.code(), "devices[" + std::to_string(i) + "]: " + e.message());
    }
  }
  return out;
}

}  // namespace excise
