// Next-token (and masked-token) evaluation on the device: loss, top-1 and top-k accuracy, and the same accuracies over
// targets outside a given set of (most common) tokens. The LM head runs in chunks of positions, so
// no [batch, seq, vocab] logits tensor ever exists and nothing per-token leaves the device.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "decoder.h"

namespace excise {

struct EvalSums {
  int64_t tokens = 0;       // predicted positions (targets that are real tokens)
  double lossSum = 0;       // sum of cross-entropy, nats
  int64_t top1 = 0;
  int64_t topk = 0;
  int64_t skipTokens = 0;   // targets outside the skip set
  int64_t top1Skip = 0;
  int64_t topkSkip = 0;
};

// ids [batch, seq] int64 (CPU), mask [batch, seq] int (CPU) or undefined; skip: token ids to leave
// out of the *Skip accuracies.
EvalSums EvaluateBatch(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask, const std::vector<int64_t>& skip,
                       int64_t topK);

// Masked-LM evaluation (DecoderConfig::causal false): ids [batch, seq] int64 (CPU) with the chosen
// positions already replaced by the mask token; labels [batch, seq] int64 (CPU): the original token
// at each masked position, -1 elsewhere. Each masked position predicts its own label (no shift).
EvalSums EvaluateMaskedBatch(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& labels,
                             const std::vector<int64_t>& skip, int64_t topK);

}  // namespace excise
