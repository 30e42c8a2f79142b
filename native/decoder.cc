#include "decoder.h"

#include <torch/version.h>

#include <cmath>
#include <limits>

#include "errors.h"

namespace excise {

// torch >= 2.5 can broadcast key/value heads inside SDPA; older versions need them expanded.
#if (TORCH_VERSION_MAJOR > 2) || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
#define EXCISE_SDPA_HAS_GQA 1
#else
#define EXCISE_SDPA_HAS_GQA 0
#endif

at::Tensor Linear::operator()(const at::Tensor& x) const {
  // A [in, out] weight's transpose is a view; at::linear turns it back into one GEMM without copying.
  return at::linear(x, inputMajor ? weight.t() : weight, bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt);
}

at::Tensor Norm::operator()(const at::Tensor& x) const {
  if (kind == NormKind::LayerNorm) {
    return at::layer_norm(x, {dim}, weight.defined() ? c10::optional<at::Tensor>(weight) : c10::nullopt,
                          bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt, eps);
  }
  // RMSNorm as Hugging Face computes it: in float32, cast back, then scale by the weight.
  // at::rms_norm does exactly that (bitwise equal in float32) and on CUDA runs as one fused kernel
  // instead of five. On the CPU in bf16/fp16 it rounds differently from Hugging Face (1 ulp) and is
  // no faster, so the CPU keeps the explicit formula there.
  // The (1 + w) and float32-weight variants (Gemma, OLMo 2) keep the explicit formula.
  const bool plainScale = weightOffset == 0 && !weightInFloat;
  if (plainScale && (x.scalar_type() == at::kFloat || !x.device().is_cpu())) {
    return at::rms_norm(x, {dim}, weight.defined() ? c10::optional<at::Tensor>(weight) : c10::nullopt, eps);
  }
  at::Tensor h = x.to(at::kFloat);
  at::Tensor var = h.pow(2).mean({-1}, /*keepdim=*/true);
  h = h * at::rsqrt(var + eps);
  if (weightInFloat) {  // Gemma / OLMo 2 order: scale in float32, then cast back
    return weight.defined() ? (h * (weight.to(at::kFloat) + weightOffset)).to(x.scalar_type()) : h.to(x.scalar_type());
  }
  h = h.to(x.scalar_type());
  if (weightOffset != 0 && weight.defined()) return (weight + weightOffset) * h;
  return weight.defined() ? weight * h : h;
}

namespace {
Placement OneDevice(at::Device device, int64_t nLayers) {
  Placement p;
  p.devices = {device};
  p.layerDevice.assign(static_cast<size_t>(nLayers), 0);
  return p;
}
}  // namespace

Decoder::Decoder(DecoderConfig cfg, at::Device device, at::ScalarType dtype)
    : Decoder(cfg, OneDevice(device, cfg.nLayers), dtype) {}

Decoder::Decoder(DecoderConfig cfg, Placement placement, at::ScalarType dtype)
    : cfg_(std::move(cfg)), device_(placement.devices.at(0)), placement_(std::move(placement)), dtype_(dtype) {
  if (static_cast<int64_t>(placement_.layerDevice.size()) != cfg_.nLayers) throw Error(code::kInternal, "placement: one device per layer expected");
  blocks_.resize(static_cast<size_t>(cfg_.nLayers));
}

namespace {

// inv_freq [rot / 2] in float32, with optional linear / llama3 scaling (Hugging Face's formulas).
at::Tensor RotaryInverseFrequencies(const DecoderConfig& c, double theta, const RopeScaling& s, at::Device device) {
  const int64_t rot = c.rotaryDims;
  auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
  at::Tensor exponents = at::arange(0, rot, 2, at::TensorOptions().dtype(at::kLong).device(device)).to(at::kFloat) /
                         static_cast<double>(rot);
  at::Tensor invFreq = at::pow(at::scalar_tensor(theta, opts), exponents).reciprocal();
  if (s.kind == RopeScalingKind::Linear) {
    invFreq = invFreq / s.factor;
  } else if (s.kind == RopeScalingKind::Llama3) {
    const double oldLen = static_cast<double>(s.originalMaxPositions);
    const double lowFreqWavelen = oldLen / s.lowFreqFactor;
    const double highFreqWavelen = oldLen / s.highFreqFactor;
    at::Tensor wavelen = 2 * M_PI / invFreq;
    at::Tensor scaled = at::where(wavelen > lowFreqWavelen, invFreq / s.factor, invFreq);
    at::Tensor smooth = (oldLen / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    at::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
    at::Tensor medium = (wavelen >= highFreqWavelen).logical_and(wavelen <= lowFreqWavelen);
    invFreq = at::where(medium, smoothed, scaled);
  }
  return invFreq;
}

// rotate_half: [x1, x2] -> [-x2, x1] over the last dim.
at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// rotate_every_two (GPT-J): pairs (x0, x1), (x2, x3), ... -> (-x1, x0), (-x3, x2), ...
at::Tensor RotateEveryTwo(const at::Tensor& x) {
  using namespace at::indexing;
  at::Tensor even = x.index({Ellipsis, Slice(0, None, 2)});
  at::Tensor odd = x.index({Ellipsis, Slice(1, None, 2)});
  return at::stack({-odd, even}, -1).flatten(-2);
}

// x [batch, seq, heads, headDim]; cos/sin [seq, rot] -> rotary on the first rot dims of each head.
at::Tensor ApplyRotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, bool interleaved) {
  const int64_t rot = cos.size(-1);
  const int64_t hd = x.size(-1);
  // cos/sin [seq, rot] are shared by every row; [batch, seq, rot] (batched decoding) are per row.
  at::Tensor c = cos.dim() == 3 ? cos.unsqueeze(2) : cos.unsqueeze(0).unsqueeze(2);  // [1|batch, seq, 1, rot]
  at::Tensor s = sin.dim() == 3 ? sin.unsqueeze(2) : sin.unsqueeze(0).unsqueeze(2);
  auto rotate = [&](const at::Tensor& t) { return interleaved ? RotateEveryTwo(t) : RotateHalf(t); };
  if (rot == hd) return x * c + rotate(x) * s;
  at::Tensor xr = x.narrow(-1, 0, rot);
  at::Tensor xp = x.narrow(-1, rot, hd - rot);
  return at::cat({xr * c + rotate(xr) * s, xp}, -1);
}

// Attention with scores soft-capped before the mask (Gemma 2): softmax(cap * tanh(q.k * scale / cap)),
// in float32 as Hugging Face's eager path. q [B, H, S, hd], k/v [B, KV, Sk, hd]; mask [B|1, 1, S, Sk]
// additive in the model's dtype (0 / -inf) as forward() builds it, or undefined (then causal when isCausal).
at::Tensor SoftcappedAttention(const at::Tensor& q, at::Tensor k, at::Tensor v, const at::Tensor& mask, bool isCausal,
                               double scale, double cap) {
  const int64_t H = q.size(1), KV = k.size(1);
  if (KV != H) {
    k = k.repeat_interleave(H / KV, 1);
    v = v.repeat_interleave(H / KV, 1);
  }
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * scale;  // [B, H, S, Sk]
  scores = at::tanh(scores / cap) * cap;
  if (mask.defined()) {
    scores = scores + mask;
  } else if (isCausal) {
    const int64_t S = q.size(2), Sk = k.size(2);
    at::Tensor allowed = at::ones({S, Sk}, q.options().dtype(at::kBool)).tril(Sk - S);
    scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  }
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  return at::matmul(probs, v);  // [B, H, S, hd]
}

}  // namespace

void Decoder::finalize() {
  if (cfg_.positions != PositionKind::Rotary) return;
  // One table per stage, on its device: a layer never reads another device's table.
  invFreq_.assign(placement_.devices.size(), at::Tensor());
  invFreqLocal_.assign(placement_.devices.size(), at::Tensor());
  for (size_t s = 0; s < placement_.devices.size(); ++s) {
    invFreq_[s] = RotaryInverseFrequencies(cfg_, cfg_.ropeTheta, cfg_.ropeScaling, placement_.devices[s]);
    if (!cfg_.localRope.empty()) invFreqLocal_[s] = RotaryInverseFrequencies(cfg_, cfg_.ropeThetaLocal, RopeScaling{}, placement_.devices[s]);
  }
}

at::Tensor Decoder::logitsOf(const at::Tensor& hidden) const {
  // The LM head's device (a no-op unless the caller's hidden states live elsewhere).
  at::Tensor logits = at::linear(hidden.to(lmHead.device()), lmHead, lmHeadBias.defined() ? c10::optional<at::Tensor>(lmHeadBias) : c10::nullopt);
  if (cfg_.finalSoftcap > 0) logits = at::tanh(logits / cfg_.finalSoftcap) * cfg_.finalSoftcap;
  return logits;
}

int64_t Decoder::parameterCount() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.second.numel();
  return n;
}

