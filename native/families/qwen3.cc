// Qwen3 (Qwen3ForCausalLM): LLaMA-style (pre-RMSNorm, full rotate_half rotary, gated SiLU MLP, GQA).
// Quirk: q_norm / k_norm, RMSNorms over each head's head_dim applied to queries and keys before the
// rotary (QkNorm::PerHead); attention_bias covers q/k/v/o; head_dim defaults to 128 (not
// hidden/heads); sliding windows as Qwen2 (layer_types, else use_sliding_window + max_window_layers).
#include "families/family.h"

namespace excise {
namespace {

DecoderConfig ReadQwen3(const ConfigReader& r, const std::string& architecture) {
  DecoderConfig c;
  c.architecture = architecture;
  c.family = "qwen3";
  ReadLlamaStyleSizes(r, c, /*defaultHeadDim=*/128);
  c.norm = NormKind::RMSNorm;
  c.normHasBias = false;
  c.normEps = r.getDouble("rms_norm_eps", 1e-6);
  c.activation = ParseActivation(r, "hidden_act", "silu");
  c.gatedMlp = true;
  c.qkvLayout = QkvLayout::Separate;
  c.qkNorm = QkNorm::PerHead;
  c.positions = PositionKind::Rotary;
  c.rotaryDims = c.headDim;
  c.ropeTheta = ReadRopeTheta(r, 10000.0);
  c.ropeScaling = ReadRopeScaling(r);
  c.tiedEmbeddings = r.getBool("tie_word_embeddings", false);
  c.qkvBias = c.oBias = r.getBool("attention_bias", false);
  const int64_t window = r.getBool("use_sliding_window", false) ? r.getInt("sliding_window", 0) : 0;
  const int64_t maxWindowLayers = r.getInt("max_window_layers", 28);
  ReadLayerTypes(r, c, window, [&](int64_t layer) { return layer >= maxWindowLayers; });
  ReadCommonFields(r, c);
  return c;
}

}  // namespace

const FamilyAdapter& Qwen3Family() {
  using C = DecoderConfig;
  auto d = [](const C& c) { return Dims{c.dModel}; };
  auto hd = [](const C& c) { return Dims{c.headDim}; };
  auto qkvBias = [](const C& c) { return c.qkvBias; };
  static const FamilyAdapter f{
      "qwen3",
      {"Qwen3ForCausalLM"},
      {"model.", ""},
      &ReadQwen3,
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
          {Role::Ln2W, "{P}layers.{L}.post_attention_layernorm.weight", d},
          {Role::GateW, "{P}layers.{L}.mlp.gate_proj.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcInW, "{P}layers.{L}.mlp.up_proj.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcOutW, "{P}layers.{L}.mlp.down_proj.weight", [](const C& c) { return Dims{c.dModel, c.dMlp}; }},
          {Role::FinalNormW, "{P}norm.weight", d},
          {Role::LmHead, "lm_head.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; },
           [](const C& c) { return !c.tiedEmbeddings; }},
      },
      {{"qwen3", "Qwen3ForCausalLM"}}};
  return f;
}

}  // namespace excise
