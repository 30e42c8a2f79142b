#include "logprobs.h"

#include "errors.h"

namespace excise {

TokenLogprobs ComputeTokenLogprobs(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask) {
  const int64_t B = ids.size(0), S = ids.size(1);
  if (S < 2) throw Error(code::kInvalidArgument, "tokenLogprobs: rows need at least 2 tokens");
  if (!d.config().causal) throw Error(code::kNotCausalLm, "tokenLogprobs: " + d.config().architecture + " is a masked language model, not a next-token one");
  ForwardOptions opts;
  opts.attentionMask = mask;
  opts.returnHidden = true;
  const at::Device dev = d.device();
  at::Tensor idsDev = ids.to(dev);
  at::Tensor hidden = d.forward(idsDev, opts);  // [B, S, E]
  const int64_t E = hidden.size(-1);
  at::Tensor h = hidden.narrow(1, 0, S - 1).reshape({-1, E});             // [B*(S-1), E]
  at::Tensor targets = idsDev.narrow(1, 1, S - 1).reshape({-1});           // [B*(S-1)]
  const int64_t N = h.size(0);
  at::Tensor logprob = at::empty({N}, at::TensorOptions().dtype(at::kFloat).device(dev));
  at::Tensor greedy = at::empty({N}, at::TensorOptions().dtype(at::kBool).device(dev));
  const int64_t chunk = 1024;
  for (int64_t start = 0; start < N; start += chunk) {
    const int64_t n = std::min(chunk, N - start);
    at::Tensor logits = d.logitsOf(h.narrow(0, start, n)).to(at::kFloat);  // [n, vocab]
    at::Tensor t = targets.narrow(0, start, n).unsqueeze(1);                // [n, 1]
    at::Tensor target = logits.gather(1, t).squeeze(1);
    logprob.narrow(0, start, n).copy_(target - at::logsumexp(logits, {1}));
    greedy.narrow(0, start, n).copy_(logits.argmax(1).eq(t.squeeze(1)));
  }
  TokenLogprobs out;
  out.logprob = logprob.reshape({B, S - 1}).to(at::kCPU).contiguous();
  out.greedy = greedy.reshape({B, S - 1}).to(at::kCPU).to(at::kByte).contiguous();
  if (mask.defined()) {
    at::Tensor pad = mask.narrow(1, 1, S - 1).eq(0);
    out.logprob.masked_fill_(pad, 0);
    out.greedy.masked_fill_(pad, 0);
  }
  return out;
}

}  // namespace excise
