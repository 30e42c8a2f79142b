// A family adapter turns one Hugging Face architecture into the generic decoder: it reads
// config.json into a DecoderConfig and declares, as a table, which checkpoint tensor plays which
// role and what shape it must have. Shapes are asserted on load (model_loader.cc).
#pragma once
#include <string>
#include <vector>

#include "config.h"

namespace excise {

// What a checkpoint tensor is to the decoder.
enum class Role {
  // Model-level.
  Embed, PosEmbed, ProjIn, ProjOut, FinalNormW, FinalNormB, LmHead,
  // Per layer ({L} in the name).
  Ln1W, Ln1B, Ln2W, Ln2B,
  QkvW, QkvB,            // fused q/k/v (QkvLayout::FusedConcat / FusedPerHead)
  QW, QB, KW, KB, VW, VB,
  OW, OB,                // attention output projection: its input is blocks.{L}.attn.pre_out
  FcInW, FcInB,          // MLP input projection (non-gated fc1, or the gated MLP's up projection)
  GateW, GateB,          // gated MLP's gate projection
  FcOutW, FcOutB,        // MLP output projection: its input is blocks.{L}.mlp.pre_out
};
bool IsLayerRole(Role r);
const char* RoleName(Role r);

using Dims = std::vector<int64_t>;

struct WeightSpec {
  Role role;
  // Checkpoint name; "{P}" is the base-model prefix (e.g. "model."), "{L}" the layer index.
  const char* name;
  // Expected shape as stored in the checkpoint.
  Dims (*shape)(const DecoderConfig&);
  // Whether the tensor exists for this config (biases, tied heads, ...); nullptr = always.
  bool (*present)(const DecoderConfig&) = nullptr;
  // Stored [in, out] rather than nn.Linear's [out, in] (GPT-2's Conv1D).
  bool inputMajor = false;
};

struct FamilyAdapter {
  const char* family;
  std::vector<std::string> architectures;
  // Candidate base-model prefixes, tried in order against the checkpoint: HF checkpoints are saved
  // with the prefix (model., transformer., ...) but older hub uploads often without it.
  std::vector<std::string> prefixes;
  DecoderConfig (*readConfig)(const ConfigReader& reader, const std::string& architecture);
  std::vector<WeightSpec> weights;
};

// A layer-count field, in 1..65536 (config.cc): read before any per-layer list is sized by it.
int64_t RequireLayerCount(const ConfigReader& r, const std::string& key);

// Registry (families/registry.cc).
const FamilyAdapter* FindFamily(const std::string& architecture);
std::vector<std::string> SupportedArchitectures();

// Each family's adapter (one file each).
const FamilyAdapter& Gpt2Family();
const FamilyAdapter& OptFamily();
const FamilyAdapter& GptNeoXFamily();
const FamilyAdapter& LlamaFamily();  // LLaMA, Mistral, Qwen2

}  // namespace excise
