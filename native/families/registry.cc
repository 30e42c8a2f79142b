#include "families/family.h"

#include <string_view>

namespace excise {

// Every family, one line each: the name of the function (in families/<family>.cc) that returns its
// adapter. Adding a family is one new file plus one line here.
#define EXCISE_FAMILIES(X) \
  X(Gpt2Family)            \
  X(OptFamily)             \
  X(GptNeoXFamily)         \
  X(LlamaFamily) /* LLaMA, Mistral, Qwen2 */ \
  X(Qwen3Family)            \
  X(GemmaFamily)            \
  X(Gemma2Family)           \
  X(Gemma3Family)           \
  X(Phi3Family)             \
  X(Olmo2Family)            \
  X(GptJFamily)            \
  X(RobertaFamily) /* masked LM */

#define EXCISE_DECLARE_FAMILY(fn) const FamilyAdapter& fn();
EXCISE_FAMILIES(EXCISE_DECLARE_FAMILY)
#undef EXCISE_DECLARE_FAMILY

namespace {
const std::vector<const FamilyAdapter*>& AllFamilies() {
#define EXCISE_FAMILY_ENTRY(fn) &fn(),
  static const std::vector<const FamilyAdapter*> all = {EXCISE_FAMILIES(EXCISE_FAMILY_ENTRY)};
#undef EXCISE_FAMILY_ENTRY
  return all;
}
}  // namespace

const FamilyAdapter* FindFamily(const std::string& architecture) {
  for (const FamilyAdapter* f : AllFamilies()) {
    for (const std::string& a : f->architectures) {
      if (a == architecture) return f;
    }
  }
  return nullptr;
}

std::string ArchitectureForModelType(const std::string& modelType) {
  for (const FamilyAdapter* f : AllFamilies()) {
    for (const auto& [type, architecture] : f->modelTypes) {
      if (type == modelType) return architecture;
    }
  }
  return "";
}

std::vector<std::string> SupportedArchitectures() {
  std::vector<std::string> out;
  for (const FamilyAdapter* f : AllFamilies()) out.insert(out.end(), f->architectures.begin(), f->architectures.end());
  return out;
}

bool IsLayerRole(Role r) {
  static const bool isLayer[] = {
#define EXCISE_ROLE_IS_LAYER(role, scope, name, bind) std::string_view(#scope) == "Layer",
      EXCISE_WEIGHT_ROLES(EXCISE_ROLE_IS_LAYER)
#undef EXCISE_ROLE_IS_LAYER
  };
  return isLayer[static_cast<size_t>(r)];
}

const char* RoleName(Role r) {
  static const char* const names[] = {
#define EXCISE_ROLE_NAME(role, scope, name, bind) name,
      EXCISE_WEIGHT_ROLES(EXCISE_ROLE_NAME)
#undef EXCISE_ROLE_NAME
  };
  return names[static_cast<size_t>(r)];
}

}  // namespace excise
