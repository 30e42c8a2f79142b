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
    o.Set("tf32", r.tf32);
    return o;
  });
}

// setTf32(enabled: boolean) (TS validates)
Napi::Value SetTf32Js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsBoolean()) throw Error(code::kInvalidArgument, "setTf32: expected a boolean");
    SetTf32(info[0].As<Napi::Boolean>().Value());
    return env.Undefined();
  });
}

}  // namespace excise
