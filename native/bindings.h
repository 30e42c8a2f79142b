// The functions addon.cc registers. Each is defined next to the feature it exposes.
#pragma once
#include <napi.h>

namespace excise {

Napi::Value RuntimeInfoJs(const Napi::CallbackInfo& info);  // runtime_binding.cc

}  // namespace excise
