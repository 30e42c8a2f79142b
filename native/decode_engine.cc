#include "decode_engine.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <limits>

#include "errors.h"

namespace excise {
namespace {

// A generator of the model's device type seeded for one request: the same seed gives the same
// tokens whatever else shares the batch. (On the CPU this is the generator the single-request
// generate used, so seeded outputs did not change.)
at::Generator RequestGenerator(const at::Device& device, uint64_t seed) {
  if (device.is_cpu()) return at::detail::createCPUGenerator(seed);
  at::Generator base = at::globalContext().defaultGenerator(device);
  at::Generator gen;
  {
    std::lock_guard<std::mutex> lock(base.mutex());
    gen = base.clone();
  }
  gen.set_current_seed(seed);
  return gen;
}

int64_t RoundUpDoubling(int64_t have, int64_t need, int64_t floor, int64_t cap) {
  int64_t n = std::max(have, floor);
  while (n < need) n *= 2;
  return std::max(need, std::min(n, cap));
}

}  // namespace

void DecodeEngine::Cancel(int64_t id) {
  std::lock_guard<std::mutex> lock(cancelMutex_);
  cancelled_.insert(id);
}

void DecodeEngine::Reset() {
  queue_.clear();
  active_.clear();
  k_.clear();
  v_.clear();
  rows_ = capacity_ = 0;
  std::lock_guard<std::mutex> lock(cancelMutex_);
  cancelled_.clear();
}

void DecodeEngine::EnsureCapacity(const Decoder& d, int64_t rows, int64_t positions) {
  if (rows <= rows_ && positions <= capacity_) return;
  const DecoderConfig& c = d.config();
  const int64_t newRows = RoundUpDoubling(rows_, rows, 1, options_.maxBatch);
  const int64_t newCap = RoundUpDoubling(capacity_, positions, 64, options_.maxSequence);
  // Zeros, not empty: masked keys still enter the attention product, and garbage could be NaN.
  if (k_.empty()) {
    k_.resize(static_cast<size_t>(c.nLayers));
    v_.resize(static_cast<size_t>(c.nLayers));
  }
  for (size_t L = 0; L < k_.size(); ++L) {
    // Each layer's keys and values live on that layer's device (a split model, placement.h).
    auto opts = at::TensorOptions().dtype(d.dtype()).device(d.layerDevice(static_cast<int64_t>(L)));
    for (at::Tensor* t : {&k_[L], &v_[L]}) {
      at::Tensor grown = at::zeros({newRows, c.nKvHeads, newCap, c.headDim}, opts);
      if (t->defined()) grown.narrow(0, 0, rows_).narrow(2, 0, capacity_).copy_(*t);
      *t = grown;
    }
  }
  rows_ = newRows;
  capacity_ = newCap;
}

bool DecodeEngine::Record(Active& a, int64_t token, TokenEvent& ev) const {
  a.generated++;
  a.nextToken = token;
  ev.id = a.req.id;
  ev.token = static_cast<int32_t>(token);
  if (std::find(a.req.stopIds.begin(), a.req.stopIds.end(), token) != a.req.stopIds.end()) {
    ev.finish = FinishReason::Stop;
  } else if (a.generated >= a.req.maxNewTokens || a.length >= options_.maxSequence) {
    // (the next decode would write at position a.length: past the slot's end)
    ev.finish = FinishReason::Length;
  }
  return ev.finish != FinishReason::None;
}

std::vector<int64_t> DecodeEngine::Sample(const at::Tensor& logits, const std::vector<Active*>& rows,
                                          std::vector<TokenEvent>& events) {
  const int64_t n = logits.size(0), vocab = logits.size(1);
  at::Tensor tokens = logits.argmax(1);  // [n] greedy choice, overwritten for sampled rows
  for (int64_t r = 0; r < n; ++r) {
    const DecodeRequest& q = rows[static_cast<size_t>(r)]->req;
    if (q.temperature <= 0) continue;
    at::Tensor scaled = logits[r] / q.temperature;  // [vocab]
    if (q.topK > 0 && q.topK < vocab) {
      at::Tensor kth = std::get<0>(scaled.topk(q.topK)).min();
      scaled = scaled.masked_fill(scaled < kth, -std::numeric_limits<double>::infinity());
    }
    if (q.topP < 1) {
      // Nucleus: keep the most likely tokens until their mass reaches topP (at least one).
      auto [sortedLogits, order] = scaled.sort(/*dim=*/0, /*descending=*/true);
      at::Tensor sortedProbs = at::softmax(sortedLogits, 0);
      at::Tensor before = sortedProbs.cumsum(0) - sortedProbs;  // mass of the tokens ranked above
      at::Tensor drop = at::empty_like(order, at::TensorOptions().dtype(at::kBool)).scatter_(0, order, before > q.topP);  // vocab order
      scaled = scaled.masked_fill(drop, -std::numeric_limits<double>::infinity());
    }
    at::Tensor next = at::multinomial(at::softmax(scaled, 0), 1, false, rows[static_cast<size_t>(r)]->gen);
    tokens.narrow(0, r, 1).copy_(next);
  }
  // Log-probabilities under the model (temperature 1), for the rows that asked.
  int64_t maxTop = -1;
  for (Active* a : rows) maxTop = std::max(maxTop, a->req.logprobs);
  at::Tensor chosenLp, topLp, topIds;
  if (maxTop >= 0) {
    at::Tensor lp = at::log_softmax(logits, 1);  // [n, vocab]
    chosenLp = lp.gather(1, tokens.unsqueeze(1)).squeeze(1).to(at::kCPU).contiguous();
    if (maxTop > 0) {
      auto top = lp.topk(std::min(maxTop, vocab), 1);
      topLp = std::get<0>(top).to(at::kCPU).contiguous();
      topIds = std::get<1>(top).to(at::kCPU).contiguous();
    }
  }
  at::Tensor host = tokens.to(at::kCPU).contiguous();
  std::vector<int64_t> out(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + n);
  for (int64_t r = 0; r < n; ++r) {
    TokenEvent ev;
    const int64_t want = rows[static_cast<size_t>(r)]->req.logprobs;
    if (want >= 0) {
      ev.logprob = chosenLp.data_ptr<float>()[r];
      const int64_t k = std::min(want, vocab), width = topIds.defined() ? topIds.size(1) : 0;
      for (int64_t i = 0; i < k; ++i) {
        ev.topIds.push_back(static_cast<int32_t>(topIds.data_ptr<int64_t>()[r * width + i]));
        ev.topLogprobs.push_back(topLp.data_ptr<float>()[r * width + i]);
      }
    }
    events.push_back(std::move(ev));
  }
  return out;
}

void DecodeEngine::RemoveRow(size_t r) {
  const size_t last = active_.size() - 1;
  if (r != last) {
    // Keep rows dense: the last row's cache moves into the hole.
    const int64_t len = active_[last].length;
    for (size_t L = 0; L < k_.size(); ++L) {
      k_[L][static_cast<int64_t>(r)].narrow(1, 0, len).copy_(k_[L][static_cast<int64_t>(last)].narrow(1, 0, len));
      v_[L][static_cast<int64_t>(r)].narrow(1, 0, len).copy_(v_[L][static_cast<int64_t>(last)].narrow(1, 0, len));
    }
    active_[r] = std::move(active_[last]);
  }
  active_.pop_back();
}

StepResult DecodeEngine::Step(const Decoder& d, std::vector<DecodeRequest> admit) {
  try {
    return StepOnce(d, std::move(admit));
  } catch (...) {
    Reset();  // a failed step (out of memory, say) leaves no half-updated request behind
    throw;
  }
}

StepResult DecodeEngine::StepOnce(const Decoder& d, std::vector<DecodeRequest> admit) {
  c10::InferenceMode guard;
  StepResult result;
  for (auto& q : admit) queue_.push_back(std::move(q));

  // 1. Cancellations (a cancelled request gives one event with no token).
  std::set<int64_t> cancelled;
  {
    std::lock_guard<std::mutex> lock(cancelMutex_);
    cancelled.swap(cancelled_);
  }
  if (!cancelled.empty()) {
    auto cancelEvent = [&](int64_t id) {
      TokenEvent ev;
      ev.id = id;
      ev.finish = FinishReason::Cancelled;
      result.events.push_back(ev);
    };
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (cancelled.count(it->id)) {
        cancelEvent(it->id);
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    for (size_t r = active_.size(); r-- > 0;) {
      if (cancelled.count(active_[r].req.id)) {
        cancelEvent(active_[r].req.id);
        RemoveRow(r);
      }
    }
  }

  const at::Device dev = d.device();
  auto longOpts = at::TensorOptions().dtype(at::kLong);

  // 2. Admission: prefill each newcomer alone (the decoder's KvCache path) into a free slot.
  while (!queue_.empty() && static_cast<int64_t>(active_.size()) < options_.maxBatch) {
    Active a;
    a.req = std::move(queue_.front());
    queue_.pop_front();
    const int64_t S = static_cast<int64_t>(a.req.prompt.size());
    if (S < 1 || S >= options_.maxSequence) {
      throw Error(code::kInvalidArgument, "prompt of " + std::to_string(S) + " tokens does not fit the engine's " +
                                              std::to_string(options_.maxSequence) + " positions per sequence");
    }
    // Sampling runs where the logits are: the LM head's device (the first one of a split model
    // with a tied head, else the last).
    if (a.req.temperature > 0) a.gen = RequestGenerator(d.headDevice(), a.req.seed);
    KvCache kv;
    ForwardOptions opts;
    opts.cache = &kv;
    opts.lastTokenOnly = true;
    at::Tensor ids = at::tensor(a.req.prompt, longOpts).view({1, S}).to(dev);
    at::Tensor logits = d.forward(ids, opts).reshape({1, -1}).to(at::kFloat);  // [1, vocab]
    const int64_t row = static_cast<int64_t>(active_.size());
    EnsureCapacity(d, row + 1, S + 1);
    for (size_t L = 0; L < k_.size(); ++L) {
      k_[L][row].narrow(1, 0, S).copy_(kv.k[L][0]);  // [KV, S, hd]
      v_[L][row].narrow(1, 0, S).copy_(kv.v[L][0]);
    }
    a.length = S;
    std::vector<Active*> rows{&a};
    const int64_t token = Sample(logits, rows, result.events)[0];
    if (!Record(a, token, result.events.back())) active_.push_back(std::move(a));
  }

  // 3. One decoding step for every active row, each at its own position.
  const int64_t n = static_cast<int64_t>(active_.size());
  result.batch = n;
  if (n > 0) {
    std::vector<int64_t> next(static_cast<size_t>(n)), positions(static_cast<size_t>(n));
    int64_t longest = 0;
    for (int64_t r = 0; r < n; ++r) {
      next[static_cast<size_t>(r)] = active_[static_cast<size_t>(r)].nextToken;
      positions[static_cast<size_t>(r)] = active_[static_cast<size_t>(r)].length;
      longest = std::max(longest, active_[static_cast<size_t>(r)].length);
    }
    EnsureCapacity(d, n, longest + 1);
    SlotCache slots;
    slots.k = k_;
    slots.v = v_;
    slots.positions = at::tensor(positions, longOpts).to(dev);
    slots.keyLength = longest + 1;
    ForwardOptions opts;
    opts.slots = &slots;
    opts.lastTokenOnly = true;
    at::Tensor ids = at::tensor(next, longOpts).view({n, 1}).to(dev);
    at::Tensor logits = d.forward(ids, opts).reshape({n, -1}).to(at::kFloat);  // [n, vocab]
    std::vector<Active*> rows;
    for (auto& a : active_) {
      a.length += 1;  // the fed token is in the cache now
      rows.push_back(&a);
    }
    const size_t first = result.events.size();
    std::vector<int64_t> tokens = Sample(logits, rows, result.events);
    std::vector<size_t> finished;
    for (size_t r = 0; r < static_cast<size_t>(n); ++r) {
      if (Record(active_[r], tokens[r], result.events[first + r])) finished.push_back(r);
    }
    for (size_t i = finished.size(); i-- > 0;) RemoveRow(finished[i]);  // descending: see RemoveRow
  }
  result.active = static_cast<int64_t>(active_.size());
  result.waiting = static_cast<int64_t>(queue_.size());
  return result;
}

}  // namespace excise
