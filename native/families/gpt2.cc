// GPT-2 (GPT2LMHeadModel).
// Quirk: every linear is a Conv1D whose weight is stored [in, out] (transposed w.r.t. nn.Linear);
// c_attn packs [q | k | v] along its output. Learned absolute positions, pre-LN, tied LM head.
#include "families/family.h"

namespace excise {
namespace {

DecoderConfig ReadGpt2(const ConfigReader& r, const std::string& architecture) {
  DecoderConfig c;
  c.architecture = architecture;
  c.family = "gpt2";
  c.nLayers = RequireLayerCount(r, "n_layer");
  c.dModel = r.requireInt("n_embd");
  c.nHeads = r.requireInt("n_head");
  c.nKvHeads = c.nHeads;
  if (c.nHeads > 0 && c.dModel % c.nHeads != 0) r.fail("n_embd must be a multiple of n_head");
  c.headDim = c.nHeads > 0 ? c.dModel / c.nHeads : 0;
  c.dMlp = r.getInt("n_inner", 4 * c.dModel);  // n_inner: null means 4 * n_embd
  c.vocabSize = r.requireInt("vocab_size");
  c.maxPositions = r.getInt("n_positions", r.getInt("n_ctx", 1024));
  c.embedDim = c.dModel;
  c.norm = NormKind::LayerNorm;
  c.normEps = r.getDouble("layer_norm_epsilon", 1e-5);
  c.activation = ParseActivation(r, "activation_function", "gelu_new");
  c.qkvLayout = QkvLayout::FusedConcat;
  c.positions = PositionKind::Learned;
  // scale_attn_weights=false means raw q.k scores.
  c.attnScale = r.getBool("scale_attn_weights", true) ? 0.0 : 1.0;
  c.scaleByInverseLayerIdx = r.getBool("scale_attn_by_inverse_layer_idx", false);
  c.tiedEmbeddings = r.getBool("tie_word_embeddings", true);
  c.slidingWindow.assign(static_cast<size_t>(std::max<int64_t>(c.nLayers, 0)), 0);
  ReadCommonFields(r, c);
  return c;
}

bool Untied(const DecoderConfig& c) { return !c.tiedEmbeddings; }

}  // namespace

const FamilyAdapter& Gpt2Family() {
  using C = DecoderConfig;
  static const FamilyAdapter f{
      "gpt2",
      {"GPT2LMHeadModel"},
      {"transformer.", ""},
      &ReadGpt2,
      {
          {Role::Embed, "{P}wte.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; }},
          {Role::PosEmbed, "{P}wpe.weight", [](const C& c) { return Dims{c.maxPositions, c.dModel}; }},
          {Role::Ln1W, "{P}h.{L}.ln_1.weight", [](const C& c) { return Dims{c.dModel}; }},
          {Role::Ln1B, "{P}h.{L}.ln_1.bias", [](const C& c) { return Dims{c.dModel}; }},
          {Role::QkvW, "{P}h.{L}.attn.c_attn.weight", [](const C& c) { return Dims{c.dModel, 3 * c.dModel}; },
           nullptr, true},
          {Role::QkvB, "{P}h.{L}.attn.c_attn.bias", [](const C& c) { return Dims{3 * c.dModel}; }},
          {Role::OW, "{P}h.{L}.attn.c_proj.weight", [](const C& c) { return Dims{c.dModel, c.dModel}; }, nullptr,
           true},
          {Role::OB, "{P}h.{L}.attn.c_proj.bias", [](const C& c) { return Dims{c.dModel}; }},
          {Role::Ln2W, "{P}h.{L}.ln_2.weight", [](const C& c) { return Dims{c.dModel}; }},
          {Role::Ln2B, "{P}h.{L}.ln_2.bias", [](const C& c) { return Dims{c.dModel}; }},
          {Role::FcInW, "{P}h.{L}.mlp.c_fc.weight", [](const C& c) { return Dims{c.dModel, c.dMlp}; }, nullptr,
           true},
          {Role::FcInB, "{P}h.{L}.mlp.c_fc.bias", [](const C& c) { return Dims{c.dMlp}; }},
          {Role::FcOutW, "{P}h.{L}.mlp.c_proj.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }, nullptr,
           true},
          {Role::FcOutB, "{P}h.{L}.mlp.c_proj.bias", [](const C& c) { return Dims{c.dModel}; }},
          {Role::FinalNormW, "{P}ln_f.weight", [](const C& c) { return Dims{c.dModel}; }},
          {Role::FinalNormB, "{P}ln_f.bias", [](const C& c) { return Dims{c.dModel}; }},
          {Role::LmHead, "lm_head.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; }, &Untied},
      },
      {{"gpt2", "GPT2LMHeadModel"}}};
  return f;
}

}  // namespace excise
