// The generic decoder's configuration: every architecture is read into this one struct by its
// family adapter (families/), so the decoder never looks at a family's own config keys.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "json.h"

namespace excise {

enum class NormKind { LayerNorm, RMSNorm };
enum class Activation { Relu, Gelu /* erf */, GeluTanh, Silu, QuickGelu };
enum class PositionKind {
  Learned,           // GPT-2: wpe[position]
  LearnedOptOffset,  // OPT: positions from the attention mask (cumsum - 1), table row = position + 2
  Rotary,            // LLaMA, NeoX, ...: RoPE on the first rotaryDims of each q/k head, rotate_half convention
  // RoBERTa: from the ids, as Hugging Face's create_position_ids_from_input_ids: a real token's row is
  // padTokenId + (real tokens up to and including it), padding's row is padTokenId.
  LearnedPaddingOffset,
};
// How the query/key/value projections are stored.
enum class QkvLayout {
  Separate,      // q_proj, k_proj, v_proj
  FusedConcat,   // one projection whose output is [q | k | v] (GPT-2 c_attn)
  FusedPerHead,  // one projection whose output is per head [q_h | k_h | v_h] (GPT-NeoX query_key_value)
};
enum class RopeScalingKind { None, Linear, Llama3 };
// RMSNorm of queries and keys before rotary.
enum class QkNorm {
  None,
  PerHead,          // over each head's headDim (Qwen3, Gemma 3)
  WholeProjection,  // over the whole q / k projection output, before the split into heads (OLMo 2)
};

struct RopeScaling {
  RopeScalingKind kind = RopeScalingKind::None;
  double factor = 1.0;
  double lowFreqFactor = 1.0;   // llama3
  double highFreqFactor = 4.0;  // llama3
  int64_t originalMaxPositions = 8192;  // llama3
};

struct DecoderConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM"
  std::string family;        // adapter name, e.g. "llama"
  std::string configDtype;   // "float32" | "float16" | "bfloat16" | "" (config.json's torch_dtype / dtype)

  // Sizes.
  int64_t nLayers = 0;
  int64_t dModel = 0;     // residual stream width
  int64_t dMlp = 0;       // MLP hidden width (the FF neurons)
  int64_t nHeads = 0;
  int64_t nKvHeads = 0;   // == nHeads without GQA/MQA
  int64_t headDim = 0;
  int64_t vocabSize = 0;
  int64_t maxPositions = 0;
  int64_t embedDim = 0;   // token embedding width (OPT word_embed_proj_dim; == dModel elsewhere)
  int64_t tokenTypes = 0; // RoBERTa type_vocab_size (rows of the token type embedding); 0 elsewhere

  // Derived sizes.
  int64_t attnDim() const { return nHeads * headDim; }  // attention neurons per layer
  int64_t kvDim() const { return nKvHeads * headDim; }
  int64_t groupSize() const { return nHeads / nKvHeads; }  // query heads per kv head

  // Block structure.
  NormKind norm = NormKind::LayerNorm;
  double normEps = 1e-5;
  bool normHasBias = true;       // LayerNorm bias (RMSNorm has none)
  bool normAffine = true;        // OPT layer_norm_elementwise_affine
  Activation activation = Activation::Gelu;
  bool gatedMlp = false;         // act(gate(x)) * up(x)
  bool preNorm = true;           // false: OPT post-LN, x = LN(x + f(x))
  bool parallelResidual = false; // NeoX: x + attn(ln1(x)) + mlp(ln2(x))
  bool finalNorm = true;
  bool tiedEmbeddings = false;
  // false: bidirectional attention (masked LMs, RoBERTa): no causal mask, padding keys always masked,
  // no generation / KV cache / next-token scoring.
  bool causal = true;
  // Norm placement around each sublayer f (attention, MLP) in a pre-norm block:
  //   x = x + postNorm(f(preNorm(x))), each norm present only when its flag says so.
  bool sublayerPreNorm = true;    // ln1 / ln2 on the sublayer input (false: OLMo 2)
  bool sublayerPostNorm = false;  // postAttnNorm / postMlpNorm on the sublayer output (Gemma 2/3, OLMo 2)
  bool parallelSharedNorm = false;  // with parallelResidual: one norm (ln1) feeds attention and MLP (GPT-J)
  double normWeightOffset = 0;    // RMSNorm scale is (offset + w): Gemma stores w - 1 and uses 1 + w
  bool normWeightInFloat = false; // RMSNorm multiplies its weight in float32 before the cast back (Gemma, OLMo 2)
  double embedScale = 0;          // token embeddings times this, rounded to the model dtype first (Gemma: sqrt(d)); 0 = none
  double finalSoftcap = 0;        // logits = cap * tanh(logits / cap) (Gemma 2); 0 = none
  // Biases of the linear layers (read by the families whose bias presence depends on the config).
  bool qkvBias = false;
  bool oBias = false;
  bool mlpBias = false;

