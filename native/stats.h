// Activation statistics per neuron, accumulated on the model's device over every non-padding token:
// count, sum x, sum |x|, sum x^2, sum sqrt|x|, count(x > 0). No activation is kept: each hook
// reduces its batch at once into float32 partial sums read straight from the activation (in the
// model's dtype), and only those [width] partials are added into the float64 totals.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <vector>

#include "hooks.h"

namespace excise {

// The sums, in the order the export lists them. The one list of statistics keys: the export names
// each sum from it, and lib/method/stats.ts (STAT_SUMS) reads the sums by these names (a test checks
// that the export carries exactly the keys that list expects).
enum SumIndex : size_t { kSum = 0, kSumAbs, kSumSq, kSumSqrtAbs, kCountPositive, kSumCount };
inline constexpr std::array<const char*, kSumCount> kSumNames = {"sum", "sumAbs", "sumSq", "sumSqrtAbs", "countPositive"};

struct NeuronSums {
  // [width] each on the hooked layer's device (a split model keeps each layer's sums where the layer
  // is; the export copies them to the host): float64, except countPositive (int64). Undefined until
  // the hook first runs.
  std::array<at::Tensor, kSumCount> totals;
  bool defined() const { return totals[kSum].defined(); }
};

class StatsAccumulator {
 public:
  StatsAccumulator(std::vector<HookPoint> points, int64_t nLayers) : points_(std::move(points)), slot_(nLayers * 2, -1) {
    for (size_t i = 0; i < points_.size(); ++i) slot_[points_[i].layer * 2 + static_cast<int64_t>(points_[i].site)] = static_cast<int64_t>(i);
    sums_.resize(points_.size());
  }

  const std::vector<HookPoint>& points() const { return points_; }
  // The model this session was begun on (identity only, never dereferenced): its hook points and
  // widths are that model's.
  const void* owner = nullptr;
  const std::vector<NeuronSums>& sums() const { return sums_; }
  // Real (non-padding) tokens seen; the collect job adds each batch's count, taken from its mask.
  int64_t tokens = 0;
  // Test-only (EXCISE_TEST_STATS_DEVICE_PATH): reduce with the ATen ops the GPU uses even on the
  // CPU, so CPU tests check the device path's arithmetic and its padding selection.
  bool forceDevicePath = false;

  // The sums as they are now, to roll a failed batch back: a batch's statistics land whole or not
  // at all. Costs one copy of the [width] vectors per hook (nothing next to the batch's forward).
  struct Checkpoint {
    std::vector<std::array<at::Tensor, kSumCount>> totals;  // per point
    int64_t tokens = 0;
  };
  Checkpoint Save() const;
  void Rollback(Checkpoint&& c);
  // Deepest layer any point needs (the forward can stop after it).
  int64_t lastLayer() const;

  // The hook body: act [batch, seq, width]; ctx says which rows are real.
  void Accumulate(const HookPoint& p, const at::Tensor& act, const HookContext& ctx);

 private:
  std::vector<HookPoint> points_;
  std::vector<int64_t> slot_;  // layer*2+site -> index into points_/sums_
  std::vector<NeuronSums> sums_;
};

}  // namespace excise
