// Column norms of each layer's output projections, ‖W_out[:, i]‖₂ per input neuron i: the weight
// factor of the Wanda-style baseline (lib/method/wanda.ts). Read from the decoder's bound
// projections (Block::fcOut, Block::o), so every family the loader binds has them, from the
// current weights (a pruned neuron's column is zero), on each layer's own device.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "decoder.h"

namespace excise {

struct ProjectionNorms {
  std::vector<at::Tensor> ff;    // per layer [dMlp] float64, CPU (input = blocks.{L}.mlp.pre_out)
  std::vector<at::Tensor> attn;  // per layer [nHeads * headDim] float64, CPU (input = blocks.{L}.attn.pre_out)
};

// ‖W[:, i]‖₂ per input feature i of one projection (nn.Linear [out, in], or GPT-2's Conv1D
// [in, out] when inputMajor): [inputs] float64 on the weight's device. Squares are summed in
// float64, a bounded chunk of rows at a time (no full float64 copy of a large weight).
at::Tensor InputColumnNorms(const Linear& proj);

// Every layer's FF and attention output-projection column norms, copied to the CPU. Throws
// ERR_TENSOR_SHAPE if a bound projection's input width is not dMlp / nHeads * headDim.
ProjectionNorms ComputeOutputColumnNorms(const Decoder& d);

}  // namespace excise
