#include "bindings.h"
#include "errors.h"
#include "runtime.h"

namespace excise {

Napi::Value RuntimeInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    RuntimeInfo r = GetRuntimeInfo();
    Napi::Object o = Napi::Object::New(env);
    o.Set("torchVersion", r.torchVersion);
    o.Set("cudaAvailable", r.cudaAvailable);
    o.Set("cudaDeviceCount", r.cudaDeviceCount);
    o.Set("cudaBuild", r.cudaBuild);
    o.Set("cxxAbi", r.cxxAbi);
    return o;
  });
}

}  // namespace excise
