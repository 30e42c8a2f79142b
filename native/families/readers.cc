// Config readers several family adapters share (declared in families/family.h).
#include "errors.h"
#include "families/family.h"

namespace excise {

void ReadLlamaStyleSizes(const ConfigReader& r, DecoderConfig& c, int64_t defaultHeadDim) {
  c.nLayers = RequireLayerCount(r, "num_hidden_layers");
  c.dModel = r.requireInt("hidden_size");
  c.nHeads = r.requireInt("num_attention_heads");
  c.nKvHeads = r.getInt("num_key_value_heads", c.nHeads);
  if (r.has("head_dim")) {
    c.headDim = r.requireInt("head_dim");
  } else if (defaultHeadDim > 0) {
    c.headDim = defaultHeadDim;
  } else {
    if (c.nHeads > 0 && c.dModel % c.nHeads != 0) r.fail("hidden_size must be a multiple of num_attention_heads");
    c.headDim = c.nHeads > 0 ? c.dModel / c.nHeads : 0;
  }
  c.dMlp = r.requireInt("intermediate_size");
  c.vocabSize = r.requireInt("vocab_size");
  c.maxPositions = r.getInt("max_position_embeddings", 2048);
  c.embedDim = c.dModel;
}

double ReadRopeTheta(const ConfigReader& r, double fallback) {
  double theta = r.getDouble("rope_theta", fallback);
  if (const Json* p = r.root().find("rope_parameters"); p && p->isObject()) {
    theta = ConfigReader(*p, r.file()).getDouble("rope_theta", theta);
  }
  return theta;
}

std::vector<bool> ReadLayerTypes(const ConfigReader& r, DecoderConfig& c, int64_t window,
                                 const std::function<bool(int64_t layer)>& defaultSliding) {
  const size_t n = static_cast<size_t>(std::max<int64_t>(c.nLayers, 0));
  if (window < 0) r.fail("sliding_window must be positive or null");
  std::vector<bool> sliding(n, false);
  const Json* types = r.root().find("layer_types");
  if (types != nullptr && !types->isNull()) {
    if (!types->isArray() || types->asArray().size() != n) r.fail("layer_types must list one type per layer");
    for (size_t i = 0; i < n; ++i) {
      const Json& t = types->asArray()[i];
      if (!t.isString() || (t.asString() != "sliding_attention" && t.asString() != "full_attention")) {
        throw Error(code::kUnsupportedConfig, r.file() + ": layer_types[" + std::to_string(i) +
                                                  "] must be \"sliding_attention\" or \"full_attention\"");
      }
      sliding[i] = t.asString() == "sliding_attention";
    }
  } else {
    for (size_t i = 0; i < n; ++i) sliding[i] = defaultSliding(static_cast<int64_t>(i));
  }
  c.slidingWindow.assign(n, 0);
  for (size_t i = 0; i < n; ++i) c.slidingWindow[i] = sliding[i] ? window : 0;
  return sliding;
}

double ReadOptionalNumber(const ConfigReader& r, const char* key, double absentDefault) {
  const Json* v = r.root().find(key);
  if (v == nullptr) return absentDefault;
  if (v->isNull()) return 0;
  if (!v->isNumber() || !(v->asDouble() > 0)) r.fail(std::string("field \"") + key + "\" must be a positive number or null");
  return v->asDouble();
}

void UnsupportedField(const ConfigReader& r, const std::string& field, const std::string& why) {
  throw Error(code::kUnsupportedConfig, r.file() + ": field \"" + field + "\" " + why);
}

}  // namespace excise
