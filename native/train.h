// Training: a full optimizer step through the same decoder code that inference runs (forward with
// autograd, next-token cross-entropy, backward), AdamW with decoupled weight decay, global gradient
// clipping, and a warmup + cosine learning-rate schedule. Used to train the bundled demo model.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <vector>

#include "decoder.h"

namespace excise {

struct TrainOptions {
  double lr = 1e-3;            // peak learning rate
  double minLrRatio = 0.1;     // the cosine decays to lr * minLrRatio at totalSteps
  int64_t warmupSteps = 100;   // linear warmup from 0
  int64_t totalSteps = 1000;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weightDecay = 0.1;    // on matrices only (not norms, biases)
  double gradClip = 1.0;       // max global gradient norm; <= 0 disables clipping
};

struct TrainStepResult {
  double loss = 0;      // mean cross-entropy of the batch before the update
  double gradNorm = 0;  // global gradient norm before clipping
  double lr = 0;        // learning rate used for this step
  int64_t step = 0;     // 1-based
  int64_t tokens = 0;   // predicted positions
};

// Constructed on the JS thread (it only checks the options); everything that touches the weights
// (flagging them for gradients, allocating the moments, stepping, closing) runs on the model thread.
class Trainer {
 public:
  Trainer(std::shared_ptr<Decoder> d, TrainOptions o);
  // ids [batch, seq] int64 (CPU); mask [batch, seq] (1 = token) or undefined. The first step starts
  // training (see Start()). rowWeights [batch] float64 (CPU) or undefined: the loss minimized is
  // sum over real tokens of rowWeight * cross-entropy / real tokens (-1 on a row: gradient ascent).
  TrainStepResult Step(const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& rowWeights = at::Tensor());
  double LearningRate(int64_t step) const;  // the schedule, 1-based step
  // Ends training: the weights stop requiring gradients and the optimizer state is freed.
  void Close();
  // The model this trainer was made for (identity only, never dereferenced).
  const Decoder* owner() const { return owner_; }

 private:
  const Decoder* owner_;
  // Flags the weights for gradients and allocates the optimizer state (model thread).
  void Start();
  bool started_ = false;
  bool closed_ = false;
  std::shared_ptr<Decoder> d_;
  TrainOptions o_;
  // One optimizer group per weight-decay setting (matrices decay; embeddings, norms, biases do not)
  // and device.
  // Each weight of the model (tied weights once) is in one group; the optimizer works in float32:
  // `master` is the weight itself when it is float32, else a float32 copy the update is applied to,
  // then rounded into the model's weight (a bf16 weight alone would drop every update smaller than
  // half its ulp: training would silently stall).
  struct Group {
    bool decay = false;
    at::Device device = at::kCPU;     // every tensor of the group is on it (fused AdamW's requirement)
    std::vector<at::Tensor> weights;  // the model's tensors (any float dtype)
    std::vector<at::Tensor> master;   // float32, aliases `weights[i]` when that is float32
    std::vector<at::Tensor> m, v;     // AdamW moments, float32
    std::vector<at::Tensor> steps;    // per weight step count, float32 scalar on the device (fused AdamW's)
  };
  std::vector<Group> groups_;
  int64_t step_ = 0;
};

}  // namespace excise
