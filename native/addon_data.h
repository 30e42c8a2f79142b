// Per-environment state of the addon (one per Node.js environment, so worker_threads work):
// the JS classes the native side creates instances of.
#pragma once
#include <napi.h>

namespace excise {

struct AddonData {
  Napi::FunctionReference errorClass;  // lib/errors.ts ExciseError, set by setErrorClass()
  Napi::FunctionReference modelClass;  // NativeModel
};

inline AddonData& GetAddonData(Napi::Env env) {
  auto* data = env.GetInstanceData<AddonData>();
  if (data == nullptr) {
    data = new AddonData();
    env.SetInstanceData(data);  // deleted by node-addon-api at environment teardown
  }
  return *data;
}

}  // namespace excise
