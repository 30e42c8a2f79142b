#include "config.h"

#include <cmath>

#include "errors.h"
#include "files.h"

namespace excise {

// Far above any real model's: the largest have a few hundred layers, widths and vocabularies
// below 2^21, and config.json files of a few kilobytes.
constexpr int64_t kMaxLayers = 1 << 16;
constexpr int64_t kMaxDimension = (int64_t{1} << 31) - 1;  // token ids and widths fit int32
constexpr uint64_t kMaxConfigBytes = 16u << 20;

Json ReadJsonFile(const std::string& path, const char* missingCode) {
  const std::string text = ReadRegularFile(path, kMaxConfigBytes, {missingCode, code::kConfigInvalid});
  try {
    return Json::Parse(text);
  } catch (const std::exception& e) {
    throw Error(code::kConfigInvalid, path + ": not valid JSON (" + e.what() + ")");
  }
}

bool ConfigReader::has(const std::string& key) const {
  const Json* v = root_.find(key);
  return v != nullptr && !v->isNull();
}

void ConfigReader::fail(const std::string& what) const { throw Error(code::kConfigInvalid, file_ + ": " + what); }

int64_t ConfigReader::requireInt(const std::string& key) const {
  const Json* v = root_.find(key);
  if (v == nullptr || v->isNull()) fail("missing required field \"" + key + "\"");
  if (!v->isInteger()) fail("field \"" + key + "\" must be an integer");
  return v->asInt();
}

int64_t RequireLayerCount(const ConfigReader& r, const std::string& key) {
  const int64_t n = r.requireInt(key);
  // Checked here, before anything is sized by it (a per-layer list is built while reading).
  if (n < 1 || n > kMaxLayers) {
    r.fail("field \"" + key + "\" must be a layer count in 1.." + std::to_string(kMaxLayers) + ", got " + std::to_string(n));
  }
  return n;
}

int64_t ConfigReader::getInt(const std::string& key, int64_t fallback) const {
  const Json* v = root_.find(key);
  if (v == nullptr || v->isNull()) return fallback;
  if (!v->isInteger()) fail("field \"" + key + "\" must be an integer");
  return v->asInt();
}

double ConfigReader::getDouble(const std::string& key, double fallback) const {
  const Json* v = root_.find(key);
  if (v == nullptr || v->isNull()) return fallback;
  if (!v->isNumber()) fail("field \"" + key + "\" must be a number");
  return v->asDouble();
}

bool ConfigReader::getBool(const std::string& key, bool fallback) const {
  const Json* v = root_.find(key);
  if (v == nullptr || v->isNull()) return fallback;
  if (!v->isBool()) fail("field \"" + key + "\" must be true or false");
  return v->asBool();
}

std::string ConfigReader::getString(const std::string& key, const std::string& fallback) const {
  const Json* v = root_.find(key);
  if (v == nullptr || v->isNull()) return fallback;
  if (!v->isString()) fail("field \"" + key + "\" must be a string");
  return v->asString();
}

const Json* ConfigReader::firstOf(std::initializer_list<const char*> keys) const {
  for (const char* k : keys) {
    const Json* v = root_.find(k);
    if (v != nullptr && !v->isNull()) return v;
  }
  return nullptr;
}

namespace {
int64_t OptionalTokenId(const ConfigReader& r, const char* key) {
  const Json* v = r.root().find(key);
  if (v == nullptr || v->isNull()) return -1;
  if (v->isInteger()) return v->asInt();
  if (v->isArray() && !v->asArray().empty() && v->asArray()[0].isInteger()) return v->asArray()[0].asInt();
  r.fail(std::string("field \"") + key + "\" must be a token id");
}
}  // namespace

RopeScaling ReadRopeScaling(const ConfigReader& r) {
  RopeScaling s;
  // transformers >= 4.5x may write "rope_parameters" instead of "rope_scaling" (+ rope_theta inside).
  const Json* v = r.firstOf({"rope_scaling", "rope_parameters"});
  if (v == nullptr) return s;
  if (!v->isObject()) r.fail("field \"rope_scaling\" must be an object or null");
  ConfigReader sr(*v, r.file());
  std::string type = sr.getString("rope_type", sr.getString("type", "default"));
  if (type == "default") return s;
  if (type == "linear") {
    s.kind = RopeScalingKind::Linear;
    s.factor = sr.getDouble("factor", 1.0);
  } else if (type == "llama3") {
    s.kind = RopeScalingKind::Llama3;
    s.factor = sr.getDouble("factor", 8.0);
    s.lowFreqFactor = sr.getDouble("low_freq_factor", 1.0);
    s.highFreqFactor = sr.getDouble("high_freq_factor", 4.0);
    s.originalMaxPositions = sr.getInt("original_max_position_embeddings", 8192);
  } else {
    throw Error(code::kUnsupportedConfig, r.file() + ": field \"rope_scaling\" has rope type \"" + type +
                                              "\", which is not supported (supported: default, linear, llama3)");
  }
  if (!(s.factor > 0)) r.fail("rope scaling factor must be positive");
  return s;
}

Activation ParseActivation(const ConfigReader& r, const std::string& key, const std::string& fallback) {
  std::string a = r.getString(key, fallback);
  if (a == "relu") return Activation::Relu;
  if (a == "gelu") return Activation::Gelu;
  if (a == "gelu_new" || a == "gelu_pytorch_tanh" || a == "gelu_fast") return Activation::GeluTanh;
  if (a == "silu" || a == "swish") return Activation::Silu;
  if (a == "quick_gelu") return Activation::QuickGelu;
  throw Error(code::kUnsupportedConfig, r.file() + ": activation \"" + a + "\" (field \"" + key +
                                            "\") is not supported (supported: relu, gelu, gelu_new, "
                                            "gelu_pytorch_tanh, gelu_fast, silu, swish, quick_gelu)");
}

void ReadCommonFields(const ConfigReader& r, DecoderConfig& cfg) {
  // transformers < 4.56 writes "torch_dtype", newer versions "dtype".
  if (const Json* d = r.firstOf({"dtype", "torch_dtype"}); d != nullptr && d->isString()) {
    const std::string& s = d->asString();
    if (s == "float32" || s == "float16" || s == "bfloat16") cfg.configDtype = s;
  }
  cfg.bosTokenId = OptionalTokenId(r, "bos_token_id");
  cfg.padTokenId = OptionalTokenId(r, "pad_token_id");
  if (const Json* e = r.root().find("eos_token_id"); e != nullptr && !e->isNull()) {
    if (e->isInteger()) {
      cfg.eosTokenIds.push_back(e->asInt());
    } else if (e->isArray()) {
      for (const Json& x : e->asArray()) {
        if (!x.isInteger()) r.fail("field \"eos_token_id\" must be a token id or a list of them");
        cfg.eosTokenIds.push_back(x.asInt());
      }
    } else {
      r.fail("field \"eos_token_id\" must be a token id or a list of them");
    }
  }
}

void ValidateConfig(const DecoderConfig& c, const std::string& file) {
  auto fail = [&](const std::string& what) { throw Error(code::kConfigInvalid, file + ": " + what); };
  auto positive = [&](int64_t v, const char* name) {
    if (v <= 0) fail(std::string(name) + " must be positive, got " + std::to_string(v));
  };
  positive(c.nLayers, "number of layers");
  positive(c.dModel, "hidden size");
  positive(c.dMlp, "MLP size");
  positive(c.nHeads, "number of attention heads");
  positive(c.nKvHeads, "number of key/value heads");
  positive(c.headDim, "head dimension");
  positive(c.vocabSize, "vocabulary size");
  positive(c.maxPositions, "maximum positions");
  positive(c.embedDim, "embedding size");
  // Sizes beyond these are no model's: they could only overflow shapes or exhaust memory.
  auto atMost = [&](int64_t v, int64_t max, const char* name) {
    if (v > max) fail(std::string(name) + " " + std::to_string(v) + " is larger than excise supports (" + std::to_string(max) + ")");
  };
  atMost(c.nLayers, kMaxLayers, "number of layers");
  for (auto [v, name] : {std::pair{c.dModel, "hidden size"}, {c.dMlp, "MLP size"}, {c.nHeads, "number of attention heads"},
                         {c.nKvHeads, "number of key/value heads"}, {c.headDim, "head dimension"}, {c.vocabSize, "vocabulary size"},
                         {c.maxPositions, "maximum positions"}, {c.embedDim, "embedding size"}}) {
    atMost(v, kMaxDimension, name);
  }
  atMost(c.attnDim(), kMaxDimension, "attention width (heads x head dimension)");  // each factor < 2^31: no overflow
  if (c.nHeads % c.nKvHeads != 0) {
    fail("number of attention heads (" + std::to_string(c.nHeads) + ") must be a multiple of key/value heads (" +
         std::to_string(c.nKvHeads) + ")");
  }
  if (c.positions == PositionKind::Rotary) {
    if (c.rotaryDims <= 0 || c.rotaryDims > c.headDim || c.rotaryDims % 2 != 0) {
      fail("rotary dimensions (" + std::to_string(c.rotaryDims) + ") must be even and in 1.." +
           std::to_string(c.headDim));
    }
    if (!(c.ropeTheta > 0)) fail("rope_theta must be positive");
  }
  if (!(c.normEps > 0) || !std::isfinite(c.normEps)) fail("norm epsilon must be positive");
  if (static_cast<int64_t>(c.slidingWindow.size()) != c.nLayers) fail("sliding window list does not match layers");
  if (!c.localRope.empty() && static_cast<int64_t>(c.localRope.size()) != c.nLayers) fail("local RoPE list does not match layers");
  if (c.positions == PositionKind::Rotary && !c.localRope.empty() && !(c.ropeThetaLocal > 0)) fail("rope_local_base_freq must be positive");
  if (c.qkNorm == QkNorm::WholeProjection && c.qkvLayout != QkvLayout::Separate) fail("whole-projection q/k norms need separate q/k/v projections");
  if (c.attnSoftcap < 0 || c.finalSoftcap < 0 || c.embedScale < 0) fail("soft-capping and embedding scales must be positive");
}

}  // namespace excise
