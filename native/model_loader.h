// Builds a Decoder from a Hugging Face model folder (config.json + safetensors), or from a config
// alone with random weights (benchmarks, tests). Shapes are asserted against the family's table.
#pragma once
#include <memory>
#include <string>

#include "decoder.h"

namespace excise {

struct LoadOptions {
  std::string device = "cpu";
  std::string dtype;  // "" = float32 on CPU, the checkpoint's dtype (else float32) on CUDA
};

std::unique_ptr<Decoder> LoadDecoder(const std::string& dir, const LoadOptions& opts);

// configJson: the text of a config.json. Weights ~ N(0, 0.02), norm weights 1, biases 0.
std::unique_ptr<Decoder> CreateRandomDecoder(const std::string& configJson, const LoadOptions& opts, uint64_t seed);

}  // namespace excise
