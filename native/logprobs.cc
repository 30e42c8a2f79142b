#include "logprobs.h"

#include <algorithm>
#include <vector>

#include "errors.h"

namespace excise {

TokenLogprobs ComputeTokenLogprobs(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& targets) {
  TokenLogprobs out;
  const int64_t B = ids.size(0), S = ids.size(1);
  if (!d.config().causal) throw Error(code::kNotCausalLm, "tokenLogprobs: " + d.config().architecture + " is a masked language model, not a next-token one");
  // Position t - 1 predicts token t: the scored rows of the hidden states, chosen on the host.
  at::Tensor rows = S < 2 ? at::empty({0}, at::kLong)
                          : targets.narrow(1, 1, S - 1).to(at::kBool).reshape({-1}).nonzero().reshape({-1});  // [N] CPU: b * (S - 1) + t - 1
  const int64_t n = rows.numel();
  out.logprob = at::empty({n}, at::kFloat);
  out.greedy = at::empty({n}, at::kByte);
  if (n == 0) return out;
  const at::Device head = d.headDevice();  // where the hidden states and logits are
  // The small host inputs go to the device before the forward is queued: copied after it, a
  // (pageable) host-to-device copy would wait on the host for the whole forward to finish.
  // The scored positions in the hidden states' [B * S] rows (b * S + t - 1): no copy of hidden[:, :S-1].
  at::Tensor rowsDev = (rows + rows.div(S - 1, "floor")).to(head);
  at::Tensor next = ids.narrow(1, 1, S - 1).reshape({-1}).index_select(0, rows).to(head);  // [N]
  ForwardOptions opts;
  opts.attentionMask = mask;
  opts.returnHidden = true;
  at::Tensor hidden = d.forward(ids.to(d.device()), opts);  // [B, S, E]
  const int64_t E = hidden.size(-1);
  at::Tensor h = hidden.reshape({B * S, E}).index_select(0, rowsDev);  // [N, E]
  std::vector<at::Tensor> logprob, greedy;
  const int64_t chunk = 1024;
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t m = std::min(chunk, n - start);
    at::Tensor logits = d.logitsOf(h.narrow(0, start, m)).to(at::kFloat);  // [m, vocab]
    at::Tensor t = next.narrow(0, start, m).unsqueeze(1);                   // [m, 1]
    // The target's logit minus logsumexp, not log_softmax + gather: the two round differently (a few
    // ulp); this is the formula multiple-choice and membership results were made with.
    logprob.push_back(logits.gather(1, t).squeeze(1) - at::logsumexp(logits, {1}));
    greedy.push_back(logits.argmax(1).eq(t.squeeze(1)).to(at::kByte));
  }
  out.logprob = at::cat(logprob).to(at::kCPU).contiguous();
  out.greedy = at::cat(greedy).to(at::kCPU).contiguous();
  return out;
}

}  // namespace excise
