#include "stats.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
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
    std::array<at::Tensor, kSumCount> saved;  // undefined when not allocated yet: rolling back un-allocates it
    if (s.defined()) {
      for (size_t k = 0; k < kSumCount; ++k) saved[k] = s.totals[k].clone();
    }
    c.totals.push_back(std::move(saved));
  }
  return c;
}

void StatsAccumulator::Rollback(Checkpoint&& c) {
  tokens = c.tokens;
  for (size_t i = 0; i < sums_.size(); ++i) sums_[i].totals = std::move(c.totals[i]);
}

namespace {

// CPU: one fused pass over the activation in its own dtype (no converted copy). Columns are split
// across threads in tiles; each tile streams the real rows and accumulates float32 partial sums,
// flushed into the float64 totals every kRowBlock rows (so float32 rounding never builds up over a
// long batch). Padding rows are skipped, never read: an Inf or NaN there cannot reach a sum.
constexpr int64_t kColumnTile = 256;
constexpr int64_t kRowBlock = 256;

template <typename T>
void AccumulateCpuTyped(const T* data, int64_t rows, int64_t width, const bool* mask, NeuronSums& s) {
  double* sum = s.totals[kSum].data_ptr<double>();
  double* sumAbs = s.totals[kSumAbs].data_ptr<double>();
  double* sumSq = s.totals[kSumSq].data_ptr<double>();
  double* sumSqrtAbs = s.totals[kSumSqrtAbs].data_ptr<double>();
  int64_t* countPos = s.totals[kCountPositive].data_ptr<int64_t>();
  // Chunks own disjoint columns, so threads never share a total.
  at::parallel_for(0, width, kColumnTile, [&](int64_t begin, int64_t end) {
    for (int64_t tile = begin; tile < end; tile += kColumnTile) {
      const int64_t tw = std::min(kColumnTile, end - tile);
      float ps[kColumnTile], pa[kColumnTile], pq[kColumnTile], pr[kColumnTile];
      int32_t pc[kColumnTile];
      auto clear = [&] {
        std::fill(ps, ps + tw, 0.f);
        std::fill(pa, pa + tw, 0.f);
        std::fill(pq, pq + tw, 0.f);
        std::fill(pr, pr + tw, 0.f);
        std::fill(pc, pc + tw, 0);
      };
      auto flush = [&] {
        for (int64_t j = 0; j < tw; ++j) {
          sum[tile + j] += ps[j];
          sumAbs[tile + j] += pa[j];
          sumSq[tile + j] += pq[j];
          sumSqrtAbs[tile + j] += pr[j];
          countPos[tile + j] += pc[j];
        }
        clear();
      };
      clear();
      int64_t inBlock = 0;
      for (int64_t t = 0; t < rows; ++t) {
        if (mask != nullptr && !mask[t]) continue;
        const T* row = data + t * width + tile;
        for (int64_t j = 0; j < tw; ++j) {
          const float v = static_cast<float>(row[j]);
          const float av = std::fabs(v);
          ps[j] += v;
          pa[j] += av;
          pq[j] += v * v;
          pr[j] += std::sqrt(av);
          pc[j] += v > 0.f;
        }
        if (++inBlock == kRowBlock) {
          flush();
          inBlock = 0;
        }
      }
      if (inBlock > 0) flush();
    }
  });
}

void AccumulateCpu(const at::Tensor& act, const at::Tensor* tokenMask, NeuronSums& s) {
  const int64_t width = act.size(-1);
  at::Tensor x = act.reshape({-1, width});  // [tokens, width]
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kBFloat16 && x.scalar_type() != at::kHalf) x = x.to(at::kFloat);
  x = x.contiguous();
  at::Tensor maskT = tokenMask != nullptr ? tokenMask->reshape({-1}).to(at::kBool).contiguous() : at::Tensor();
  const bool* mask = maskT.defined() ? maskT.data_ptr<bool>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "excise_stats_cpu", [&] {
    AccumulateCpuTyped<scalar_t>(x.data_ptr<scalar_t>(), x.size(0), width, mask, s);
  });
}

// Any device (the GPU path): select the real rows by index (no host sync, padding rows never
// read), then five reductions that read the activation in its own dtype and accumulate in float32
// (on CUDA a bf16/fp16 -> float32 reduction converts inside the kernel; nothing [tokens, width] is
// materialized beyond the selected rows and one bool mask). Only the [width] float32 partials are
// added into the float64 totals. About 12 bytes of traffic per bf16 element, against ~116 for the
// float64 copies this replaced.
void AccumulateWithAten(const at::Tensor& act, const HookContext& ctx, NeuronSums& s) {
  const int64_t width = act.size(-1);
  at::Tensor x = act.reshape({-1, width});                      // [tokens, width]
  if (ctx.realRows != nullptr) x = x.index_select(0, *ctx.realRows);  // [real tokens, width]
  const auto f32 = c10::optional<at::ScalarType>(at::kFloat);
  const std::vector<int64_t> rowsDim = {0};
  s.totals[kSum].add_(at::sum(x, rowsDim, false, f32));
  s.totals[kSumAbs].add_(at::linalg_vector_norm(x, 1, rowsDim, false, f32));
  // ||x||_2^2 = sum x^2 and ||x||_0.5^0.5 = sum sqrt|x|: the norms square / root per element in
  // float32 inside the reduction (squaring in bf16 would round every term).
  s.totals[kSumSq].add_(at::linalg_vector_norm(x, 2, rowsDim, false, f32).to(at::kDouble).square_());
  s.totals[kSumSqrtAbs].add_(at::linalg_vector_norm(x, 0.5, rowsDim, false, f32).to(at::kDouble).sqrt_());
  s.totals[kCountPositive].add_(x.gt(0).sum(0));
}

}  // namespace

void StatsAccumulator::Accumulate(const HookPoint& p, const at::Tensor& act, const HookContext& ctx) {
  const int64_t idx = slot_[p.layer * 2 + static_cast<int64_t>(p.site)];
  if (idx < 0) return;
  const int64_t width = act.size(-1);
  NeuronSums& s = sums_[static_cast<size_t>(idx)];
  if (!s.defined()) {
    auto opts = act.options().dtype(at::kDouble);
    for (size_t k = 0; k < kSumCount; ++k) s.totals[k] = at::zeros({width}, k == kCountPositive ? opts.dtype(at::kLong) : opts);
  }
  if (act.device().is_cpu() && !forceDevicePath) {
    AccumulateCpu(act, ctx.tokenMask, s);
  } else {
    AccumulateWithAten(act, ctx, s);
  }
}

}  // namespace excise
