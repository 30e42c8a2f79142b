// Pruning in place: a selected neuron's output-projection input column is zeroed, together with the
// input rows and biases that feed only that neuron (so its activation becomes 0 too, and the result
// is exactly the same as zeroing the column alone). Every zeroed slice is journaled, so restore()
// puts the model back exactly without ever copying the whole model.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "decoder.h"

namespace excise {

struct PruneRequest {
  std::vector<std::vector<int64_t>> ff;    // per layer: FF neuron indices in [0, dMlp)
  std::vector<std::vector<int64_t>> attn;  // per layer: attention neuron indices h * headDim + d
  // Optional mean offset: per layer the mean activation of every neuron ([dMlp] / [nHeads*headDim]),
  // or empty. The removed neuron is replaced by its mean through the output bias.
  std::vector<std::vector<double>> ffMean, attnMean;
};

struct PruneResult {
  std::vector<int64_t> ffPruned, attnPruned;  // per layer: newly pruned by this call
};

class PruneState {
 public:
  explicit PruneState(const DecoderConfig& c);

  // Applies a request; neurons already pruned are skipped (prunes compose and are idempotent).
  // Validates every index first, so a bad request changes nothing.
  PruneResult Apply(Decoder& d, const PruneRequest& req);
  // Puts back every zeroed value and bias, in reverse order. Exact.
  void Restore();
  // Zeroes every pruned slice again (after training moved them: a relearning attack that keeps
  // pruned neurons at zero). Mean-offset biases are left as they are; the journal is unchanged.
  void Rezero();

  const std::vector<std::vector<uint8_t>>& ffMask() const { return ff_; }    // 1 = pruned
  const std::vector<std::vector<uint8_t>>& attnMask() const { return attn_; }

 private:
  struct Saved {
    at::Tensor target;
    int64_t dim;
    at::Tensor index;   // int64, on the target's device
    at::Tensor values;  // the slice before the edit
    bool zeroed = true; // false for a mean-offset bias (changed, not zeroed)
  };
  void Zero(const at::Tensor& t, int64_t dim, const std::vector<int64_t>& idx);
  void AddToBias(const at::Tensor& bias, const at::Tensor& delta);

  std::vector<std::vector<uint8_t>> ff_, attn_;
  std::vector<std::vector<uint8_t>> valueZeroed_;  // per layer, per kv feature: V row already zeroed
  std::vector<Saved> journal_;
};

}  // namespace excise
