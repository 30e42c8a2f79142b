#include "score.h"

#include <algorithm>

#include "errors.h"

namespace excise {

ScoreResult ScoreTokens(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& targets) {
  ScoreResult out;
  if (!d.config().causal) throw Error(code::kNotCausalLm, "score: " + d.config().architecture + " is a masked language model, not a next-token one");
  const int64_t B = ids.size(0), S = ids.size(1);
  // Position t - 1 predicts token t: the scored rows of the hidden states, chosen on the host.
  at::Tensor rows = S < 2 ? at::empty({0}, at::kLong)
                          : targets.narrow(1, 1, S - 1).to(at::kBool).reshape({-1}).nonzero().reshape({-1});  // CPU
  const int64_t n = rows.numel();
  out.logprobs = at::empty({n}, at::kFloat);
  out.greedy = at::empty({n}, at::kByte);
  if (n == 0) return out;
  ForwardOptions opts;
  opts.attentionMask = mask;
  opts.returnHidden = true;
  const at::Device dev = d.device();
  at::Tensor idsDev = ids.to(dev);
  at::Tensor hidden = d.forward(idsDev, opts);  // [B, S, E]
  const int64_t E = hidden.size(-1);
  at::Tensor rowsDev = rows.to(dev);
  at::Tensor h = hidden.narrow(1, 0, S - 1).reshape({B * (S - 1), E}).index_select(0, rowsDev);  // [n, E]
  at::Tensor next = idsDev.narrow(1, 1, S - 1).reshape({-1}).index_select(0, rowsDev);          // [n]
  std::vector<at::Tensor> logprobs, greedy;
  const int64_t chunk = 1024;
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t m = std::min(chunk, n - start);
    at::Tensor logits = d.logitsOf(h.narrow(0, start, m)).to(at::kFloat);  // [m, vocab]
    at::Tensor t = next.narrow(0, start, m).unsqueeze(1);                   // [m, 1]
    logprobs.push_back(at::log_softmax(logits, 1).gather(1, t).squeeze(1));
    greedy.push_back(logits.argmax(1).eq(t.squeeze(1)).to(at::kByte));
  }
  out.logprobs = at::cat(logprobs).to(at::kCPU).contiguous();
  out.greedy = at::cat(greedy).to(at::kCPU).contiguous();
  return out;
}

}  // namespace excise
