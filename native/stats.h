// Activation statistics per neuron, accumulated on the model's device in float64 over every
// non-padding token: count, sum x, sum |x|, sum x^2, count(x > 0), sum sqrt|x|. No activation is
// kept: each hook reduces its batch at once and the activation is freed with the layer's step.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <vector>

#include "hooks.h"

namespace excise {

struct NeuronSums {
  at::Tensor sum, sumAbs, sumSq, sumSqrtAbs;  // [width] float64, on the model's device
  at::Tensor countPositive;                   // [width] int64
  // CPU only: per-batch partial sums, allocated once (allocating them per call fragments the heap).
  std::vector<double> scratch;      // [4 * width]
  std::vector<int64_t> scratchPos;  // [width]
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

  // The sums as they are now, to roll a failed batch back: a batch's statistics land whole or not
  // at all. Costs one copy of the [width] vectors per hook (nothing next to the batch's forward).
  struct Checkpoint {
    std::vector<std::array<at::Tensor, 5>> sums;  // per point: sum, sumAbs, sumSq, sumSqrtAbs, countPositive
    int64_t tokens = 0;
  };
  Checkpoint Save() const;
  void Rollback(Checkpoint&& c);
  // Deepest layer any point needs (the forward can stop after it).
  int64_t lastLayer() const;

  // The hook body: act [batch, seq, width]; ctx.tokenMask [batch, seq] or null (all real).
  void Accumulate(const HookPoint& p, const at::Tensor& act, const HookContext& ctx);

 private:
  std::vector<HookPoint> points_;
  std::vector<int64_t> slot_;  // layer*2+site -> index into points_/sums_
  std::vector<NeuronSums> sums_;
};

}  // namespace excise
