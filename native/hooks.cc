#include "hooks.h"

#include <cctype>

namespace excise {

std::string HookName(const HookPoint& p) {
  return "blocks." + std::to_string(p.layer) + (p.site == HookSite::MlpPreOut ? ".mlp.pre_out" : ".attn.pre_out");
}

bool ParseHookName(const std::string& name, int64_t nLayers, HookPoint* out) {
  const std::string prefix = "blocks.";
  if (name.rfind(prefix, 0) != 0) return false;
  size_t i = prefix.size();
  int64_t layer = 0;
  size_t digits = 0;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && digits < 7) {
    layer = layer * 10 + (name[i] - '0');
    ++i;
    ++digits;
  }
  if (digits == 0 || (digits > 1 && name[prefix.size()] == '0')) return false;
  const std::string rest = name.substr(i);
  HookSite site;
  if (rest == ".mlp.pre_out") {
    site = HookSite::MlpPreOut;
  } else if (rest == ".attn.pre_out") {
    site = HookSite::AttnPreOut;
  } else {
    return false;
  }
  if (layer >= nLayers) return false;
  *out = {layer, site};
  return true;
}

}  // namespace excise
