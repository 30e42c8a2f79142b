// Gemma 3 text models (Gemma3ForCausalLM, model_type gemma3_text): Gemma 2's block (scaled embeddings,
// (1 + w) RMSNorms, pre and post feed-forward norms, query_pre_attn_scalar) plus:
// q_norm / k_norm, (1 + w) RMSNorms over each head applied before the rotary; two RoPE tables:
// sliding layers use rope_local_base_freq (10000) without scaling, full-attention layers rope_theta
// (1e6) with rope_scaling (linear factor 8 on the larger models); which layers slide comes from
// layer_types, else from sliding_window_pattern (every pattern-th layer is full: (i + 1) % pattern == 0).
// Soft-capping is off unless configured. transformers 5 nests the two RoPE settings as
// rope_parameters.{full_attention, sliding_attention}. use_bidirectional_attention is refused.
#include <cmath>

#include "families/family.h"

namespace excise {
namespace {

// RoPE base and scaling from one of transformers 5's per-layer-type rope_parameters entries.
void ReadNestedRope(const ConfigReader& r, const Json& entry, double* theta, RopeScaling* scaling) {
  const Json wrapped = Json::Object({{"rope_parameters", entry}});
  ConfigReader wr(wrapped, r.file());
  *theta = ReadRopeTheta(wr, *theta);
  *scaling = ReadRopeScaling(wr);
}

DecoderConfig ReadGemma3(const ConfigReader& r, const std::string& architecture) {
  DecoderConfig c;
  c.architecture = architecture;
  c.family = "gemma3";
  if (r.getBool("use_bidirectional_attention", false)) {
    UnsupportedField(r, "use_bidirectional_attention", "is true: excise runs Gemma 3 as a causal decoder only");
  }
  ReadLlamaStyleSizes(r, c, /*defaultHeadDim=*/256);
  c.norm = NormKind::RMSNorm;
  c.normHasBias = false;
  c.normEps = r.getDouble("rms_norm_eps", 1e-6);
  c.normWeightOffset = 1.0;
  c.normWeightInFloat = true;
  c.sublayerPostNorm = true;
  c.qkNorm = QkNorm::PerHead;
  c.embedScale = std::sqrt(static_cast<double>(c.dModel));
  c.activation = ParseActivation(r, "hidden_activation", "gelu_pytorch_tanh");
  c.gatedMlp = true;
  c.qkvLayout = QkvLayout::Separate;
  const double queryScalar = r.getDouble("query_pre_attn_scalar", 256);
  if (!(queryScalar > 0)) r.fail("field \"query_pre_attn_scalar\" must be positive");
  c.attnScale = 1.0 / std::sqrt(queryScalar);
  c.attnSoftcap = ReadOptionalNumber(r, "attn_logit_softcapping", 0);
  c.finalSoftcap = ReadOptionalNumber(r, "final_logit_softcapping", 0);
  c.positions = PositionKind::Rotary;
  c.rotaryDims = c.headDim;
  const Json* params = r.root().find("rope_parameters");
  if (params != nullptr && params->isObject() && params->find("full_attention") != nullptr) {
    c.ropeTheta = 1e6;
    c.ropeThetaLocal = 10000.0;
    if (const Json* full = params->find("full_attention"); full->isObject()) ReadNestedRope(r, *full, &c.ropeTheta, &c.ropeScaling);
    if (const Json* local = params->find("sliding_attention"); local != nullptr && local->isObject()) {
      RopeScaling localScaling;
      ReadNestedRope(r, *local, &c.ropeThetaLocal, &localScaling);
      if (localScaling.kind != RopeScalingKind::None) {
        UnsupportedField(r, "rope_parameters.sliding_attention.rope_type", "must be \"default\" (unscaled local RoPE)");
      }
    }
  } else {
    c.ropeTheta = ReadRopeTheta(r, 1e6);
    c.ropeScaling = ReadRopeScaling(r);
    c.ropeThetaLocal = r.getDouble("rope_local_base_freq", 10000.0);
  }
  c.tiedEmbeddings = r.getBool("tie_word_embeddings", true);
  c.qkvBias = c.oBias = r.getBool("attention_bias", false);
  const Json* w = r.root().find("sliding_window");
  const int64_t window = w == nullptr ? 4096 : r.getInt("sliding_window", 0);
  const int64_t pattern = r.getInt("sliding_window_pattern", r.getInt("_sliding_window_pattern", 6));
  if (pattern < 1) r.fail("field \"sliding_window_pattern\" must be positive");
  c.localRope = ReadLayerTypes(r, c, window, [&](int64_t layer) { return (layer + 1) % pattern != 0; });
  ReadCommonFields(r, c);
  return c;
}

}  // namespace

const FamilyAdapter& Gemma3Family() {
  using C = DecoderConfig;
  auto d = [](const C& c) { return Dims{c.dModel}; };
  auto hd = [](const C& c) { return Dims{c.headDim}; };
  auto qkvBias = [](const C& c) { return c.qkvBias; };
  static const FamilyAdapter f{
      "gemma3",
      {"Gemma3ForCausalLM"},
      {"model.", ""},
      &ReadGemma3,
      {
          {Role::Embed, "{P}embed_tokens.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; }},
          {Role::Ln1W, "{P}layers.{L}.input_layernorm.weight", d},
          {Role::QW, "{P}layers.{L}.self_attn.q_proj.weight", [](const C& c) { return Dims{c.attnDim(), c.dModel}; }},
          {Role::QB, "{P}layers.{L}.self_attn.q_proj.bias", [](const C& c) { return Dims{c.attnDim()}; }, qkvBias},
          {Role::KW, "{P}layers.{L}.self_attn.k_proj.weight", [](const C& c) { return Dims{c.kvDim(), c.dModel}; }},
          {Role::KB, "{P}layers.{L}.self_attn.k_proj.bias", [](const C& c) { return Dims{c.kvDim()}; }, qkvBias},
          {Role::VW, "{P}layers.{L}.self_attn.v_proj.weight", [](const C& c) { return Dims{c.kvDim(), c.dModel}; }},
          {Role::VB, "{P}layers.{L}.self_attn.v_proj.bias", [](const C& c) { return Dims{c.kvDim()}; }, qkvBias},
          {Role::QNormW, "{P}layers.{L}.self_attn.q_norm.weight", hd},
          {Role::KNormW, "{P}layers.{L}.self_attn.k_norm.weight", hd},
          {Role::OW, "{P}layers.{L}.self_attn.o_proj.weight", [](const C& c) { return Dims{c.dModel, c.attnDim()}; }},
          {Role::OB, "{P}layers.{L}.self_attn.o_proj.bias", d, [](const C& c) { return c.oBias; }},
          {Role::PostAttnNormW, "{P}layers.{L}.post_attention_layernorm.weight", d},
          {Role::Ln2W, "{P}layers.{L}.pre_feedforward_layernorm.weight", d},
          {Role::GateW, "{P}layers.{L}.mlp.gate_proj.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcInW, "{P}layers.{L}.mlp.up_proj.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcOutW, "{P}layers.{L}.mlp.down_proj.weight", [](const C& c) { return Dims{c.dModel, c.dMlp}; }},
          {Role::PostMlpNormW, "{P}layers.{L}.post_feedforward_layernorm.weight", d},
          {Role::FinalNormW, "{P}norm.weight", d},
          {Role::LmHead, "lm_head.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; },
           [](const C& c) { return !c.tiedEmbeddings; }},
      },
      {{"gemma3_text", "Gemma3ForCausalLM"}}};
  return f;
}

}  // namespace excise
