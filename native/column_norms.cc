#include "column_norms.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "errors.h"

namespace excise {
namespace {

// Elements converted to float64 at once (32 MiB of float64).
constexpr int64_t kChunkElements = int64_t{1} << 22;

// Test-only: EXCISE_TEST_NORM_CHUNK_ELEMENTS=N shrinks the chunk, so the fixtures' small weights
// take several chunks and a remainder (test/method.wanda.test.ts).
int64_t ChunkElements() {
  const char* v = std::getenv("EXCISE_TEST_NORM_CHUNK_ELEMENTS");
  const long long n = v != nullptr ? std::strtoll(v, nullptr, 10) : 0;
  return n > 0 ? static_cast<int64_t>(n) : kChunkElements;
}

at::Tensor CheckedNorms(const Linear& proj, int64_t width, int64_t layer, const char* what) {
  const at::Tensor& w = proj.weight;
  const int64_t inputs = !w.defined() || w.dim() != 2 ? -1 : w.size(proj.inputMajor ? 0 : 1);
  if (inputs != width) {
    throw Error(code::kTensorShape, "outputColumnNorms: layer " + std::to_string(layer) + "'s " + what + " has " +
                                        (inputs < 0 ? std::string("no 2-D weight") : std::to_string(inputs) + " inputs") +
                                        "; expected " + std::to_string(width));
  }
  return InputColumnNorms(proj).to(at::kCPU);
}

}  // namespace

at::Tensor InputColumnNorms(const Linear& proj) {
  const at::Tensor& w = proj.weight;  // [out, in], or [in, out] when inputMajor
  const int64_t rows = w.size(0), cols = w.size(1);
  at::Tensor sumSq = at::zeros({proj.inputMajor ? rows : cols}, w.options().dtype(at::kDouble));
  const int64_t step = std::max<int64_t>(1, ChunkElements() / std::max<int64_t>(cols, 1));  // rows per chunk
  for (int64_t r = 0; r < rows; r += step) {
    const int64_t n = std::min(step, rows - r);
    at::Tensor chunk = w.narrow(0, r, n).to(at::kDouble);  // [n, cols]
    if (proj.inputMajor) {
      sumSq.narrow(0, r, n).copy_(chunk.square().sum(1));  // rows are inputs: each row is one column of W_out
    } else {
      sumSq.add_(chunk.square().sum(0));  // columns are inputs: accumulate over output rows
    }
  }
  return sumSq.sqrt_();
}

ProjectionNorms ComputeOutputColumnNorms(const Decoder& d) {
  const DecoderConfig& c = d.config();
  ProjectionNorms out;
  for (int64_t l = 0; l < c.nLayers; ++l) {
    const Block& b = d.blocks()[static_cast<size_t>(l)];
    out.ff.push_back(CheckedNorms(b.fcOut, c.dMlp, l, "FF output projection"));
    out.attn.push_back(CheckedNorms(b.o, c.attnDim(), l, "attention output projection"));
  }
  return out;
}

}  // namespace excise
