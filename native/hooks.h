// Hook points: stable dotted names, the same for every architecture (TransformerLens style).
//   blocks.{L}.mlp.pre_out   input of the MLP output projection  [batch, seq, dMlp]
//   blocks.{L}.attn.pre_out  input of the attention output projection [batch, seq, nHeads*headDim]
// A HookSet is scoped to one forward pass: the caller builds it, the decoder calls it.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

namespace excise {

enum class HookSite { MlpPreOut = 0, AttnPreOut = 1 };

struct HookPoint {
  int64_t layer;
  HookSite site;
};

std::string HookName(const HookPoint& p);
// Parses "blocks.3.mlp.pre_out"; false when the name is not a hook point of a model with nLayers.
bool ParseHookName(const std::string& name, int64_t nLayers, HookPoint* out);

// What a hook sees: the activation, and which tokens are real (not padding).
struct HookContext {
  const at::Tensor* tokenMask = nullptr;  // [batch, seq] bool on the hooked layer's device; nullptr = all real
  // The same as row indices: the real tokens' positions in the flattened [batch * seq] rows, int64
  // on the hooked layer's device (nullptr = all real). Built once per forward from the host mask, so a
  // hook can select the real rows without a device-to-host sync.
  const at::Tensor* realRows = nullptr;
};

class HookSet {
 public:
  using Fn = std::function<void(const HookPoint&, const at::Tensor& activation, const HookContext&)>;

  HookSet(int64_t nLayers, Fn fn) : fn_(std::move(fn)), want_(static_cast<size_t>(nLayers) * 2, false) {}
  void enable(const HookPoint& p) { want_[index(p)] = true; }
  void enableAll() { std::fill(want_.begin(), want_.end(), true); }
  bool wants(int64_t layer, HookSite site) const { return want_[index({layer, site})]; }
  void call(int64_t layer, HookSite site, const at::Tensor& act, const HookContext& ctx) const {
    if (wants(layer, site)) fn_({layer, site}, act, ctx);
  }

 private:
  static size_t index(const HookPoint& p) { return static_cast<size_t>(p.layer) * 2 + static_cast<size_t>(p.site); }
  Fn fn_;
  std::vector<bool> want_;
};

}  // namespace excise
