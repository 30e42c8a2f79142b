// Gemma (GemmaForCausalLM): LLaMA-style blocks with Gemma's quirks:
// token embeddings are multiplied by sqrt(hidden_size), a scale rounded to the model dtype first;
// RMSNorm scales by (1 + w) (the checkpoint stores w - 1 relative to LLaMA's convention), computed
// in float32; the gated MLP uses GELU-tanh (hidden_activation; a legacy hidden_act "gelu" means the
// tanh approximation, as transformers >= 5 reads it); head_dim is explicit (256 when absent) and
// need not equal hidden/heads; embeddings tied unless tie_word_embeddings is false.
#include <cmath>

#include "families/family.h"

namespace excise {
namespace {

DecoderConfig ReadGemma(const ConfigReader& r, const std::string& architecture) {
  DecoderConfig c;
  c.architecture = architecture;
  c.family = "gemma";
  ReadLlamaStyleSizes(r, c, /*defaultHeadDim=*/256);
  c.norm = NormKind::RMSNorm;
  c.normHasBias = false;
  c.normEps = r.getDouble("rms_norm_eps", 1e-6);
  c.normWeightOffset = 1.0;
  c.normWeightInFloat = true;
  c.embedScale = std::sqrt(static_cast<double>(c.dModel));
  if (r.has("hidden_activation")) {
    c.activation = ParseActivation(r, "hidden_activation", "gelu_pytorch_tanh");
  } else {
    c.activation = r.getString("hidden_act", "gelu_pytorch_tanh") == "gelu" ? Activation::GeluTanh
                                                                           : ParseActivation(r, "hidden_act", "gelu_pytorch_tanh");
  }
  c.gatedMlp = true;
  c.qkvLayout = QkvLayout::Separate;
  c.positions = PositionKind::Rotary;
  c.rotaryDims = c.headDim;
  c.ropeTheta = ReadRopeTheta(r, 10000.0);
  c.ropeScaling = ReadRopeScaling(r);
  c.tiedEmbeddings = r.getBool("tie_word_embeddings", true);
  c.qkvBias = c.oBias = r.getBool("attention_bias", false);
  c.slidingWindow.assign(static_cast<size_t>(c.nLayers), 0);
  ReadCommonFields(r, c);
  return c;
}

}  // namespace

const FamilyAdapter& GemmaFamily() {
  using C = DecoderConfig;
  auto d = [](const C& c) { return Dims{c.dModel}; };
  auto qkvBias = [](const C& c) { return c.qkvBias; };
  static const FamilyAdapter f{
      "gemma",
      {"GemmaForCausalLM"},
      {"model.", ""},
      &ReadGemma,
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
          {Role::Ln2W, "{P}layers.{L}.post_attention_layernorm.weight", d},
          {Role::GateW, "{P}layers.{L}.mlp.gate_proj.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcInW, "{P}layers.{L}.mlp.up_proj.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcOutW, "{P}layers.{L}.mlp.down_proj.weight", [](const C& c) { return Dims{c.dModel, c.dMlp}; }},
          {Role::FinalNormW, "{P}norm.weight", d},
          {Role::LmHead, "lm_head.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; },
           [](const C& c) { return !c.tiedEmbeddings; }},
      },
      {{"gemma", "GemmaForCausalLM"}}};
  return f;
}

}  // namespace excise
