// Phi-3 (Phi3ForCausalLM): LLaMA-style (pre-RMSNorm, gated SiLU MLP, GQA) with fused checkpoints:
// qkv_proj is one Linear whose output is [q | k | v] (H, KV, KV heads: QkvLayout::FusedConcat) and
// gate_up_proj one whose output is [gate | up], bound as two row views (Role::GateUpW) so pruning
// edits reach the stored tensor; partial_rotary_factor rotates only the first int(head_dim * factor)
// dims of each head (Phi-4-mini: 0.75); sliding_window, when set, applies to every layer.
// rope_scaling "longrope" / "su" (the 128k-context models) is refused with ERR_UNSUPPORTED_CONFIG.
#include "families/family.h"

namespace excise {
namespace {

DecoderConfig ReadPhi3(const ConfigReader& r, const std::string& architecture) {
  DecoderConfig c;
  c.architecture = architecture;
  c.family = "phi3";
  ReadLlamaStyleSizes(r, c);
  c.maxPositions = r.getInt("max_position_embeddings", 4096);
  c.norm = NormKind::RMSNorm;
  c.normHasBias = false;
  c.normEps = r.getDouble("rms_norm_eps", 1e-5);
  c.activation = ParseActivation(r, "hidden_act", "silu");
  c.gatedMlp = true;
  c.qkvLayout = QkvLayout::FusedConcat;
  c.positions = PositionKind::Rotary;
  double factor = r.getDouble("partial_rotary_factor", 1.0);
  if (const Json* p = r.root().find("rope_parameters"); p && p->isObject()) {
    factor = ConfigReader(*p, r.file()).getDouble("partial_rotary_factor", factor);
  }
  if (!(factor > 0 && factor <= 1)) r.fail("field \"partial_rotary_factor\" must be in (0, 1]");
  c.rotaryDims = static_cast<int64_t>(static_cast<double>(c.headDim) * factor);  // int() as HF truncates
  c.ropeTheta = ReadRopeTheta(r, 10000.0);
  c.ropeScaling = ReadRopeScaling(r);
  c.tiedEmbeddings = r.getBool("tie_word_embeddings", false);
  c.slidingWindow.assign(static_cast<size_t>(c.nLayers), r.getInt("sliding_window", 0));
  for (int64_t w : c.slidingWindow) {
    if (w < 0) r.fail("sliding_window must be positive or null");
  }
  ReadCommonFields(r, c);
  return c;
}

}  // namespace

const FamilyAdapter& Phi3Family() {
  using C = DecoderConfig;
  auto d = [](const C& c) { return Dims{c.dModel}; };
  static const FamilyAdapter f{
      "phi3",
      {"Phi3ForCausalLM"},
      {"model.", ""},
      &ReadPhi3,
      {
          {Role::Embed, "{P}embed_tokens.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; }},
          {Role::Ln1W, "{P}layers.{L}.input_layernorm.weight", d},
          {Role::QkvW, "{P}layers.{L}.self_attn.qkv_proj.weight",
           [](const C& c) { return Dims{c.attnDim() + 2 * c.kvDim(), c.dModel}; }},
          {Role::OW, "{P}layers.{L}.self_attn.o_proj.weight", [](const C& c) { return Dims{c.dModel, c.attnDim()}; }},
          {Role::Ln2W, "{P}layers.{L}.post_attention_layernorm.weight", d},
          {Role::GateUpW, "{P}layers.{L}.mlp.gate_up_proj.weight", [](const C& c) { return Dims{2 * c.dMlp, c.dModel}; }},
          {Role::FcOutW, "{P}layers.{L}.mlp.down_proj.weight", [](const C& c) { return Dims{c.dModel, c.dMlp}; }},
          {Role::FinalNormW, "{P}norm.weight", d},
          {Role::LmHead, "lm_head.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; },
           [](const C& c) { return !c.tiedEmbeddings; }},
      },
      {{"phi3", "Phi3ForCausalLM"}}};
  return f;
}

}  // namespace excise
