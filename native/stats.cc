#include "stats.h"

#include <ATen/Parallel.h>

#include <cmath>

namespace excise {

int64_t StatsAccumulator::lastLayer() const {
  int64_t last = -1;
  for (const HookPoint& p : points_) last = std::max(last, p.layer);
  return last;
}

StatsAccumulator::Checkpoint StatsAccumulator::Save() const {
  Checkpoint c;
  c.tokens = tokens;
  for (const NeuronSums& s : sums_) {
    if (!s.sum.defined()) {
      c.sums.push_back({});  // not allocated yet: rolling back un-allocates it
      continue;
    }
    c.sums.push_back({s.sum.clone(), s.sumAbs.clone(), s.sumSq.clone(), s.sumSqrtAbs.clone(), s.countPositive.clone()});
  }
  return c;
}

void StatsAccumulator::Rollback(Checkpoint&& c) {
  tokens = c.tokens;
  for (size_t i = 0; i < sums_.size(); ++i) {
    auto& saved = c.sums[i];
    NeuronSums& s = sums_[i];
    s.sum = std::move(saved[0]);
    s.sumAbs = std::move(saved[1]);
    s.sumSq = std::move(saved[2]);
    s.sumSqrtAbs = std::move(saved[3]);
    s.countPositive = std::move(saved[4]);
  }
}

namespace {

// CPU: one fused pass over the activations (the ATen ops below take five passes in float64, which
// on a CPU costs as much as the layer's matmuls). Columns are split across threads; each thread
// streams the rows of its columns and accumulates all five sums in float64.
void AccumulateCpu(const at::Tensor& act, const at::Tensor* tokenMask, NeuronSums& s) {
  const int64_t width = act.size(-1);
  at::Tensor x = act.reshape({-1, width}).to(at::kFloat).contiguous();  // [tokens, width]
  const int64_t n = x.size(0);
  at::Tensor maskT = tokenMask != nullptr ? tokenMask->reshape({-1}).to(at::kBool).contiguous() : at::Tensor();
  const float* data = x.data_ptr<float>();
  const bool* mask = maskT.defined() ? maskT.data_ptr<bool>() : nullptr;
  double* sum = s.sum.data_ptr<double>();
  double* sumAbs = s.sumAbs.data_ptr<double>();
  double* sumSq = s.sumSq.data_ptr<double>();
  double* sumSqrtAbs = s.sumSqrtAbs.data_ptr<double>();
  int64_t* countPos = s.countPositive.data_ptr<int64_t>();
  // Per-batch partial sums, one slot per column: chunks own disjoint columns, so threads never share
  // a slot and nothing is allocated inside the parallel region.
  s.scratch.assign(static_cast<size_t>(width) * 4, 0.0);
  s.scratchPos.assign(static_cast<size_t>(width), 0);
  double* as = s.scratch.data();
  double* aa = as + width;
  double* aq = aa + width;
  double* ar = aq + width;
  int64_t* ac = s.scratchPos.data();
  at::parallel_for(0, width, 256, [&](int64_t begin, int64_t end) {
    for (int64_t t = 0; t < n; ++t) {
      if (mask != nullptr && !mask[t]) continue;
      const float* row = data + t * width;
      for (int64_t j = begin; j < end; ++j) {
        const double v = row[j];
        const double av = std::fabs(v);
        as[j] += v;
        aa[j] += av;
        aq[j] += v * v;
        ar[j] += std::sqrt(av);
        ac[j] += v > 0;
      }
    }
  });
  for (int64_t j = 0; j < width; ++j) {
    sum[j] += as[j];
    sumAbs[j] += aa[j];
    sumSq[j] += aq[j];
    sumSqrtAbs[j] += ar[j];
    countPos[j] += ac[j];
  }
}

}  // namespace

void StatsAccumulator::Accumulate(const HookPoint& p, const at::Tensor& act, const HookContext& ctx) {
  const int64_t idx = slot_[p.layer * 2 + static_cast<int64_t>(p.site)];
  if (idx < 0) return;
  const int64_t width = act.size(-1);
  NeuronSums& s = sums_[static_cast<size_t>(idx)];
  if (!s.sum.defined()) {
    auto opts = act.options().dtype(at::kDouble);
    s.sum = at::zeros({width}, opts);
    s.sumAbs = at::zeros({width}, opts);
    s.sumSq = at::zeros({width}, opts);
    s.sumSqrtAbs = at::zeros({width}, opts);
    s.countPositive = at::zeros({width}, opts.dtype(at::kLong));
  }
  if (act.device().is_cpu()) {
    AccumulateCpu(act, ctx.tokenMask, s);
    return;
  }
  // GPU: reduce this batch in float64 on the device with ATen (memory-bound passes, cheap next to
  // the layer's matmuls); only [width] vectors survive the hook.
  at::Tensor x64 = act.reshape({-1, width}).to(at::kDouble);  // [tokens, width]
  if (ctx.tokenMask != nullptr) {
    // Zero the padding rows: a zero adds nothing to any sum and is not > 0. (Multiplying rather
    // than selecting rows avoids a device-to-host sync per hook.)
    x64 = x64 * ctx.tokenMask->reshape({-1, 1}).to(at::kDouble);
  }
  at::Tensor absX = x64.abs();
  s.sum.add_(x64.sum(0));
  s.sumAbs.add_(absX.sum(0));
  s.sumSq.add_((x64 * x64).sum(0));
  s.sumSqrtAbs.add_(absX.sqrt_().sum(0));
  s.countPositive.add_((x64 > 0).sum(0));
}

}  // namespace excise
