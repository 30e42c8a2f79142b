// Per-token log-likelihoods on the device: log p(ids[b, t] | ids[b, <t]) at chosen target positions
// of a batch, and whether each target token was the model's most likely one there. The one native
// computation under continuation scoring (model.score, serving) and whole-sequence scoring
// (model.sequenceLogprobs: multiple-choice scoring, membership inference, where the targets are every
// non-padding position t >= 1). The LM head runs on the target positions only, in chunks (as in
// eval.cc), so no [batch, seq, vocab] tensor ever exists; one float and one flag per target leave
// the device.
#pragma once
#include <ATen/ATen.h>

#include "decoder.h"

namespace excise {

struct TokenLogprobs {
  at::Tensor logprob;  // [N] float32, CPU: log p(ids[b, t] | ids[b, <t]) for each target position
  at::Tensor greedy;   // [N] uint8, CPU: 1 when ids[b, t] is the argmax there
};

// ids [B, S] int64 (CPU); mask [B, S] (1 = token, right padding only) or undefined; targets [B, S]
// (CPU, nonzero = score this position; t = 0 is never scored: nothing predicts it). N is the number
// of targets at t >= 1; results are in row-major order of those positions.
TokenLogprobs ComputeTokenLogprobs(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& targets);

}  // namespace excise