at::Tensor Decoder::activation(const at::Tensor& x) const {
  switch (cfg_.activation) {
    case Activation::Relu: return at::relu(x);
    case Activation::Gelu: return at::gelu(x);
    case Activation::GeluTanh: return at::gelu(x, "tanh");
    case Activation::Silu: return at::silu(x);
    case Activation::QuickGelu: return x * at::sigmoid(1.702 * x);
  }
  return x;
}

at::Tensor Decoder::mlp(int64_t layer, const Block& b, const at::Tensor& x, const ForwardOptions& opts,
                        const HookContext& ctx) const {
  at::Tensor h;  // [B, S, dMlp]
  if (b.gateUp.defined()) {  // one GEMM, then [gate | up] as Hugging Face chunks it
    at::Tensor y = b.gateUp(x);
    const int64_t n = y.size(-1) / 2;
    h = activation(y.narrow(-1, 0, n)) * y.narrow(-1, n, n);
  } else {
    h = cfg_.gatedMlp ? activation(b.gate(x)) * b.fcIn(x) : activation(b.fcIn(x));
  }
  if (opts.hooks) opts.hooks->call(layer, HookSite::MlpPreOut, h, ctx);
  return b.fcOut(h);
}

at::Tensor Decoder::attention(int64_t layer, const Block& b, const at::Tensor& x, const at::Tensor& cos,
                              const at::Tensor& sin, const at::Tensor& mask, bool causalFastPath, KvCache* cache,
                              const ForwardOptions& opts, const HookContext& ctx, const at::Tensor& slotWriteRows) const {
  const int64_t B = x.size(0), S = x.size(1);
  const int64_t H = cfg_.nHeads, KV = cfg_.nKvHeads, hd = cfg_.headDim;
  at::Tensor q, k, v;  // [B, S, heads, hd]
  switch (cfg_.qkvLayout) {
    case QkvLayout::Separate: {
      at::Tensor qAll = b.q(x), kAll = b.k(x);  // [B, S, H hd], [B, S, KV hd]
      if (cfg_.qkNorm == QkNorm::WholeProjection) {
        qAll = b.qNorm(qAll);
        kAll = b.kNorm(kAll);
      }
      q = qAll.view({B, S, H, hd});
      k = kAll.view({B, S, KV, hd});
      v = b.v(x).view({B, S, KV, hd});
      break;
    }
    case QkvLayout::FusedConcat: {
      at::Tensor y = b.qkv(x);  // [B, S, (H + 2 KV) hd] = [q | k | v]
      q = y.narrow(-1, 0, H * hd).view({B, S, H, hd});
      k = y.narrow(-1, H * hd, KV * hd).view({B, S, KV, hd});
      v = y.narrow(-1, (H + KV) * hd, KV * hd).view({B, S, KV, hd});
      break;
    }
    case QkvLayout::FusedPerHead: {
      at::Tensor y = b.qkv(x).view({B, S, H, 3 * hd});  // per head [q_h | k_h | v_h]
      q = y.narrow(-1, 0, hd);
      k = y.narrow(-1, hd, hd);
      v = y.narrow(-1, 2 * hd, hd);
      break;
    }
  }
  if (cfg_.qkNorm == QkNorm::PerHead) {
    q = b.qNorm(q);
    k = b.kNorm(k);
  }
  if (cfg_.positions == PositionKind::Rotary) {
    q = ApplyRotary(q, cos, sin, cfg_.rotaryInterleaved);
    k = ApplyRotary(k, cos, sin, cfg_.rotaryInterleaved);
  }
  q = q.transpose(1, 2);  // [B, H, S, hd]
  k = k.transpose(1, 2);  // [B, KV, S, hd]
  v = v.transpose(1, 2);
  if (opts.slots != nullptr) {
    // Write each row's new key/value at its own position, then attend over the cache's first
    // keyLength positions (a view; rows are masked to their lengths by the caller's mask).
    at::Tensor& ck = opts.slots->k[static_cast<size_t>(layer)];  // [R, KV, cap, hd]
    at::Tensor& cv = opts.slots->v[static_cast<size_t>(layer)];
    // slotWriteRows [B * KV]: where each (row, kv head) writes in the cache viewed [R * KV * cap, hd],
    // the same for every layer (one capacity): built once per forward and stage (StageInputs).
    if (ck.size(2) != opts.slots->k[0].size(2)) throw Error(code::kInternal, "batched decoding: layer caches of different capacities");
    ck.view({-1, hd}).index_copy_(0, slotWriteRows, k.select(2, 0).reshape({B * KV, hd}));
    cv.view({-1, hd}).index_copy_(0, slotWriteRows, v.select(2, 0).reshape({B * KV, hd}));
    k = ck.narrow(0, 0, B).narrow(2, 0, opts.slots->keyLength);
    v = cv.narrow(0, 0, B).narrow(2, 0, opts.slots->keyLength);
  } else if (cache != nullptr) {
    auto& ck = cache->k[static_cast<size_t>(layer)];
    auto& cv = cache->v[static_cast<size_t>(layer)];
    if (ck.defined()) {
      k = at::cat({ck, k}, 2);
      v = at::cat({cv, v}, 2);
    }
    ck = k;
    cv = v;
  }
  double scale = cfg_.attnScale > 0 ? cfg_.attnScale : 1.0 / std::sqrt(static_cast<double>(hd));
  if (cfg_.scaleByInverseLayerIdx) scale /= static_cast<double>(layer + 1);
  c10::optional<at::Tensor> attnMask = mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt;
  const bool isCausal = causalFastPath && S > 1;
  at::Tensor out;
  if (cfg_.attnSoftcap > 0) {
    out = SoftcappedAttention(q, k, v, mask, isCausal, scale, cfg_.attnSoftcap);
  } else {
#if EXCISE_SDPA_HAS_GQA
  out = at::scaled_dot_product_attention(q, k, v, attnMask, 0.0, isCausal, scale, /*enable_gqa=*/KV != H);
#else
  if (KV != H) {
    k = k.repeat_interleave(H / KV, 1);  // kv head j serves query heads j*g .. j*g+g-1
    v = v.repeat_interleave(H / KV, 1);
  }
  out = at::scaled_dot_product_attention(q, k, v, attnMask, 0.0, isCausal, scale);
#endif
  }
  at::Tensor preOut = out.transpose(1, 2).reshape({B, S, H * hd});  // head h = [h*hd, (h+1)*hd)
  if (opts.hooks) opts.hooks->call(layer, HookSite::AttnPreOut, preOut, ctx);
  return b.o(preOut);
}

