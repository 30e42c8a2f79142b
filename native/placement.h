// Where a model's weights live when it is split over several devices (a device map, as Hugging
// Face's device_map="balanced"): consecutive layers on consecutive devices, the embeddings (and the
// input projection) on the first, the final norm (and the output projection) on the last. The LM
// head sits with the embedding when tied (one tensor: the final hidden state moves back to it),
// else on the last device. A one-device model is the placement with one device.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace excise {

struct Placement {
  std::vector<at::Device> devices;  // stages in order; the same device may appear twice (['cpu', 'cpu'])
  std::vector<int> layerDevice;     // per layer: index into devices, non-decreasing, every index used
  int embedDevice = 0;              // always 0: embeddings, position embeddings, input projection
  int finalDevice = 0;              // the last stage: final norm, output projection
  int headDevice = 0;               // LM head (and its bias): finalDevice, or 0 when tied to the embedding

  // Several stages (even on one physical device): the forward moves the residual stream between them.
  bool split() const { return devices.size() > 1; }
  at::Device layer(int64_t L) const { return devices[static_cast<size_t>(layerDevice[static_cast<size_t>(L)])]; }
  at::Device embed() const { return devices[static_cast<size_t>(embedDevice)]; }
  at::Device last() const { return devices[static_cast<size_t>(finalDevice)]; }
  at::Device head() const { return devices[static_cast<size_t>(headDevice)]; }
};

// Parameter bytes the placement balances (in the model's dtype).
struct PlacementSizes {
  int64_t embedBytes = 0;            // token + position embeddings, input projection
  std::vector<int64_t> layerBytes;   // per layer
  int64_t finalBytes = 0;            // final norm, output projection, and an untied LM head (+ bias)
};

// Splits the layers contiguously over `devices`, balanced by parameter bytes weighted by `capacity`
// (one positive weight per device: equal weights balance bytes; free memory for 'auto'). Every
// device gets at least one layer: more devices than layers is ERR_INVALID_ARGUMENT (naming
// `devices`). tiedHead: the LM head is the embedding (stays on device 0).
Placement PlanPlacement(const std::vector<at::Device>& devices, const std::vector<double>& capacity,
                        const PlacementSizes& sizes, bool tiedHead);

// The devices 'auto' means, and their weights: every visible GPU weighted by its free memory (one
// GPU: that GPU alone; none, or a CPU-only LibTorch: the CPU).
struct AutoDevices {
  std::vector<at::Device> devices;
  std::vector<double> capacity;
};
AutoDevices ResolveAutoDevices();

// Each name as ParseDevice reads it ("cuda" is cuda:0); ERR_INVALID_DEVICE / ERR_DEVICE_UNAVAILABLE
// name the entry (devices[i]).
std::vector<at::Device> ParseDeviceList(const std::vector<std::string>& names);

}  // namespace excise