  // Attention.
  QkvLayout qkvLayout = QkvLayout::Separate;
  double attnScale = 0;               // multiplier on q.k; 0 means 1/sqrt(headDim)
  bool scaleByInverseLayerIdx = false;  // GPT-2 option: scores also divided by (layer + 1)
  std::vector<int64_t> slidingWindow;   // per layer; 0 = full causal attention
  QkNorm qkNorm = QkNorm::None;
  double attnSoftcap = 0;               // scores = cap * tanh(scores / cap) before the mask (Gemma 2); 0 = none

  // Positions.
  PositionKind positions = PositionKind::Rotary;
  int64_t rotaryDims = 0;  // per head, even, <= headDim
  double ropeTheta = 10000.0;
  RopeScaling ropeScaling;
  bool rotaryInterleaved = false;  // GPT-J: rotate pairs (2i, 2i + 1) instead of the two halves
  // Gemma 3: the layers marked here use RoPE base ropeThetaLocal without scaling; the others ropeTheta
  // with ropeScaling. Empty = every layer uses ropeTheta.
  std::vector<bool> localRope;
  double ropeThetaLocal = 10000.0;

  // Token ids from the config (-1 when absent).
  int64_t bosTokenId = -1;
  std::vector<int64_t> eosTokenIds;
  int64_t padTokenId = -1;
};

// Reads and parses a JSON file; ERR_CONFIG_MISSING / ERR_CONFIG_INVALID name the file.
Json ReadJsonFile(const std::string& path, const char* missingCode);

// Typed access to config.json fields with messages that name the file and key.
class ConfigReader {
 public:
  ConfigReader(const Json& root, std::string file) : root_(root), file_(std::move(file)) {}
  const Json& root() const { return root_; }
  bool has(const std::string& key) const;  // present and not null
  int64_t requireInt(const std::string& key) const;
  int64_t getInt(const std::string& key, int64_t fallback) const;  // absent or null -> fallback
  double getDouble(const std::string& key, double fallback) const;
  bool getBool(const std::string& key, bool fallback) const;
  std::string getString(const std::string& key, const std::string& fallback) const;
  // The first of several alternative keys that is present (older and newer transformers spellings).
  const Json* firstOf(std::initializer_list<const char*> keys) const;
  [[noreturn]] void fail(const std::string& what) const;  // ERR_CONFIG_INVALID naming the file
  const std::string& file() const { return file_; }

 private:
  const Json& root_;
  std::string file_;
};

// Fields most families share: ids, dtype, rope scaling. Fills cfg from the reader.
void ReadCommonFields(const ConfigReader& r, DecoderConfig& cfg);
RopeScaling ReadRopeScaling(const ConfigReader& r);
Activation ParseActivation(const ConfigReader& r, const std::string& key, const std::string& fallback);

// Checks sizes for consistency (positive, heads divide, rotary dims even ...). ERR_CONFIG_INVALID.
void ValidateConfig(const DecoderConfig& cfg, const std::string& file);

}  // namespace excise
