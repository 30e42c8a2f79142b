// OPT (OPTForCausalLM).
// Quirks: learned positions are derived from the attention mask (cumsum - 1) and looked up with an
// offset of 2; do_layer_norm_before=false (OPT-350m) is post-LN with no final norm; when
// word_embed_proj_dim != hidden_size, project_in/project_out map between the two widths.
#include "families/family.h"

#include "errors.h"

namespace excise {
namespace {

DecoderConfig ReadOpt(const ConfigReader& r, const std::string& architecture) {
  DecoderConfig c;
  c.architecture = architecture;
  c.family = "opt";
  c.nLayers = RequireLayerCount(r, "num_hidden_layers");
  c.dModel = r.requireInt("hidden_size");
  c.nHeads = r.requireInt("num_attention_heads");
  c.nKvHeads = c.nHeads;
  if (c.nHeads > 0 && c.dModel % c.nHeads != 0) r.fail("hidden_size must be a multiple of num_attention_heads");
  c.headDim = c.nHeads > 0 ? c.dModel / c.nHeads : 0;
  c.dMlp = r.requireInt("ffn_dim");
  c.vocabSize = r.requireInt("vocab_size");
  c.maxPositions = r.requireInt("max_position_embeddings");
  c.embedDim = r.getInt("word_embed_proj_dim", c.dModel);
  c.norm = NormKind::LayerNorm;
  c.normEps = 1e-5;  // OPT hard-codes nn.LayerNorm's default
  c.normAffine = r.getBool("layer_norm_elementwise_affine", true);
  c.normHasBias = c.normAffine;
  c.activation = ParseActivation(r, "activation_function", "relu");
  c.preNorm = r.getBool("do_layer_norm_before", true);
  c.finalNorm = c.preNorm && !r.getBool("_remove_final_layer_norm", false);
  c.qkvLayout = QkvLayout::Separate;
  c.positions = PositionKind::LearnedOptOffset;
  c.tiedEmbeddings = r.getBool("tie_word_embeddings", true);
  if (!r.getBool("enable_bias", true)) {
    throw Error(code::kUnsupportedConfig, r.file() + ": OPT with enable_bias=false is not supported");
  }
  c.slidingWindow.assign(static_cast<size_t>(std::max<int64_t>(c.nLayers, 0)), 0);
  ReadCommonFields(r, c);
  return c;
}

bool Projected(const DecoderConfig& c) { return c.embedDim != c.dModel; }
bool Affine(const DecoderConfig& c) { return c.normAffine; }
bool FinalAffine(const DecoderConfig& c) { return c.finalNorm && c.normAffine; }
bool Untied(const DecoderConfig& c) { return !c.tiedEmbeddings; }

}  // namespace

const FamilyAdapter& OptFamily() {
  using C = DecoderConfig;
  auto d = [](const C& c) { return Dims{c.dModel}; };
  auto dd = [](const C& c) { return Dims{c.dModel, c.dModel}; };
  static const FamilyAdapter f{
      "opt",
      {"OPTForCausalLM"},
      {"model.", ""},
      &ReadOpt,
      {
          {Role::Embed, "{P}decoder.embed_tokens.weight", [](const C& c) { return Dims{c.vocabSize, c.embedDim}; }},
          {Role::PosEmbed, "{P}decoder.embed_positions.weight",
           [](const C& c) { return Dims{c.maxPositions + 2, c.dModel}; }},
          {Role::ProjIn, "{P}decoder.project_in.weight", [](const C& c) { return Dims{c.dModel, c.embedDim}; },
           &Projected},
          {Role::ProjOut, "{P}decoder.project_out.weight", [](const C& c) { return Dims{c.embedDim, c.dModel}; },
           &Projected},
          {Role::Ln1W, "{P}decoder.layers.{L}.self_attn_layer_norm.weight", d, &Affine},
          {Role::Ln1B, "{P}decoder.layers.{L}.self_attn_layer_norm.bias", d, &Affine},
          {Role::QW, "{P}decoder.layers.{L}.self_attn.q_proj.weight", dd},
          {Role::QB, "{P}decoder.layers.{L}.self_attn.q_proj.bias", d},
          {Role::KW, "{P}decoder.layers.{L}.self_attn.k_proj.weight", dd},
          {Role::KB, "{P}decoder.layers.{L}.self_attn.k_proj.bias", d},
          {Role::VW, "{P}decoder.layers.{L}.self_attn.v_proj.weight", dd},
          {Role::VB, "{P}decoder.layers.{L}.self_attn.v_proj.bias", d},
          {Role::OW, "{P}decoder.layers.{L}.self_attn.out_proj.weight", dd},
          {Role::OB, "{P}decoder.layers.{L}.self_attn.out_proj.bias", d},
          {Role::Ln2W, "{P}decoder.layers.{L}.final_layer_norm.weight", d, &Affine},
          {Role::Ln2B, "{P}decoder.layers.{L}.final_layer_norm.bias", d, &Affine},
          {Role::FcInW, "{P}decoder.layers.{L}.fc1.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcInB, "{P}decoder.layers.{L}.fc1.bias", [](const C& c) { return Dims{c.dMlp}; }},
          {Role::FcOutW, "{P}decoder.layers.{L}.fc2.weight", [](const C& c) { return Dims{c.dModel, c.dMlp}; }},
          {Role::FcOutB, "{P}decoder.layers.{L}.fc2.bias", d},
          {Role::FinalNormW, "{P}decoder.final_layer_norm.weight", d, &FinalAffine},
          {Role::FinalNormB, "{P}decoder.final_layer_norm.bias", d, &FinalAffine},
          {Role::LmHead, "lm_head.weight", [](const C& c) { return Dims{c.vocabSize, c.embedDim}; }, &Untied},
      },
      {{"opt", "OPTForCausalLM"}}};
  return f;
}

}  // namespace excise
