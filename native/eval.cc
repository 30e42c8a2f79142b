#include "eval.h"

#include "errors.h"

namespace excise {

namespace {

// The metrics of N predicted positions: h [N, E] final hidden states, targets [N] the token each
// should predict, counted [N] whether the target is outside the skip set, all on the LM head's
// device. Fills out's sums (out.tokens is already N). The LM head runs in chunks of positions.
void ScorePositions(const Decoder& d, const at::Tensor& h, const at::Tensor& targets, const at::Tensor& counted,
                    int64_t topK, EvalSums& out) {
  const int64_t k = std::min<int64_t>(topK, d.config().vocabSize);
  const int64_t chunk = 1024;
  auto dopts = at::TensorOptions().dtype(at::kDouble).device(d.headDevice());
  at::Tensor loss = at::zeros({}, dopts), top1 = at::zeros({}, dopts), topk = at::zeros({}, dopts);
  at::Tensor top1s = at::zeros({}, dopts), topks = at::zeros({}, dopts), nSkip = at::zeros({}, dopts);
  for (int64_t start = 0; start < out.tokens; start += chunk) {
    const int64_t n = std::min(chunk, out.tokens - start);
    at::Tensor logits = d.logitsOf(h.narrow(0, start, n)).to(at::kFloat);  // [n, vocab]
    at::Tensor t = targets.narrow(0, start, n);
    at::Tensor c = counted.narrow(0, start, n);
    at::Tensor lse = at::logsumexp(logits, {1});
    loss += (lse - logits.gather(1, t.unsqueeze(1)).squeeze(1)).to(at::kDouble).sum();
    at::Tensor best = std::get<1>(logits.topk(k, 1));  // [n, k], best first
    at::Tensor hit1 = best.select(1, 0).eq(t);
    at::Tensor hitk = best.eq(t.unsqueeze(1)).any(1);
    top1 += hit1.sum().to(at::kDouble);
    topk += hitk.sum().to(at::kDouble);
    top1s += hit1.logical_and(c).sum().to(at::kDouble);
    topks += hitk.logical_and(c).sum().to(at::kDouble);
    nSkip += c.sum().to(at::kDouble);
  }
  at::Tensor all = at::stack({loss, top1, topk, top1s, topks, nSkip}).to(at::kCPU);
  const double* v = all.data_ptr<double>();
  out.lossSum = v[0];
  out.top1 = static_cast<int64_t>(v[1]);
  out.topk = static_cast<int64_t>(v[2]);
  out.top1Skip = static_cast<int64_t>(v[3]);
  out.topkSkip = static_cast<int64_t>(v[4]);
  out.skipTokens = static_cast<int64_t>(v[5]);
}

// Host tensor -> a device of the model (from pinned memory without blocking on CUDA).
at::Tensor ToDevice(const at::Tensor& host, at::Device dev) {
  if (!dev.is_cuda()) return host.to(dev);
  return host.pin_memory().to(dev, /*non_blocking=*/true);
}

// The part both evaluations share: hiddenRows [N] int64 (CPU) the scored positions as indices
// into the forward's [B * S] positions, targetsHost [N] int64 (CPU) the token each should predict.
// The small inputs are queued to the device before the forward (from pinned memory without
// blocking on CUDA), so no host-to-device copy waits for the forward to finish. out.tokens is N.
void ForwardAndScore(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& hiddenRows,
                     const at::Tensor& targetsHost, const std::vector<int64_t>& skip, int64_t topK, EvalSums& out) {
  const at::Device dev = d.device();       // token ids (embeddings)
  const at::Device head = d.headDevice();  // hidden states, logits and what is compared with them
  at::Tensor skipHost = at::tensor(skip.empty() ? std::vector<int64_t>{-1} : skip, at::TensorOptions().dtype(at::kLong));
  at::Tensor idsDev = ToDevice(ids, dev);
  at::Tensor rowsDev = ToDevice(hiddenRows, head);
  at::Tensor targets = ToDevice(targetsHost, head);
  at::Tensor skipSet = ToDevice(skipHost, head);

  ForwardOptions opts;
  opts.attentionMask = mask;
  opts.returnHidden = true;
  opts.paddingOutputsUnused = true;  // only scored positions are read (the decoder still masks padding keys)
  at::Tensor hidden = d.forward(idsDev, opts);  // [B, S, E]
  const int64_t E = hidden.size(-1);
  at::Tensor h = hidden.reshape({-1, E}).index_select(0, rowsDev);  // [N, E]
  at::Tensor counted = at::isin(targets, skipSet).logical_not();     // [N]
  ScorePositions(d, h, targets, counted, topK, out);
}

}  // namespace

EvalSums EvaluateBatch(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask, const std::vector<int64_t>& skip,
                       int64_t topK) {
  if (!d.config().causal) {
    throw Error(code::kNotCausalLm, d.config().architecture + " is a masked language model: evaluate it on masked tokens");
  }
  EvalSums out;
  const int64_t B = ids.size(0), S = ids.size(1);
  if (S < 2) return out;
  // Position t predicts token t + 1; a prediction counts when its target is a real token (with right
  // padding the input at t is then real too). Select those positions on the host-known mask.
  at::Tensor valid = mask.defined() ? mask.narrow(1, 1, S - 1).to(at::kBool) : at::ones({B, S - 1}, at::kBool);
  at::Tensor rows = valid.reshape({-1}).nonzero().reshape({-1});  // [N] int64, CPU: b * (S - 1) + t
  out.tokens = rows.numel();
  if (out.tokens == 0) return out;
  at::Tensor targetsHost = ids.narrow(1, 1, S - 1).reshape({-1}).index_select(0, rows);  // [N]
  // The same positions in the hidden states' [B * S] rows (b * S + t): no copy of hidden[:, :S-1].
  at::Tensor hiddenRows = rows + rows.div(S - 1, "floor");
  ForwardAndScore(d, ids, mask, hiddenRows, targetsHost, skip, topK, out);
  return out;
}

EvalSums EvaluateMaskedBatch(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& labels,
                             const std::vector<int64_t>& skip, int64_t topK) {
  EvalSums out;
  // No shift: position t predicts the original token at t, wherever labels[t] >= 0.
  at::Tensor flatLabels = labels.reshape({-1});
  at::Tensor rows = flatLabels.ge(0).nonzero().reshape({-1});  // [N] int64, CPU: b * S + t
  out.tokens = rows.numel();
  if (out.tokens == 0) return out;
  at::Tensor targetsHost = flatLabels.index_select(0, rows).to(at::kLong);  // [N]
  ForwardAndScore(d, ids, mask, rows, targetsHost, skip, topK, out);
  return out;
}

}  // namespace excise
