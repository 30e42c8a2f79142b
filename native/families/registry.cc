#include "families/family.h"

namespace excise {

namespace {
const std::vector<const FamilyAdapter*>& AllFamilies() {
  static const std::vector<const FamilyAdapter*> all = {&Gpt2Family(), &OptFamily(), &GptNeoXFamily(),
                                                        &LlamaFamily()};
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

std::vector<std::string> SupportedArchitectures() {
  std::vector<std::string> out;
  for (const FamilyAdapter* f : AllFamilies()) out.insert(out.end(), f->architectures.begin(), f->architectures.end());
  return out;
}

bool IsLayerRole(Role r) { return r >= Role::Ln1W; }

const char* RoleName(Role r) {
  switch (r) {
    case Role::Embed: return "token embedding";
    case Role::PosEmbed: return "position embedding";
    case Role::ProjIn: return "input projection";
    case Role::ProjOut: return "output projection";
    case Role::FinalNormW: return "final norm weight";
    case Role::FinalNormB: return "final norm bias";
    case Role::LmHead: return "LM head";
    case Role::Ln1W: return "attention norm weight";
    case Role::Ln1B: return "attention norm bias";
    case Role::Ln2W: return "MLP norm weight";
    case Role::Ln2B: return "MLP norm bias";
    case Role::QkvW: return "fused QKV weight";
    case Role::QkvB: return "fused QKV bias";
    case Role::QW: return "query weight";
    case Role::QB: return "query bias";
    case Role::KW: return "key weight";
    case Role::KB: return "key bias";
    case Role::VW: return "value weight";
    case Role::VB: return "value bias";
    case Role::OW: return "attention output weight";
    case Role::OB: return "attention output bias";
    case Role::FcInW: return "MLP input weight";
    case Role::FcInB: return "MLP input bias";
    case Role::GateW: return "MLP gate weight";
    case Role::GateB: return "MLP gate bias";
    case Role::FcOutW: return "MLP output weight";
    case Role::FcOutB: return "MLP output bias";
  }
  return "?";
}

}  // namespace excise
