// Scoring continuations: the log-probability of given tokens under the model, on the device (the
// LM head runs on the scored positions only, in chunks; only one float and one flag per scored
// token leave the device). What likelihood-based benchmarks use.
#pragma once
#include <ATen/ATen.h>

#include "decoder.h"

namespace excise {

struct ScoreResult {
  at::Tensor logprobs;  // [N] float32, CPU: log p(ids[b, t] | ids[b, <t]) for each scored position
  at::Tensor greedy;    // [N] uint8, CPU: 1 when ids[b, t] is the most likely token there
};

// ids [B, S] int64 (CPU); mask [B, S] (1 = token, right padding only) or undefined; targets [B, S]
// bool (CPU): the positions t >= 1 to score. Results are in row-major order of those positions.
ScoreResult ScoreTokens(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& targets);

}  // namespace excise
