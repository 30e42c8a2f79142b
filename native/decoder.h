// The generic decoder: one model that runs every supported architecture from a DecoderConfig and
// weights bound by a family adapter. Tensors are kept under their checkpoint names (`params`), and
// the Linear/Norm views below alias them, so in-place edits (pruning) are what gets saved.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "hooks.h"
#include "placement.h"

namespace excise {

struct Linear {
  at::Tensor weight;  // [out, in], or [in, out] when inputMajor (GPT-2 Conv1D)
  at::Tensor bias;    // [out] or undefined
  bool inputMajor = false;

  bool defined() const { return weight.defined(); }
  at::Tensor operator()(const at::Tensor& x) const;
};

struct Norm {
  NormKind kind = NormKind::LayerNorm;
  double eps = 1e-5;
  int64_t dim = 0;
  at::Tensor weight;  // may be undefined (OPT without elementwise affine)
  at::Tensor bias;
  double weightOffset = 0;     // RMSNorm: scale by (weightOffset + weight) (Gemma)
  bool weightInFloat = false;  // RMSNorm: scale in float32, then cast back (Gemma, OLMo 2)
  at::Tensor operator()(const at::Tensor& x) const;
};

struct Block {
  Norm ln1, ln2;                  // on the attention / MLP input (pre-norm), or after the residual add (post-LN)
  Norm postAttnNorm, postMlpNorm;  // on the attention / MLP output before the residual add (Gemma 2/3, OLMo 2)
  Norm qNorm, kNorm;              // on queries / keys before rotary (Qwen3, Gemma 3: per head; OLMo 2: whole projection)
  Linear qkv;      // fused (QkvLayout::FusedConcat / FusedPerHead)
  Linear q, k, v;  // separate (QkvLayout::Separate)
  Linear o;        // attention output projection; input = blocks.{L}.attn.pre_out
  Linear fcIn;     // MLP in (non-gated) or up (gated)
  Linear gate;     // gated MLPs only
  Linear gateUp;   // fused [gate | up] (Phi-3): the forward uses it (autograd reaches the stored tensor);
                   // gate / fcIn are row views of it, for pruning's in-place edits
  Linear fcOut;    // MLP output projection; input = blocks.{L}.mlp.pre_out
};

// Per-layer key/value cache for generation: k, v [batch, nKvHeads, cachedLen, headDim].
struct KvCache {
  std::vector<at::Tensor> k, v;
  int64_t length = 0;
};

// Batched decoding over a preallocated cache (decode_engine.h). Row b of `ids` [B, 1] is the next
// token of the sequence held in cache row b, at position positions[b]: its key and value are
// written in place at that position, and attention runs over the first keyLength positions with
// each row masked to its own length (and sliding window).
struct SlotCache {
  std::vector<at::Tensor> k, v;  // per layer [rows >= B, nKvHeads, capacity, headDim], on the layer's device
  at::Tensor positions;          // [B] int64 on the model's (first) device
  int64_t keyLength = 0;         // max(positions) + 1 <= capacity
};

struct ForwardOptions {
  at::Tensor attentionMask;     // [batch, seq] (1 = token, 0 = padding), any int/bool dtype; may be undefined
  const HookSet* hooks = nullptr;
  KvCache* cache = nullptr;     // when set, keys/values are appended and positions continue after it
  SlotCache* slots = nullptr;   // batched decoding (see SlotCache); ids must be [B, 1], no cache
  bool lastTokenOnly = false;   // compute logits for the last position only (generation)
  bool computeLogits = true;    // false: no final norm / LM head (statistics collection)
  int64_t stopAfterLayer = -1;  // with computeLogits false: skip the layers after this one
  bool returnHidden = false;    // return the final hidden states [batch, seq, embedDim] (after the
                                // final norm and output projection) instead of logits, on the LM
                                // head's device (headDevice(): what logitsOf takes them on)
  // The caller never reads the outputs at padding positions (collect, evaluate, train: padding is
  // excluded downstream). Then right padding needs no key mask: under causal attention a real
  // token never sees a later (padding) key, so the real outputs are those of the masked run, and
  // attention takes its mask-free (flash / memory-efficient) path. forward() leaves this off:
  // it returns every position, padded ones as Hugging Face computes them.
  bool paddingOutputsUnused = false;
};

class Decoder {
 public:
  Decoder(DecoderConfig cfg, at::Device device, at::ScalarType dtype);
  // A model split over several devices (placement.h); one device is the placement with one stage.
  Decoder(DecoderConfig cfg, Placement placement, at::ScalarType dtype);

