// Builds a Decoder from a Hugging Face model folder (config.json + safetensors), or from a config
// alone with random weights (benchmarks, tests). Shapes are asserted against the family's table.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "decoder.h"

namespace excise {

struct LoadOptions {
  // "cpu", "cuda", "cuda:N", or "auto": every visible GPU, layers split by free memory (one GPU:
  // that GPU; none: the CPU).
  std::string device = "cpu";
  // When not empty, instead of `device`: the model split over these devices in order (placement.h).
  std::vector<std::string> devices;
  std::string dtype;  // "" = float32 when every device is the CPU, else the checkpoint's dtype (else float32)
};

std::unique_ptr<Decoder> LoadDecoder(const std::string& dir, const LoadOptions& opts);

// configJson: the text of a config.json. Weights ~ N(0, 0.02), norm weights 1, biases 0.
std::unique_ptr<Decoder> CreateRandomDecoder(const std::string& configJson, const LoadOptions& opts, uint64_t seed);

}  // namespace excise