namespace {

// What one forward needs on one stage's device (placement.h), built once per forward when the
// stage's first layer runs: padding rows, batched-decoding positions, rotary tables and attention
// masks. Stage 0 serves the embeddings too. On one device there is one stage.
struct StageInputs {
  bool ready = false;
  at::Tensor keyValid;      // [B, S] bool: padding (when padded)
  at::Tensor realRows;      // [real tokens] int64 into [B * S] (when padded and hooked)
  at::Tensor rowPositions;  // [B, 1] int64: each row's position (batched decoding)
  at::Tensor slotWriteRows; // [B * KV] int64: (row b, kv head h) -> (b * KV + h) * capacity + position[b] (batched decoding)
  at::Tensor cos, sin, cosLocal, sinLocal;  // rotary tables in the model's dtype
  std::map<int64_t, at::Tensor> masks;      // additive attention masks by sliding window
  HookContext ctx;          // points at keyValid / realRows above
};

}  // namespace

at::Tensor Decoder::forward(const at::Tensor& ids, const ForwardOptions& opts) const {
  const int64_t B = ids.size(0), S = ids.size(1);
  KvCache* cache = opts.cache;
  if (cache != nullptr && cache->k.empty()) {
    cache->k.resize(static_cast<size_t>(cfg_.nLayers));
    cache->v.resize(static_cast<size_t>(cfg_.nLayers));
  }
  SlotCache* slots = opts.slots;
  if (slots != nullptr && (S != 1 || cache != nullptr)) throw Error(code::kInternal, "batched decoding takes one token per row and no KvCache");
  if (!cfg_.causal && (cache != nullptr || slots != nullptr)) {
    throw Error(code::kNotCausalLm, cfg_.architecture + " is a masked language model: it has no KV cache and cannot generate");
  }
  const int64_t past = cache != nullptr ? cache->length : 0;
  const int64_t Sk = slots != nullptr ? slots->keyLength : past + S;

  // Padding: keyValid [B, S] bool; only meaningful without a cache (generation runs unpadded).
  at::Tensor hostValid, hostRealRows;
  bool padded = false;
  bool keyMaskNeeded = false;  // padding that attention must mask (see ForwardOptions::paddingOutputsUnused)
  if (opts.attentionMask.defined()) {
    // The mask arrives on the CPU: decide "any padding?" and "right padding only?" there, without
    // a device sync.
    hostValid = opts.attentionMask.to(at::kCPU).to(at::kBool);  // [B, S]
    padded = !hostValid.all().item<bool>();
    if (padded && cache != nullptr) throw Error(code::kInvalidArgument, "padding is not supported with a KV cache");
    if (padded) {
      // Right padding: no real token follows a padding one in its row.
      const bool rightPaddedOnly =
          S < 2 || !hostValid.narrow(1, 1, S - 1).logical_and(hostValid.narrow(1, 0, S - 1).logical_not()).any().item<bool>();
      // Bidirectional attention: every real token sees the padding after it, so it is always masked.
      keyMaskNeeded = !(opts.paddingOutputsUnused && rightPaddedOnly && cfg_.causal);
      // Only hooks read the real rows (HookContext::realRows): no host nonzero and no copy without them.
      if (opts.hooks != nullptr) hostRealRows = hostValid.reshape({-1}).nonzero().reshape({-1});  // [real tokens] into [B * S]
    }
  }

  // Attention masks. Fast path: no key padding to mask, no cache prefix and no window that bites ->
  // is_causal (flash / memory-efficient attention). Otherwise an additive mask [B|1, 1, S, Sk] in the
  // model's dtype (0 = attend, -inf = not), built once per forward, per stage and per distinct
  // sliding window (SDPA would convert a boolean mask again in every layer).
  bool anyWindowBites = false;
  for (int64_t w : cfg_.slidingWindow) anyWindowBites |= (w > 0 && Sk > w);
  const bool needMask = keyMaskNeeded || anyWindowBites || (past > 0 && S > 1) || slots != nullptr;

  // Per stage, on its own device. Every tensor is made with an explicit device (the worker's
  // current device is the first stage's). Sized once: HookContext points into its elements.
  std::vector<StageInputs> stages(placement_.devices.size());
  auto stageInputs = [&](int stage) -> StageInputs& {
    StageInputs& st = stages[static_cast<size_t>(stage)];
    if (st.ready) return st;
    st.ready = true;
    const at::Device dev = placement_.devices[static_cast<size_t>(stage)];
    auto longOpts = at::TensorOptions().dtype(at::kLong).device(dev);
    if (padded) {
      st.keyValid = hostValid.to(dev);
      st.ctx.tokenMask = &st.keyValid;
      if (hostRealRows.defined()) {
        st.realRows = hostRealRows.to(dev);
        st.ctx.realRows = &st.realRows;
      }
    }
    if (slots != nullptr) {
      st.rowPositions = slots->positions.to(dev).view({B, 1});  // [B, 1]
      // Every layer's cache has the same capacity (decode_engine.cc sizes them together).
      const int64_t KV = cfg_.nKvHeads, capacity = slots->k.at(0).size(2);
      at::Tensor rowHead = at::arange(B * KV, longOpts).view({B, KV});
      st.slotWriteRows = (rowHead * capacity + st.rowPositions).reshape({-1});  // [B * KV]
    }
    if (cfg_.positions == PositionKind::Rotary) {
      // Positions [S] shared by every row, or [B, 1] per row in batched decoding (slots).
      at::Tensor pos = slots != nullptr ? st.rowPositions.to(at::kFloat) : at::arange(past, Sk, longOpts).to(at::kFloat);
      auto table = [&](const at::Tensor& invFreq, at::Tensor& c, at::Tensor& s) {
        at::Tensor freqs = pos.unsqueeze(-1) * invFreq;  // [S, rot/2] or [B, 1, rot/2] (as at::outer)
        // [S, rot]: halves [f | f] for rotate_half, pairs [f0 f0 f1 f1 ...] for interleaved rotary.
        at::Tensor emb = cfg_.rotaryInterleaved ? freqs.repeat_interleave(2, -1) : at::cat({freqs, freqs}, -1);
        c = emb.cos().to(dtype_);
        s = emb.sin().to(dtype_);
      };
      table(invFreq_[static_cast<size_t>(stage)], st.cos, st.sin);
      if (invFreqLocal_[static_cast<size_t>(stage)].defined()) table(invFreqLocal_[static_cast<size_t>(stage)], st.cosLocal, st.sinLocal);
    }
    return st;
  };
  auto maskFor = [&](int stage, int64_t window) -> at::Tensor {
    if (!needMask) return at::Tensor();
    StageInputs& st = stageInputs(stage);
    const at::Device dev = placement_.devices[static_cast<size_t>(stage)];
    auto longOpts = at::TensorOptions().dtype(at::kLong).device(dev);
    if (window > 0 && Sk <= window) window = 0;
    auto it = st.masks.find(window);
    if (it != st.masks.end()) return it->second;
    at::Tensor kIdx = at::arange(0, Sk, longOpts).unsqueeze(0);     // [1, Sk]
    at::Tensor allowed;
    if (!cfg_.causal) {  // bidirectional: every query sees every (real) key
      allowed = at::ones({1, 1, S, Sk}, longOpts.dtype(at::kBool));
    } else if (slots != nullptr) {  // each row's one query at its own position: [B, 1, 1, Sk]
      allowed = kIdx <= st.rowPositions;
      if (window > 0) allowed = allowed.logical_and((st.rowPositions - kIdx) < window);
      allowed = allowed.view({B, 1, 1, Sk});
    } else {
      at::Tensor qAbs = at::arange(past, Sk, longOpts).unsqueeze(1);  // [S, 1]
      allowed = kIdx <= qAbs;
      if (window > 0) allowed = allowed.logical_and((qAbs - kIdx) < window);
      allowed = allowed.unsqueeze(0).unsqueeze(0);  // [1, 1, S, Sk]
    }
    if (keyMaskNeeded) {
      allowed = allowed.logical_and(st.keyValid.view({B, 1, 1, Sk}));
      // A query with no visible key (left padding) would give NaN; let it see every key instead.
      // Only padded queries are affected, and their outputs are never used.
      at::Tensor empty = allowed.logical_not().all(-1, /*keepdim=*/true);
      allowed = allowed.logical_or(empty);
    }
    // What SDPA does with a boolean mask, done once: -inf where not allowed.
    at::Tensor additive = at::zeros(allowed.sizes(), at::TensorOptions().dtype(dtype_).device(dev))
                              .masked_fill_(allowed.logical_not(), -std::numeric_limits<double>::infinity());
    st.masks[window] = additive;
    return additive;
  };

  // Embeddings, on the first stage's device (ids arrive there).
  const StageInputs& first = stageInputs(placement_.embedDevice);
  auto longOpts = at::TensorOptions().dtype(at::kLong).device(device_);
  at::Tensor x = embed.index_select(0, ids.reshape({-1})).view({B, S, embed.size(1)});
  if (cfg_.embedScale > 0) x = x * at::scalar_tensor(cfg_.embedScale, x.options());  // the scale rounded to the dtype, as HF
  if (projIn.defined()) x = projIn(x);
  if (tokenTypeEmbed.defined()) x = x + tokenTypeEmbed[0];  // RoBERTa: (word + type 0) + position, as HF adds them
  if (cfg_.positions != PositionKind::Rotary) {
    // Usable positions: the table less OPT's offset of 2, or RoBERTa's padTokenId + 1 rows.
    const int64_t offset = cfg_.positions == PositionKind::LearnedOptOffset     ? 2
                           : cfg_.positions == PositionKind::LearnedPaddingOffset ? cfg_.padTokenId + 1
                                                                                  : 0;
    const int64_t rows = posEmbed.size(0) - offset;
    if (Sk > rows) {
      throw Error(code::kInvalidArgument, "sequence of " + std::to_string(Sk) + " tokens exceeds the model's " +
                                              std::to_string(rows) + " learned positions");
    }
  }
  if (cfg_.positions == PositionKind::Learned && slots != nullptr) {
    x = x + posEmbed.index_select(0, first.rowPositions.reshape({-1})).view({B, 1, -1});
  } else if (cfg_.positions == PositionKind::Learned) {
    x = x + posEmbed.index_select(0, at::arange(past, Sk, longOpts)).unsqueeze(0);
  } else if (cfg_.positions == PositionKind::LearnedOptOffset) {
    // OPT: position = (number of real tokens so far) - 1; padding gets -1; table row = position + 2.
    at::Tensor pos;
    if (slots != nullptr) {
      pos = first.rowPositions;  // unpadded rows: position = index
    } else if (padded) {
      at::Tensor m = first.keyValid.to(at::kLong);
      pos = at::cumsum(m, 1) * m - 1 + past;
    } else {
      pos = at::arange(past, Sk, longOpts).unsqueeze(0).expand({B, S});
    }
    x = x + posEmbed.index_select(0, (pos + 2).reshape({-1})).view({B, S, -1});
  } else if (cfg_.positions == PositionKind::LearnedPaddingOffset) {
    // RoBERTa (HF create_position_ids_from_input_ids): real = ids != padTokenId; row = padTokenId +
    // cumsum(real) at real tokens, padTokenId at padding. excise fills padding slots with id 0, so a
    // slot the attention mask marks as padding counts as padding too: the row HF gives it when the
    // slot holds the pad id. [B, S]
    at::Tensor real = ids.ne(cfg_.padTokenId);
    if (padded) real = real.logical_and(first.keyValid);
    at::Tensor m = real.to(at::kLong);
    at::Tensor pos = at::cumsum(m, 1) * m + cfg_.padTokenId;
    x = x + posEmbed.index_select(0, pos.reshape({-1})).view({B, S, -1});
  }
  if (embedNorm.weight.defined()) x = embedNorm(x);

  int64_t layers = cfg_.nLayers;
  if (!opts.computeLogits && opts.stopAfterLayer >= 0) layers = std::min(layers, opts.stopAfterLayer + 1);
  for (int64_t L = 0; L < layers; ++L) {
    const Block& b = blocks_[static_cast<size_t>(L)];
    const int stage = placement_.layerDevice[static_cast<size_t>(L)];
    const StageInputs& st = stageInputs(stage);
    // The residual stream crosses to this layer's device at a stage boundary (a no-op within one).
    x = x.to(placement_.devices[static_cast<size_t>(stage)]);
    at::Tensor mask = maskFor(stage, cfg_.slidingWindow[static_cast<size_t>(L)]);
    const bool fast = !mask.defined() && past == 0 && cfg_.causal;  // is_causal; non-causal unmasked: no mask at all
    const bool local = !cfg_.localRope.empty() && cfg_.localRope[static_cast<size_t>(L)];
    const at::Tensor& c = local ? st.cosLocal : st.cos;
    const at::Tensor& s = local ? st.sinLocal : st.sin;
    const HookContext& ctx = st.ctx;
    const at::Tensor& slotRows = st.slotWriteRows;
    auto pre = [&](const Norm& n, const at::Tensor& h) { return cfg_.sublayerPreNorm ? n(h) : h; };
    auto post = [&](const Norm& n, const at::Tensor& h) { return cfg_.sublayerPostNorm ? n(h) : h; };
    if (cfg_.parallelResidual) {
      at::Tensor h = b.ln1(x);
      at::Tensor a = attention(L, b, h, c, s, mask, fast, cache, opts, ctx, slotRows);
      at::Tensor m = mlp(L, b, cfg_.parallelSharedNorm ? h : b.ln2(x), opts, ctx);
      x = x + a + m;
    } else if (cfg_.preNorm) {
      x = x + post(b.postAttnNorm, attention(L, b, pre(b.ln1, x), c, s, mask, fast, cache, opts, ctx, slotRows));
      x = x + post(b.postMlpNorm, mlp(L, b, pre(b.ln2, x), opts, ctx));
    } else {  // post-LN (OPT do_layer_norm_before=false)
      x = b.ln1(x + attention(L, b, x, c, s, mask, fast, cache, opts, ctx, slotRows));
      x = b.ln2(x + mlp(L, b, x, opts, ctx));
    }
  }
  if (cache != nullptr) {
    if (layers != cfg_.nLayers) throw Error(code::kInternal, "a KV cache needs every layer");
    cache->length = Sk;
  }
  if (!opts.computeLogits) return at::Tensor();

  if (opts.lastTokenOnly) x = x.narrow(1, S - 1, 1);
  x = x.to(placement_.last());  // the final norm's device (the last layer's)
  if (hasFinalNorm) x = finalNorm(x);
  if (projOut.defined()) x = projOut(x);
  // A tied LM head is the embedding, on the first device: the final hidden state goes back there
  // rather than keeping a second copy of the embedding on the last device.
  x = x.to(placement_.head());
  // Masked-LM head (RoBERTa): LayerNorm(gelu(dense(x))), exact erf GELU whatever hidden_act says (as HF).
  if (headDense.defined()) x = headNorm(at::gelu(headDense(x)));
  if (opts.returnHidden) return x;
  return logitsOf(x);
}

}  // namespace excise