  const DecoderConfig& config() const { return cfg_; }
  // The first device: token ids go there (embeddings), and it is the worker's current device.
  at::Device device() const { return device_; }
  const Placement& placement() const { return placement_; }
  at::Device layerDevice(int64_t layer) const { return placement_.layer(layer); }
  // Where forward()'s logits (and returnHidden's hidden states) and logitsOf's results live.
  at::Device headDevice() const { return placement_.head(); }
  at::ScalarType dtype() const { return dtype_; }

  // Checkpoint tensors by name, in load order (everything the checkpoint held, known or not).
  std::vector<std::pair<std::string, at::Tensor>>& params() { return params_; }
  const std::vector<std::pair<std::string, at::Tensor>>& params() const { return params_; }
  std::vector<Block>& blocks() { return blocks_; }
  const std::vector<Block>& blocks() const { return blocks_; }

  // config.json as the loader parsed it (or the config given to createRandomModel): the one parse
  // of it; JS reads it back (Model's source config) to save it with the model.
  Json sourceConfig;

  // Weights the loader binds.
  at::Tensor embed, posEmbed, lmHead;  // lmHead may alias embed (tied)
  at::Tensor lmHeadBias;               // GPT-J; usually undefined
  Linear projIn, projOut;              // OPT word_embed_proj_dim != hidden
  Norm finalNorm;
  bool hasFinalNorm = false;
  // RoBERTa (undefined elsewhere): token type 0's embedding row source [types, d]; the LayerNorm
  // after the embedding sum; the masked-LM head's dense + LayerNorm before the tied decoder.
  at::Tensor tokenTypeEmbed;
  Norm embedNorm;
  Linear headDense;
  Norm headNorm;

  // Call once weights are bound: checks derived state (rotary tables).
  void finalize();

  // ids: [batch, seq] int64 on the model's device. Returns logits [batch, seq or 1, vocab] in the
  // model's dtype (undefined when computeLogits is false).
  at::Tensor forward(const at::Tensor& ids, const ForwardOptions& opts) const;

  int64_t parameterCount() const;

  // Logits of final hidden states (see ForwardOptions::returnHidden): [..., embedDim] -> [..., vocab]
  // (LM head, its bias if any, and final soft-capping if configured).
  at::Tensor logitsOf(const at::Tensor& hidden) const;

 private:
  // slotWriteRows: where batched decoding writes each row's new key/value in this layer's SlotCache
  // tensors viewed [rows * nKvHeads * capacity, headDim], [B * nKvHeads] int64 on this layer's device;
  // else undefined.
  at::Tensor attention(int64_t layer, const Block& b, const at::Tensor& x, const at::Tensor& cos,
                       const at::Tensor& sin, const at::Tensor& mask, bool causalFastPath, KvCache* cache,
                       const ForwardOptions& opts, const HookContext& ctx, const at::Tensor& slotWriteRows = at::Tensor()) const;
  at::Tensor mlp(int64_t layer, const Block& b, const at::Tensor& x, const ForwardOptions& opts,
                 const HookContext& ctx) const;
  at::Tensor activation(const at::Tensor& x) const;

  DecoderConfig cfg_;
  at::Device device_;
  Placement placement_;
  at::ScalarType dtype_;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<Block> blocks_;
  // Per stage of the placement (on its device): [rotaryDims / 2] float32.
  std::vector<at::Tensor> invFreq_;
  std::vector<at::Tensor> invFreqLocal_;  // the same for DecoderConfig::localRope layers (Gemma 3); may be undefined
};

}  // namespace excise
