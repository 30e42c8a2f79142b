// GPT-J (GPTJForCausalLM): attention and MLP run in parallel on one ln_1 output and are added to the
// residual together (parallelResidual + parallelSharedNorm); rotary is interleaved (rotate_every_two
// on pairs (2i, 2i + 1), not rotate_half) on the first rotary_dim dims of each head, base 10000
// (rotary_dim null is refused: HF would rotate by the whole model width); q/k/v/out projections have
// no bias, fc_in/fc_out do, and lm_head has a bias. LayerNorm, GELU-tanh (gelu_new) by default.
#include "families/family.h"

namespace excise {
namespace {

DecoderConfig ReadGptJ(const ConfigReader& r, const std::string& architecture) {
  DecoderConfig c;
  c.architecture = architecture;
  c.family = "gptj";
  c.nLayers = RequireLayerCount(r, "n_layer");
  c.dModel = r.requireInt("n_embd");
  c.nHeads = r.requireInt("n_head");
  c.nKvHeads = c.nHeads;
  if (c.nHeads > 0 && c.dModel % c.nHeads != 0) r.fail("n_embd must be a multiple of n_head");
  c.headDim = c.nHeads > 0 ? c.dModel / c.nHeads : 0;
  c.dMlp = r.getInt("n_inner", 4 * c.dModel);  // n_inner: null means 4 * n_embd
  c.vocabSize = r.requireInt("vocab_size");
  c.maxPositions = r.getInt("n_positions", 2048);
  c.embedDim = c.dModel;
  c.norm = NormKind::LayerNorm;
  c.normEps = r.getDouble("layer_norm_epsilon", 1e-5);
  c.activation = ParseActivation(r, "activation_function", "gelu_new");
  c.parallelResidual = true;
  c.parallelSharedNorm = true;
  c.qkvLayout = QkvLayout::Separate;
  c.positions = PositionKind::Rotary;
  c.rotaryInterleaved = true;
  if (!r.has("rotary_dim")) UnsupportedField(r, "rotary_dim", "is null: only rotary on part of each head is supported");
  c.rotaryDims = r.requireInt("rotary_dim");
  c.ropeTheta = 10000.0;
  c.tiedEmbeddings = r.getBool("tie_word_embeddings", false);
  c.mlpBias = true;
  c.slidingWindow.assign(static_cast<size_t>(c.nLayers), 0);
  ReadCommonFields(r, c);
  return c;
}

}  // namespace

const FamilyAdapter& GptJFamily() {
  using C = DecoderConfig;
  auto d = [](const C& c) { return Dims{c.dModel}; };
  auto dd = [](const C& c) { return Dims{c.dModel, c.dModel}; };
  static const FamilyAdapter f{
      "gptj",
      {"GPTJForCausalLM"},
      {"transformer.", ""},
      &ReadGptJ,
      {
          {Role::Embed, "{P}wte.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; }},
          {Role::Ln1W, "{P}h.{L}.ln_1.weight", d},
          {Role::Ln1B, "{P}h.{L}.ln_1.bias", d},
          {Role::QW, "{P}h.{L}.attn.q_proj.weight", dd},
          {Role::KW, "{P}h.{L}.attn.k_proj.weight", dd},
          {Role::VW, "{P}h.{L}.attn.v_proj.weight", dd},
          {Role::OW, "{P}h.{L}.attn.out_proj.weight", dd},
          {Role::FcInW, "{P}h.{L}.mlp.fc_in.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcInB, "{P}h.{L}.mlp.fc_in.bias", [](const C& c) { return Dims{c.dMlp}; }},
          {Role::FcOutW, "{P}h.{L}.mlp.fc_out.weight", [](const C& c) { return Dims{c.dModel, c.dMlp}; }},
          {Role::FcOutB, "{P}h.{L}.mlp.fc_out.bias", d},
          {Role::FinalNormW, "{P}ln_f.weight", d},
          {Role::FinalNormB, "{P}ln_f.bias", d},
          {Role::LmHead, "lm_head.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; },
           [](const C& c) { return !c.tiedEmbeddings; }},
          {Role::LmHeadB, "lm_head.bias", [](const C& c) { return Dims{c.vocabSize}; }},
      },
      {{"gptj", "GPTJForCausalLM"}}};
  return f;
}

}  // namespace excise
