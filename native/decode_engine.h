// The decode engine: continuous batching over one decoding loop on the model's thread.
//
// Requests join between decoding steps and leave when done. Each occupies one row ("slot") of a
// preallocated key/value cache [slots, nKvHeads, capacity, headDim] per layer; a request waits
// (in the engine's queue) while every slot is taken. One Step():
//   1. drops the requests cancelled since the last step (Cancel() may be called from any thread),
//   2. admits queued requests into free slots: a prefill of the prompt (batch 1, the decoder's
//      ordinary KvCache path) copied into the slot, and the request's first token sampled,
//   3. decodes one token for every active row in one batched forward (SlotCache path), each row at
//      its own position,
//   4. samples on the device, each request with its own settings and its own generator (greedy,
//      temperature, top-k, top-p), computes log-probabilities when asked, and frees the slots of
//      finished requests by moving the last active row into the hole (rows stay dense).
// Only the sampled ids (and asked-for log-probabilities) leave the device.
//
// The engine holds no decoder: each step job passes the model's current one, so dispose() frees
// the weights as before. The cache grows (by doubling, up to its budget) when a request needs more
// rows or positions than allocated, never per step.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "decoder.h"

namespace excise {

struct EngineOptions {
  int64_t maxBatch = 16;      // slots: requests decoded together
  int64_t maxSequence = 256;  // positions per slot (prompt + generated tokens)
};

// One request, copied from JS.
struct DecodeRequest {
  int64_t id = 0;
  std::vector<int64_t> prompt;
  int64_t maxNewTokens = 16;
  double temperature = 0;  // 0 = greedy
  int64_t topK = 0;        // 0 = whole vocabulary
  double topP = 1;         // 1 = no nucleus cut
  uint64_t seed = 0;
  std::vector<int64_t> stopIds;
  int64_t logprobs = -1;   // -1: none; 0: the chosen token's; k > 0: and the k most likely
};

enum class FinishReason { None, Stop, Length, Cancelled };

// One generated token of one request (several per step: one per active request).
struct TokenEvent {
  int64_t id = 0;
  int32_t token = -1;            // -1: no token (a request cancelled before producing one)
  float logprob = 0;             // when logprobs >= 0: log p(token) under the model (temperature 1)
  std::vector<int32_t> topIds;   // when logprobs > 0: the most likely ids, best first
  std::vector<float> topLogprobs;
  FinishReason finish = FinishReason::None;
};

struct StepResult {
  std::vector<TokenEvent> events;
  int64_t active = 0;   // requests holding a slot after the step
  int64_t waiting = 0;  // requests queued for a slot after the step
  int64_t batch = 0;    // rows in this step's batched decode
};

class DecodeEngine {
 public:
  explicit DecodeEngine(EngineOptions options) : options_(options) {}

  const EngineOptions& options() const { return options_; }

  // Any thread: the request stops before the next step's decode (its slot is freed then).
  void Cancel(int64_t id);

  // Model thread. `admit` joins the queue, in order. A step that throws resets the engine (every
  // request is dropped; the caller fails them).
  StepResult Step(const Decoder& d, std::vector<DecodeRequest> admit);

  // Model thread: frees the cache and forgets every request.
  void Reset();

 private:
  struct Active {
    DecodeRequest req;
    int64_t length = 0;     // positions filled in its slot
    int64_t generated = 0;  // tokens produced
    int64_t nextToken = -1; // the token to feed at the next decode
    at::Generator gen;      // sampled requests only
  };

  StepResult StepOnce(const Decoder& d, std::vector<DecodeRequest> admit);
  void EnsureCapacity(const Decoder& d, int64_t rows, int64_t positions);
  // Samples one token per row of logits [n, vocab] (float32, device) for requests `rows`, appending
  // events; returns the ids on the host.
  std::vector<int64_t> Sample(const at::Tensor& logits, const std::vector<Active*>& rows, std::vector<TokenEvent>& events);
  // Records the token of row r; true when the request is finished (the event says why).
  bool Record(Active& a, int64_t token, TokenEvent& ev) const;
  void RemoveRow(size_t r);

  EngineOptions options_;
  std::mutex cancelMutex_;
  std::set<int64_t> cancelled_;     // guarded by cancelMutex_
  std::deque<DecodeRequest> queue_;  // waiting for a slot
  std::vector<Active> active_;       // row i of the cache holds active_[i]
  std::vector<at::Tensor> k_, v_;    // per layer [rows, nKvHeads, capacity, headDim]
  int64_t rows_ = 0, capacity_ = 0;
};

}  // namespace excise
