// The functions addon.cc registers. Each is defined next to the feature it exposes.
#pragma once
#include <napi.h>

namespace excise {

Napi::Value RuntimeInfoJs(const Napi::CallbackInfo& info);  // runtime_binding.cc
Napi::Value SetTf32Js(const Napi::CallbackInfo& info);       // runtime_binding.cc
Napi::Value ReadSafetensorsJs(const Napi::CallbackInfo& info);   // safetensors_binding.cc
Napi::Value WriteSafetensorsJs(const Napi::CallbackInfo& info);  // safetensors_binding.cc
Napi::Value DistInitJs(const Napi::CallbackInfo& info);          // distributed_binding.cc
Napi::Value DistAllReduceSumJs(const Napi::CallbackInfo& info);  // distributed_binding.cc
Napi::Value DistCallJs(const Napi::CallbackInfo& info);          // distributed_binding.cc
Napi::Value DistPeerFailureJs(const Napi::CallbackInfo& info);   // distributed_binding.cc
Napi::Value StopModelThreadsForExitJs(const Napi::CallbackInfo& info);  // worker.cc
// engine_binding.cc: the decode engine (decode_engine.h) of a model.
Napi::Value EngineCreateJs(const Napi::CallbackInfo& info);
Napi::Value EngineStepJs(const Napi::CallbackInfo& info);
Napi::Value EngineCancelJs(const Napi::CallbackInfo& info);
Napi::Value EngineResetJs(const Napi::CallbackInfo& info);

}  // namespace excise
