// Gemma 2 (Gemma2ForCausalLM): Gemma's scaled embeddings, (1 + w) RMSNorms and GELU-tanh MLP, plus:
// four norms per layer, x = x + post_attention_layernorm(attn(input_layernorm(x))), then
// x = x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x))) (sublayerPostNorm);
// attention scores scaled by query_pre_attn_scalar^-0.5 (not head_dim^-0.5) and soft-capped,
// cap * tanh(s / cap), with attn_logit_softcapping (absent: 50, null: off), final logits likewise with
// final_logit_softcapping (absent: 30); sliding_window on the sliding layers of layer_types (absent:
// even layers, the rule of configs written before layer_types existed).
#include <cmath>

#include "families/family.h"

namespace excise {
namespace {

DecoderConfig ReadGemma2(const ConfigReader& r, const std::string& architecture) {
  DecoderConfig c;
  c.architecture = architecture;
  c.family = "gemma2";
  ReadLlamaStyleSizes(r, c, /*defaultHeadDim=*/256);
  c.norm = NormKind::RMSNorm;
  c.normHasBias = false;
  c.normEps = r.getDouble("rms_norm_eps", 1e-6);
  c.normWeightOffset = 1.0;
  c.normWeightInFloat = true;
  c.sublayerPostNorm = true;
  c.embedScale = std::sqrt(static_cast<double>(c.dModel));
  c.activation = ParseActivation(r, "hidden_activation", "gelu_pytorch_tanh");
  c.gatedMlp = true;
  c.qkvLayout = QkvLayout::Separate;
  const double queryScalar = r.getDouble("query_pre_attn_scalar", 256);
  if (!(queryScalar > 0)) r.fail("field \"query_pre_attn_scalar\" must be positive");
  c.attnScale = 1.0 / std::sqrt(queryScalar);
  c.attnSoftcap = ReadOptionalNumber(r, "attn_logit_softcapping", 50.0);
  c.finalSoftcap = ReadOptionalNumber(r, "final_logit_softcapping", 30.0);
  c.positions = PositionKind::Rotary;
  c.rotaryDims = c.headDim;
  c.ropeTheta = ReadRopeTheta(r, 10000.0);
  c.ropeScaling = ReadRopeScaling(r);
  c.tiedEmbeddings = r.getBool("tie_word_embeddings", true);
  c.qkvBias = c.oBias = r.getBool("attention_bias", false);
  const Json* w = r.root().find("sliding_window");
  const int64_t window = w == nullptr ? 4096 : r.getInt("sliding_window", 0);
  ReadLayerTypes(r, c, window, [](int64_t layer) { return layer % 2 == 0; });
  ReadCommonFields(r, c);
  return c;
}

}  // namespace

const FamilyAdapter& Gemma2Family() {
  using C = DecoderConfig;
  auto d = [](const C& c) { return Dims{c.dModel}; };
  auto qkvBias = [](const C& c) { return c.qkvBias; };
  static const FamilyAdapter f{
      "gemma2",
      {"Gemma2ForCausalLM"},
      {"model.", ""},
      &ReadGemma2,
      {
          {Role::Embed, "{P}embed_tokens.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; }},
          {Role::Ln1W, "{P}layers.{L}.input_layernorm.weight", d},
          {Role::QW, "{P}layers.{L}.self_attn.q_proj.weight", [](const C& c) { return Dims{c.attnDim(), c.dModel}; }},
          {Role::QB, "{P}layers.{L}.self_attn.q_proj.bias", [](const C& c) { return Dims{c.attnDim()}; }, qkvBias},
          {Role::KW, "{P}layers.{L}.self_attn.k_proj.weight", [](const C& c) { return Dims{c.kvDim(), c.dModel}; }},
          {Role::KB, "{P}layers.{L}.self_attn.k_proj.bias", [](const C& c) { return Dims{c.kvDim()}; }, qkvBias},
          {Role::VW, "{P}layers.{L}.self_attn.v_proj.weight", [](const C& c) { return Dims{c.kvDim(), c.dModel}; }},
          {Role::VB, "{P}layers.{L}.self_attn.v_proj.bias", [](const C& c) { return Dims{c.kvDim()}; }, qkvBias},
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
      {{"gemma2", "Gemma2ForCausalLM"}}};
  return f;
}

}  // namespace excise
