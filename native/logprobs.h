// Per-token log-likelihoods on the device: log p(ids[t + 1] | ids[0..t]) for every position of a
// batch, and whether that token was the model's most likely one. The LM head runs in chunks of
// positions, as in eval.cc, so no [batch, seq, vocab] tensor ever exists; only [batch, seq - 1]
// floats come back. Multiple-choice scoring and membership inference are sums and quantiles of these.
#pragma once
#include <ATen/ATen.h>

#include "decoder.h"

namespace excise {

struct TokenLogprobs {
  at::Tensor logprob;  // [batch, seq - 1] float32 (CPU); 0 where the target is padding
  at::Tensor greedy;   // [batch, seq - 1] uint8 (CPU); 1 where the target is the argmax
};

// ids [batch, seq] int64 (CPU), mask [batch, seq] int (CPU) or undefined; seq >= 2.
TokenLogprobs ComputeTokenLogprobs(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask);

}  // namespace excise
