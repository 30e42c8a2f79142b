#include "stats.h"

namespace excise {

int64_t StatsAccumulator::lastLayer() const {
  int64_t last = -1;
  for (const HookPoint& p : points_) last = std::max(last, p.layer);
  return last;
}

void StatsAccumulator::Accumulate(const HookPoint& p, const at::Tensor& act, const HookContext& ctx) {
  const int64_t idx = slot_[p.layer * 2 + static_cast<int64_t>(p.site)];
  if (idx < 0) return;
  const int64_t width = act.size(-1);
  // Reduce this batch in float64 on the device; only [width] vectors survive the hook.
  at::Tensor x64 = act.reshape({-1, width}).to(at::kDouble);  // [tokens, width]
  if (ctx.tokenMask != nullptr) {
    // Zero the padding rows: a zero adds nothing to any sum and is not > 0. (Multiplying rather
    // than selecting rows avoids a device-to-host sync per hook.)
    x64 = x64 * ctx.tokenMask->reshape({-1, 1}).to(at::kDouble);
  }
  at::Tensor absX = x64.abs();
  NeuronSums& s = sums_[static_cast<size_t>(idx)];
  if (!s.sum.defined()) {
    auto opts = x64.options();
    s.sum = at::zeros({width}, opts);
    s.sumAbs = at::zeros({width}, opts);
    s.sumSq = at::zeros({width}, opts);
    s.sumSqrtAbs = at::zeros({width}, opts);
    s.countPositive = at::zeros({width}, opts.dtype(at::kLong));
  }
  s.sum.add_(x64.sum(0));
  s.sumAbs.add_(absX.sum(0));
  s.sumSq.add_((x64 * x64).sum(0));
  s.sumSqrtAbs.add_(absX.sqrt_().sum(0));
  s.countPositive.add_((x64 > 0).sum(0));
}

}  // namespace excise
