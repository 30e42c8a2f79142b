// A family adapter turns one Hugging Face architecture into the generic decoder: it reads
// config.json into a DecoderConfig and declares, as a table, which checkpoint tensor plays which
// role and what shape it must have. Shapes are asserted on load (model_loader.cc).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "config.h"

namespace excise {

// What a checkpoint tensor is to the decoder: the ONE list of weight roles. Each row gives the role,
// whether it is model-level or per layer ({L} in its name), its name in messages, and the statement
// that binds a loaded tensor `t` to the decoder (expanded in model_loader.cc, where `s` is the
// Decoder for Model roles and the layer's Block for Layer roles, `inputMajor` the spec's flag and
// `cfg` the DecoderConfig). A new role is one new row here.
#define EXCISE_WEIGHT_ROLES(X)                                                                          \
  X(Embed, Model, "token embedding", s.embed = t)                                                      \
  X(PosEmbed, Model, "position embedding", s.posEmbed = t)                                             \
  X(ProjIn, Model, "input projection", SetWeight(s.projIn, t, inputMajor))                             \
  X(ProjOut, Model, "output projection", SetWeight(s.projOut, t, inputMajor))                          \
  X(FinalNormW, Model, "final norm weight", s.finalNorm.weight = t)                                    \
  X(FinalNormB, Model, "final norm bias", s.finalNorm.bias = t)                                        \
  X(LmHead, Model, "LM head", s.lmHead = t)                                                            \
  X(LmHeadB, Model, "LM head bias", s.lmHeadBias = t)                                                  \
  /* RoBERTa: token type 0's row is added to every embedding; LayerNorm after the embedding sum */       \
  X(TokenTypeEmbed, Model, "token type embedding", s.tokenTypeEmbed = t)                                \
  X(EmbedNormW, Model, "embedding norm weight", s.embedNorm.weight = t)                                 \
  X(EmbedNormB, Model, "embedding norm bias", s.embedNorm.bias = t)                                     \
  /* masked-LM head before the (tied) decoder: LayerNorm(gelu(dense(x))) */                             \
  X(HeadDenseW, Model, "MLM head dense weight", SetWeight(s.headDense, t, inputMajor))                  \
  X(HeadDenseB, Model, "MLM head dense bias", s.headDense.bias = t)                                     \
  X(HeadNormW, Model, "MLM head norm weight", s.headNorm.weight = t)                                    \
  X(HeadNormB, Model, "MLM head norm bias", s.headNorm.bias = t)                                        \
  X(Ln1W, Layer, "attention norm weight", s.ln1.weight = t)                                            \
  X(Ln1B, Layer, "attention norm bias", s.ln1.bias = t)                                                \
  X(Ln2W, Layer, "MLP norm weight", s.ln2.weight = t)                                                  \
  X(Ln2B, Layer, "MLP norm bias", s.ln2.bias = t)                                                      \
  X(PostAttnNormW, Layer, "attention output norm weight", s.postAttnNorm.weight = t)                   \
  X(PostMlpNormW, Layer, "MLP output norm weight", s.postMlpNorm.weight = t)                           \
  X(QNormW, Layer, "query norm weight", s.qNorm.weight = t)                                            \
  X(KNormW, Layer, "key norm weight", s.kNorm.weight = t)                                              \
  /* fused q/k/v (QkvLayout::FusedConcat / FusedPerHead) */                                            \
  X(QkvW, Layer, "fused QKV weight", SetWeight(s.qkv, t, inputMajor))                                  \
  X(QkvB, Layer, "fused QKV bias", s.qkv.bias = t)                                                     \
  X(QW, Layer, "query weight", SetWeight(s.q, t, inputMajor))                                          \
  X(QB, Layer, "query bias", s.q.bias = t)                                                             \
  X(KW, Layer, "key weight", SetWeight(s.k, t, inputMajor))                                            \
  X(KB, Layer, "key bias", s.k.bias = t)                                                               \
  X(VW, Layer, "value weight", SetWeight(s.v, t, inputMajor))                                          \
  X(VB, Layer, "value bias", s.v.bias = t)                                                             \
  /* attention output projection: its input is blocks.{L}.attn.pre_out */                              \
  X(OW, Layer, "attention output weight", SetWeight(s.o, t, inputMajor))                               \
  X(OB, Layer, "attention output bias", s.o.bias = t)                                                  \
  /* MLP input projection (non-gated fc1, or the gated MLP's up projection) */                         \
  X(FcInW, Layer, "MLP input weight", SetWeight(s.fcIn, t, inputMajor))                                \
  X(FcInB, Layer, "MLP input bias", s.fcIn.bias = t)                                                   \
  X(GateW, Layer, "MLP gate weight", SetWeight(s.gate, t, inputMajor))                                 \
  X(GateB, Layer, "MLP gate bias", s.gate.bias = t)                                                    \
  /* [gate | up] in one [2 dMlp, d] tensor (Phi-3): used whole, and as two row views for pruning */   \
  X(GateUpW, Layer, "fused MLP gate/up weight", SplitGateUp(s, t, cfg.dMlp))                           \
  /* MLP output projection: its input is blocks.{L}.mlp.pre_out */                                     \
  X(FcOutW, Layer, "MLP output weight", SetWeight(s.fcOut, t, inputMajor))                             \
  X(FcOutB, Layer, "MLP output bias", s.fcOut.bias = t)

enum class Role {
#define EXCISE_ROLE_ENUM(role, scope, name, bind) role,
  EXCISE_WEIGHT_ROLES(EXCISE_ROLE_ENUM)
#undef EXCISE_ROLE_ENUM
};
bool IsLayerRole(Role r);
const char* RoleName(Role r);

using Dims = std::vector<int64_t>;

struct WeightSpec {
  Role role;
  // Checkpoint name; "{P}" is the base-model prefix (e.g. "model."), "{L}" the layer index.
  const char* name;
  // Expected shape as stored in the checkpoint.
  Dims (*shape)(const DecoderConfig&);
  // Whether the tensor exists for this config (biases, tied heads, ...); nullptr = always.
  bool (*present)(const DecoderConfig&) = nullptr;
  // Stored [in, out] rather than nn.Linear's [out, in] (GPT-2's Conv1D).
  bool inputMajor = false;
};

struct FamilyAdapter {
  const char* family;
  std::vector<std::string> architectures;
  // Candidate base-model prefixes, tried in order against the checkpoint: HF checkpoints are saved
  // with the prefix (model., transformer., ...) but older hub uploads often without it.
  std::vector<std::string> prefixes;
  DecoderConfig (*readConfig)(const ConfigReader& reader, const std::string& architecture);
  std::vector<WeightSpec> weights;
  // model_type -> architecture class, for old configs that lack "architectures".
  std::vector<std::pair<std::string, std::string>> modelTypes;
};

// A layer-count field, in 1..65536 (config.cc): read before any per-layer list is sized by it.
int64_t RequireLayerCount(const ConfigReader& r, const std::string& key);

// Readers several families share (families/readers.cc).
// LLaMA-style sizes: num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads,
// intermediate_size, vocab_size, max_position_embeddings (default 2048). head_dim when the config has
// it, else defaultHeadDim when > 0 (Gemma's and Qwen3's config classes default it), else
// hidden_size / num_attention_heads.
void ReadLlamaStyleSizes(const ConfigReader& r, DecoderConfig& c, int64_t defaultHeadDim = 0);
// rope_theta, or rope_parameters.rope_theta (transformers 5 writes it there).
double ReadRopeTheta(const ConfigReader& r, double fallback);
// Which layers are sliding-window layers: layer_types ("sliding_attention" / "full_attention", one per
// layer) when present, else defaultSliding(layer). Sets c.slidingWindow (window on sliding layers, 0
// elsewhere; window 0 = none) and returns the per-layer flags.
std::vector<bool> ReadLayerTypes(const ConfigReader& r, DecoderConfig& c, int64_t window,
                                 const std::function<bool(int64_t layer)>& defaultSliding);
// A number whose absence means the config class's default and null means "off" (returns 0).
double ReadOptionalNumber(const ConfigReader& r, const char* key, double absentDefault);
// Refuses a config field with a value excise does not implement: ERR_UNSUPPORTED_CONFIG naming it.
[[noreturn]] void UnsupportedField(const ConfigReader& r, const std::string& field, const std::string& why);

// Registry (families/registry.cc): the list of families, one line each.
const FamilyAdapter* FindFamily(const std::string& architecture);
// The architecture class a config without "architectures" means, by its model_type ("" if none).
std::string ArchitectureForModelType(const std::string& modelType);
std::vector<std::string> SupportedArchitectures();

}  // namespace excise
