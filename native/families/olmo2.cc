// OLMo 2 (Olmo2ForCausalLM): LLaMA-style attention and gated SiLU MLP with two quirks:
// norms come after each sublayer, not before: x = x + post_attention_layernorm(attn(x)), then
// x = x + post_feedforward_layernorm(mlp(x)) (no input norms: sublayerPreNorm off, sublayerPostNorm
// on); q_norm / k_norm are RMSNorms over the whole q / k projection output (H * head_dim and
// KV * head_dim wide), applied before the split into heads and the rotary (QkNorm::WholeProjection).
// RMSNorm multiplies its weight in float32 before casting back.
#include "families/family.h"

namespace excise {
namespace {

DecoderConfig ReadOlmo2(const ConfigReader& r, const std::string& architecture) {
  DecoderConfig c;
  c.architecture = architecture;
  c.family = "olmo2";
  ReadLlamaStyleSizes(r, c);
  c.norm = NormKind::RMSNorm;
  c.normHasBias = false;
  c.normEps = r.getDouble("rms_norm_eps", 1e-5);
  c.normWeightInFloat = true;
  c.sublayerPreNorm = false;
  c.sublayerPostNorm = true;
  c.qkNorm = QkNorm::WholeProjection;
  c.activation = ParseActivation(r, "hidden_act", "silu");
  c.gatedMlp = true;
  c.qkvLayout = QkvLayout::Separate;
  c.positions = PositionKind::Rotary;
  c.rotaryDims = c.headDim;
  c.ropeTheta = ReadRopeTheta(r, 10000.0);
  c.ropeScaling = ReadRopeScaling(r);
  c.tiedEmbeddings = r.getBool("tie_word_embeddings", false);
  c.qkvBias = c.oBias = r.getBool("attention_bias", false);
  c.slidingWindow.assign(static_cast<size_t>(c.nLayers), 0);
  ReadCommonFields(r, c);
  return c;
}

}  // namespace

const FamilyAdapter& Olmo2Family() {
  using C = DecoderConfig;
  auto d = [](const C& c) { return Dims{c.dModel}; };
  auto qkvBias = [](const C& c) { return c.qkvBias; };
  static const FamilyAdapter f{
      "olmo2",
      {"Olmo2ForCausalLM"},
      {"model.", ""},
      &ReadOlmo2,
      {
          {Role::Embed, "{P}embed_tokens.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; }},
          {Role::QW, "{P}layers.{L}.self_attn.q_proj.weight", [](const C& c) { return Dims{c.attnDim(), c.dModel}; }},
          {Role::QB, "{P}layers.{L}.self_attn.q_proj.bias", [](const C& c) { return Dims{c.attnDim()}; }, qkvBias},
          {Role::KW, "{P}layers.{L}.self_attn.k_proj.weight", [](const C& c) { return Dims{c.kvDim(), c.dModel}; }},
          {Role::KB, "{P}layers.{L}.self_attn.k_proj.bias", [](const C& c) { return Dims{c.kvDim()}; }, qkvBias},
          {Role::VW, "{P}layers.{L}.self_attn.v_proj.weight", [](const C& c) { return Dims{c.kvDim(), c.dModel}; }},
          {Role::VB, "{P}layers.{L}.self_attn.v_proj.bias", [](const C& c) { return Dims{c.kvDim()}; }, qkvBias},
          {Role::QNormW, "{P}layers.{L}.self_attn.q_norm.weight", [](const C& c) { return Dims{c.attnDim()}; }},
          {Role::KNormW, "{P}layers.{L}.self_attn.k_norm.weight", [](const C& c) { return Dims{c.kvDim()}; }},
          {Role::OW, "{P}layers.{L}.self_attn.o_proj.weight", [](const C& c) { return Dims{c.dModel, c.attnDim()}; }},
          {Role::OB, "{P}layers.{L}.self_attn.o_proj.bias", d, [](const C& c) { return c.oBias; }},
          {Role::PostAttnNormW, "{P}layers.{L}.post_attention_layernorm.weight", d},
          {Role::GateW, "{P}layers.{L}.mlp.gate_proj.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcInW, "{P}layers.{L}.mlp.up_proj.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcOutW, "{P}layers.{L}.mlp.down_proj.weight", [](const C& c) { return Dims{c.dModel, c.dMlp}; }},
          {Role::PostMlpNormW, "{P}layers.{L}.post_feedforward_layernorm.weight", d},
          {Role::FinalNormW, "{P}norm.weight", d},
          {Role::LmHead, "lm_head.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; },
           [](const C& c) { return !c.tiedEmbeddings; }},
      },
      {{"olmo2", "Olmo2ForCausalLM"}}};
  return f;
}

}  // namespace excise
