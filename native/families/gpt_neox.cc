// GPT-NeoX / Pythia (GPTNeoXForCausalLM).
// Quirks: query_key_value is one Linear whose output is laid out per head as [q_h | k_h | v_h]
// (interleaved by head, not [all q | all k | all v]); rotary covers only the first
// rotary_pct * head_dim dims of each head; use_parallel_residual adds attention and MLP of the same
// input. Untied embed_out.
#include "families/family.h"

namespace excise {
namespace {

DecoderConfig ReadNeoX(const ConfigReader& r, const std::string& architecture) {
  DecoderConfig c;
  c.architecture = architecture;
  c.family = "gpt_neox";
  c.nLayers = RequireLayerCount(r, "num_hidden_layers");
  c.dModel = r.requireInt("hidden_size");
  c.nHeads = r.requireInt("num_attention_heads");
  c.nKvHeads = c.nHeads;
  if (c.nHeads > 0 && c.dModel % c.nHeads != 0) r.fail("hidden_size must be a multiple of num_attention_heads");
  c.headDim = c.nHeads > 0 ? c.dModel / c.nHeads : 0;
  c.dMlp = r.requireInt("intermediate_size");
  c.vocabSize = r.requireInt("vocab_size");
  c.maxPositions = r.requireInt("max_position_embeddings");
  c.embedDim = c.dModel;
  c.norm = NormKind::LayerNorm;
  c.normEps = r.getDouble("layer_norm_eps", 1e-5);
  c.activation = ParseActivation(r, "hidden_act", "gelu");
  c.qkvLayout = QkvLayout::FusedPerHead;
  c.parallelResidual = r.getBool("use_parallel_residual", true);
  c.positions = PositionKind::Rotary;
  // Older configs say rotary_pct / rotary_emb_base, newer partial_rotary_factor / rope_theta, and the
  // newest nest them in rope_parameters.
  double pct = 1.0;
  double theta = 10000.0;
  if (const Json* v = r.firstOf({"partial_rotary_factor", "rotary_pct"}); v && v->isNumber()) pct = v->asDouble();
  if (const Json* v = r.firstOf({"rope_theta", "rotary_emb_base"}); v && v->isNumber()) theta = v->asDouble();
  if (const Json* p = r.root().find("rope_parameters"); p && p->isObject()) {
    ConfigReader pr(*p, r.file());
    pct = pr.getDouble("partial_rotary_factor", pct);
    theta = pr.getDouble("rope_theta", theta);
  }
  c.rotaryDims = static_cast<int64_t>(static_cast<double>(c.headDim) * pct);  // int() as HF truncates
  c.ropeTheta = theta;
  c.ropeScaling = ReadRopeScaling(r);
  c.tiedEmbeddings = r.getBool("tie_word_embeddings", false);
  c.slidingWindow.assign(static_cast<size_t>(std::max<int64_t>(c.nLayers, 0)), 0);
  ReadCommonFields(r, c);
  // attention_bias (default true) covers query_key_value and dense.
  c.qkvBias = c.oBias = r.getBool("attention_bias", true);
  c.mlpBias = true;
  return c;
}

}  // namespace

const FamilyAdapter& GptNeoXFamily() {
  using C = DecoderConfig;
  auto d = [](const C& c) { return Dims{c.dModel}; };
  static const FamilyAdapter f{
      "gpt_neox",
      {"GPTNeoXForCausalLM"},
      {"gpt_neox.", ""},
      &ReadNeoX,
      {
          {Role::Embed, "{P}embed_in.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; }},
          {Role::Ln1W, "{P}layers.{L}.input_layernorm.weight", d},
          {Role::Ln1B, "{P}layers.{L}.input_layernorm.bias", d},
          {Role::Ln2W, "{P}layers.{L}.post_attention_layernorm.weight", d},
          {Role::Ln2B, "{P}layers.{L}.post_attention_layernorm.bias", d},
          {Role::QkvW, "{P}layers.{L}.attention.query_key_value.weight",
           [](const C& c) { return Dims{3 * c.dModel, c.dModel}; }},
          {Role::QkvB, "{P}layers.{L}.attention.query_key_value.bias", [](const C& c) { return Dims{3 * c.dModel}; },
           [](const C& c) { return c.qkvBias; }},
          {Role::OW, "{P}layers.{L}.attention.dense.weight", [](const C& c) { return Dims{c.dModel, c.dModel}; }},
          {Role::OB, "{P}layers.{L}.attention.dense.bias", d, [](const C& c) { return c.oBias; }},
          {Role::FcInW, "{P}layers.{L}.mlp.dense_h_to_4h.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcInB, "{P}layers.{L}.mlp.dense_h_to_4h.bias", [](const C& c) { return Dims{c.dMlp}; }},
          {Role::FcOutW, "{P}layers.{L}.mlp.dense_4h_to_h.weight", [](const C& c) { return Dims{c.dModel, c.dMlp}; }},
          {Role::FcOutB, "{P}layers.{L}.mlp.dense_4h_to_h.bias", d},
          {Role::FinalNormW, "{P}final_layer_norm.weight", d},
          {Role::FinalNormB, "{P}final_layer_norm.bias", d},
          {Role::LmHead, "embed_out.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; },
           [](const C& c) { return !c.tiedEmbeddings; }},
      },
      {{"gpt_neox", "GPTNeoXForCausalLM"}}};
  return f;
}

}  // namespace excise
