// RoBERTa masked LM (RobertaForMaskedLM, the selective-pruning paper's roberta-large).
// Quirks: bidirectional attention (DecoderConfig::causal = false); post-LN blocks
// (x = LN(x + attn(x)); x = LN(x + mlp(x))) with no final norm; positions from the ids, offset by
// the padding index (PositionKind::LearnedPaddingOffset), so max_position_embeddings - pad_token_id
// - 1 positions are usable; token type 0's embedding added to every token and a LayerNorm after the
// embedding sum; the MLM head LayerNorm(gelu(dense(x))) before the decoder, which is tied to the word
// embeddings (lm_head.decoder.weight is stored only when untied) and has its own bias lm_head.bias.
// FF neurons: intermediate.dense's output after the activation (input of output.dense); attention
// neurons: the input of attention.output.dense.
#include "families/family.h"

#include "errors.h"

namespace excise {
namespace {

DecoderConfig ReadRoberta(const ConfigReader& r, const std::string& architecture) {
  // What excise does not implement is refused by name, never run differently from Hugging Face.
  const std::string positionType = r.getString("position_embedding_type", "absolute");
  if (positionType != "absolute") {
    UnsupportedField(r, "position_embedding_type", "is \"" + positionType + "\": only \"absolute\" positions are supported");
  }
  if (r.getBool("is_decoder", false)) UnsupportedField(r, "is_decoder", "is true: excise runs RoBERTa as a bidirectional masked LM only");
  if (r.getBool("add_cross_attention", false)) UnsupportedField(r, "add_cross_attention", "is true: cross-attention is not supported");

  DecoderConfig c;
  c.architecture = architecture;
  c.family = "roberta";
  c.nLayers = RequireLayerCount(r, "num_hidden_layers");
  c.dModel = r.requireInt("hidden_size");
  c.nHeads = r.requireInt("num_attention_heads");
  c.nKvHeads = c.nHeads;
  if (c.nHeads > 0 && c.dModel % c.nHeads != 0) r.fail("hidden_size must be a multiple of num_attention_heads");
  c.headDim = c.nHeads > 0 ? c.dModel / c.nHeads : 0;
  c.dMlp = r.requireInt("intermediate_size");
  c.vocabSize = r.requireInt("vocab_size");
  c.embedDim = c.dModel;
  c.norm = NormKind::LayerNorm;
  c.normEps = r.getDouble("layer_norm_eps", 1e-12);  // RobertaConfig's default (BertConfig's)
  c.activation = ParseActivation(r, "hidden_act", "gelu");
  c.preNorm = false;  // post-LN
  c.finalNorm = false;
  c.causal = false;
  c.qkvLayout = QkvLayout::Separate;
  c.positions = PositionKind::LearnedPaddingOffset;
  c.tiedEmbeddings = r.getBool("tie_word_embeddings", true);
  c.slidingWindow.assign(static_cast<size_t>(std::max<int64_t>(c.nLayers, 0)), 0);
  ReadCommonFields(r, c);
  // Position ids are counted from the padding index (HF create_position_ids_from_input_ids), so it
  // must be known: absent is RobertaConfig's default 1 (<pad>); null (Hugging Face fails on it) and
  // a negative id (HF would count positions from it, not from 1) are refused, never replaced by 1.
  if (const Json* pad = r.root().find("pad_token_id"); pad == nullptr) {
    c.padTokenId = 1;
  } else if (pad->isNull()) {
    UnsupportedField(r, "pad_token_id", "is null: RoBERTa's position ids are counted from the padding index; give the <pad> token's id (1 in RoBERTa's vocabulary)");
  } else if (c.padTokenId < 0) {
    UnsupportedField(r, "pad_token_id", "is " + std::to_string(c.padTokenId) + ": RoBERTa's position ids are counted from the padding index, a token id >= 0");
  }
  const int64_t tableRows = r.getInt("max_position_embeddings", 512);
  // Usable positions: HF's rows run from pad_token_id + 1 to pad_token_id + sequence length.
  c.maxPositions = tableRows - c.padTokenId - 1;
  if (c.maxPositions < 1) {
    r.fail("max_position_embeddings (" + std::to_string(tableRows) + ") must exceed pad_token_id + 1 (" +
           std::to_string(c.padTokenId + 1) + "): RoBERTa's positions start after the padding index");
  }
  c.tokenTypes = r.getInt("type_vocab_size", 1);
  if (c.tokenTypes < 1) r.fail("type_vocab_size must be at least 1 (token type 0 is added to every token)");
  return c;
}

bool Untied(const DecoderConfig& c) { return !c.tiedEmbeddings; }

}  // namespace

const FamilyAdapter& RobertaFamily() {
  using C = DecoderConfig;
  auto d = [](const C& c) { return Dims{c.dModel}; };
  auto dd = [](const C& c) { return Dims{c.dModel, c.dModel}; };
  static const FamilyAdapter f{
      "roberta",
      {"RobertaForMaskedLM"},
      {"roberta.", ""},
      &ReadRoberta,
      {
          {Role::Embed, "{P}embeddings.word_embeddings.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; }},
          {Role::PosEmbed, "{P}embeddings.position_embeddings.weight",
           [](const C& c) { return Dims{c.maxPositions + c.padTokenId + 1, c.dModel}; }},
          {Role::TokenTypeEmbed, "{P}embeddings.token_type_embeddings.weight",
           [](const C& c) { return Dims{c.tokenTypes, c.dModel}; }},
          {Role::EmbedNormW, "{P}embeddings.LayerNorm.weight", d},
          {Role::EmbedNormB, "{P}embeddings.LayerNorm.bias", d},
          {Role::QW, "{P}encoder.layer.{L}.attention.self.query.weight", dd},
          {Role::QB, "{P}encoder.layer.{L}.attention.self.query.bias", d},
          {Role::KW, "{P}encoder.layer.{L}.attention.self.key.weight", dd},
          {Role::KB, "{P}encoder.layer.{L}.attention.self.key.bias", d},
          {Role::VW, "{P}encoder.layer.{L}.attention.self.value.weight", dd},
          {Role::VB, "{P}encoder.layer.{L}.attention.self.value.bias", d},
          {Role::OW, "{P}encoder.layer.{L}.attention.output.dense.weight", dd},
          {Role::OB, "{P}encoder.layer.{L}.attention.output.dense.bias", d},
          {Role::Ln1W, "{P}encoder.layer.{L}.attention.output.LayerNorm.weight", d},
          {Role::Ln1B, "{P}encoder.layer.{L}.attention.output.LayerNorm.bias", d},
          {Role::FcInW, "{P}encoder.layer.{L}.intermediate.dense.weight", [](const C& c) { return Dims{c.dMlp, c.dModel}; }},
          {Role::FcInB, "{P}encoder.layer.{L}.intermediate.dense.bias", [](const C& c) { return Dims{c.dMlp}; }},
          {Role::FcOutW, "{P}encoder.layer.{L}.output.dense.weight", [](const C& c) { return Dims{c.dModel, c.dMlp}; }},
          {Role::FcOutB, "{P}encoder.layer.{L}.output.dense.bias", d},
          {Role::Ln2W, "{P}encoder.layer.{L}.output.LayerNorm.weight", d},
          {Role::Ln2B, "{P}encoder.layer.{L}.output.LayerNorm.bias", d},
          {Role::HeadDenseW, "lm_head.dense.weight", dd},
          {Role::HeadDenseB, "lm_head.dense.bias", d},
          {Role::HeadNormW, "lm_head.layer_norm.weight", d},
          {Role::HeadNormB, "lm_head.layer_norm.bias", d},
          {Role::LmHead, "lm_head.decoder.weight", [](const C& c) { return Dims{c.vocabSize, c.dModel}; }, &Untied},
          {Role::LmHeadB, "lm_head.bias", [](const C& c) { return Dims{c.vocabSize}; }},
      },
      {{"roberta", "RobertaForMaskedLM"}}};
  return f;
}

}  // namespace excise
