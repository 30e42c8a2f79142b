// Registration only: every binding lives in its own .h/.cc pair.
#include <napi.h>

#include "bindings.h"
#include "errors.h"
#include "model_binding.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorClass", Napi::Function::New(env, excise::SetErrorClass, "setErrorClass"));
  exports.Set("runtimeInfo", Napi::Function::New(env, excise::RuntimeInfoJs, "runtimeInfo"));
  exports.Set("setTf32", Napi::Function::New(env, excise::SetTf32Js, "setTf32"));
  exports.Set("readSafetensors", Napi::Function::New(env, excise::ReadSafetensorsJs, "readSafetensors"));
  exports.Set("writeSafetensors", Napi::Function::New(env, excise::WriteSafetensorsJs, "writeSafetensors"));
  // The model class is not exported: only loadModel / createRandomModel construct it.
  excise::ModelWrap::Define(env);
  exports.Set("stopModelThreadsForExit", Napi::Function::New(env, excise::StopModelThreadsForExitJs, "stopModelThreadsForExit"));
  exports.Set("loadModel", Napi::Function::New(env, excise::LoadModelJs, "loadModel"));
  exports.Set("createRandomModel", Napi::Function::New(env, excise::CreateRandomModelJs, "createRandomModel"));
  exports.Set("engineCreate", Napi::Function::New(env, excise::EngineCreateJs, "engineCreate"));
  exports.Set("engineStep", Napi::Function::New(env, excise::EngineStepJs, "engineStep"));
  exports.Set("engineCancel", Napi::Function::New(env, excise::EngineCancelJs, "engineCancel"));
  exports.Set("engineReset", Napi::Function::New(env, excise::EngineResetJs, "engineReset"));
  exports.Set("distInit", Napi::Function::New(env, excise::DistInitJs, "distInit"));
  exports.Set("distAllReduceSum", Napi::Function::New(env, excise::DistAllReduceSumJs, "distAllReduceSum"));
  exports.Set("distCall", Napi::Function::New(env, excise::DistCallJs, "distCall"));
  exports.Set("distPeerFailure", Napi::Function::New(env, excise::DistPeerFailureJs, "distPeerFailure"));
  return exports;
}

}  // namespace

NODE_API_MODULE(excise, Init)
