// Registration only: every binding lives in its own .h/.cc pair.
#include <napi.h>

#include "bindings.h"
#include "errors.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorClass", Napi::Function::New(env, excise::SetErrorClass, "setErrorClass"));
  exports.Set("runtimeInfo", Napi::Function::New(env, excise::RuntimeInfoJs, "runtimeInfo"));
  return exports;
}

}  // namespace

NODE_API_MODULE(excise, Init)
