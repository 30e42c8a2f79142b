// LLaMA-style decoders: LLaMA, Mistral, Qwen2. Pre-RMSNorm, rotary on the full head (rotate_half
// convention), gated SiLU MLP, optional GQA/MQA (nKvHeads < nHeads).
// Quirks: Qwen2 hard-codes biases on q/k/v (not o); Mistral applies its sliding window to every
// layer; Qwen2 only to the layers that layer_types (or use_sliding_window + max_window_layers) say.
#include "errors.h"
#include "families/family.h"

namespace excise {
namespace {

DecoderConfig ReadLlama(const ConfigReader& r, const std::string& architecture) {
  DecoderConfig c;
  c.architecture = architecture;
  c.family = architecture == "MistralForCausalLM" ? "mistral" : architecture == "Qwen2ForCausalLM" ? "qwen2" : "llama";
  // head_dim may be present, absent or null; absent/null means hidden_size / heads.
  ReadLlamaStyleSizes(r, c);
  c.norm = NormKind::RMSNorm;
  c.normHasBias = false;
  c.normEps = r.getDouble("rms_norm_eps", 1e-6);
  c.activation = ParseActivation(r, "hidden_act", "silu");
  c.gatedMlp = true;
  c.qkvLayout = QkvLayout::Separate;
  c.positions = PositionKind::Rotary;
  c.rotaryDims = c.headDim;
  c.ropeTheta = ReadRopeTheta(r, 10000.0);
  c.ropeScaling = ReadRopeScaling(r);
  c.tiedEmbeddings = r.getBool("tie_word_embeddings", false);
  if (c.family == "qwen2") {
    c.qkvBias = true;
    c.oBias = false;
    c.mlpBias = false;
  } else {
    c.qkvBias = c.oBias = r.getBool("attention_bias", false);
    c.mlpBias = r.getBool("mlp_bias", false);
  }

  const size_t n = static_cast<size_t>(std::max<int64_t>(c.nLayers, 0));
  c.slidingWindow.assign(n, 0);
  if (c.family == "mistral") {
    const int64_t w = r.getInt("sliding_window", 0);
    c.slidingWindow.assign(n, w);
  } else if (c.family == "qwen2") {
    const int64_t w = r.getBool("use_sliding_window", false) ? r.getInt("sliding_window", 0) : 0;
    const Json* types = r.root().find("layer_types");
    const int64_t maxWindowLayers = r.getInt("max_window_layers", c.nLayers);
    for (size_t i = 0; i < n; ++i) {
      bool sliding = static_cast<int64_t>(i) >= maxWindowLayers;
      if (types != nullptr && types->isArray()) {
        if (types->asArray().size() != n) r.fail("layer_types must list one type per layer");
        const Json& t = types->asArray()[i];
        if (!t.isString()) r.fail("layer_types entries must be strings");
        sliding = t.asString() == "sliding_attention";
      }
      c.slidingWindow[i] = sliding ? w : 0;
    }
  }
  for (int64_t w : c.slidingWindow) {
    if (w < 0) r.fail("sliding_window must be positive or null");
  }
  ReadCommonFields(r, c);
  return c;
}

bool QkvBias(const DecoderConfig& c) { return c.qkvBias; }
bool OBias(const DecoderConfig& c) { return c.oBias; }
bool MlpBias(const DecoderConfig& c) { return c.mlpBias; }
bool Untied(const DecoderConfig& c) { return !c.tiedEmbeddings; }

}  // namespace

const FamilyAdapter& LlamaFamily() {
  using C = DecoderConfig;
  auto d = [](const C& c) { return Dims{c.dModel}; };
  static const FamilyAdapter f{
      "llama",
      {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"},
      {"model.", ""},
      &ReadLlama,
      {
          {Role::Embed, "{P}embed_tokens.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; }},
          {Role::Ln1W, "{P}layers.{L}.input_layernorm.weight", d},
          {Role::QW, "{P}layers.{L}.self_attn.q_proj.weight", [](const C& c) { return Dims{c.attnDim(), c.dModel}; }},
          {Role::QB, "{P}layers.{L}.self_attn.q_proj.bias", [](const C& c) { return Dims{c.attnDim()}; }, &QkvBias},
          {Role::KW, "{P}layers.{L}.self_attn.k_proj.weight", [](const C& c) { return Dims{c.kvDim(), c.dModel}; }},
          {Role::KB, "{P}layers.{L}.self_attn.k_proj.bias", [](const C& c) { return Dims{c.kvDim()}; }, &QkvBias},
          {Role::VW, "{P}layers.{L}.self_attn.v_proj.weight", [](const C& c) { return Dims{c.kvDim(), c.dModel}; }},
          {Role::VB, "{P}layers.{L}.self_attn.v_proj.bias", [](const C& c) { return Dims{c.kvDim()}; }, &QkvBias},
          {Role::OW, "{P}layers.{L}.self_attn.o_proj.weight", [](const C& c) { return Dims{c.dModel, c.attnDim()}; }},
          {Role::OB, "{P}layers.{L}.self_attn.o_proj.bias", d, &OBias},
          {Role::Ln2W, "{P}layers.{L}.post_attention_layernorm.weight", d},
          {Role::GateW, "{P}layers.{L}.mlp.gate_proj.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::GateB, "{P}layers.{L}.mlp.gate_proj.bias", [](const C& c) { return Dims{c.dMlp}; }, &MlpBias},
          {Role::FcInW, "{P}layers.{L}.mlp.up_proj.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcInB, "{P}layers.{L}.mlp.up_proj.bias", [](const C& c) { return Dims{c.dMlp}; }, &MlpBias},
          {Role::FcOutW, "{P}layers.{L}.mlp.down_proj.weight", [](const C& c) { return Dims{c.dModel, c.dMlp}; }},
          {Role::FcOutB, "{P}layers.{L}.mlp.down_proj.bias", d, &MlpBias},
          {Role::FinalNormW, "{P}norm.weight", d},
          {Role::LmHead, "lm_head.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; }, &Untied},
      },
      {{"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}}};
  return f;
}

}  // namespace excise
