// Typed errors that cross into JavaScript as the project's own ExciseError class (lib/errors.ts),
// each with a stable `code`. Native code throws excise::Error; the N-API boundary converts it.
#pragma once
#include <napi.h>

#include <exception>
#include <string>

namespace excise {

// Stable error codes. Keep in sync with ErrorCode in lib/errors.ts.
namespace code {
inline constexpr const char* kInvalidArgument = "ERR_INVALID_ARGUMENT";
inline constexpr const char* kModelNotFound = "ERR_MODEL_NOT_FOUND";
inline constexpr const char* kConfigMissing = "ERR_CONFIG_MISSING";
inline constexpr const char* kConfigInvalid = "ERR_CONFIG_INVALID";
inline constexpr const char* kUnsupportedArchitecture = "ERR_UNSUPPORTED_ARCHITECTURE";
inline constexpr const char* kUnsupportedConfig = "ERR_UNSUPPORTED_CONFIG";
// A next-token operation (generation, KV cache, continuation scoring, training) on a masked LM.
inline constexpr const char* kNotCausalLm = "ERR_NOT_CAUSAL_LM";
inline constexpr const char* kWeightsMissing = "ERR_WEIGHTS_MISSING";
inline constexpr const char* kSafetensorsInvalid = "ERR_SAFETENSORS_INVALID";
inline constexpr const char* kTensorMissing = "ERR_TENSOR_MISSING";
inline constexpr const char* kTensorShape = "ERR_TENSOR_SHAPE";
inline constexpr const char* kTokenOutOfRange = "ERR_TOKEN_OUT_OF_RANGE";
inline constexpr const char* kInvalidDevice = "ERR_INVALID_DEVICE";
inline constexpr const char* kDeviceUnavailable = "ERR_DEVICE_UNAVAILABLE";
inline constexpr const char* kInvalidDtype = "ERR_INVALID_DTYPE";
inline constexpr const char* kModelDisposed = "ERR_MODEL_DISPOSED";
inline constexpr const char* kIo = "ERR_IO";
inline constexpr const char* kOutOfMemory = "ERR_OUT_OF_MEMORY";
inline constexpr const char* kTorch = "ERR_TORCH";
inline constexpr const char* kInternal = "ERR_INTERNAL";
}  // namespace code

class Error : public std::exception {
 public:
  Error(std::string code, std::string message) : code_(std::move(code)), message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }
  const std::string& code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  std::string code_;
  std::string message_;
};

// A plain, copyable description of a failure, safe to carry from a worker thread to the JS thread.
struct ErrorInfo {
  std::string code;
  std::string message;
};

// Classifies any exception thrown by native code (excise::Error, c10::Error, bad_alloc, ...).
// Call only inside a catch block.
ErrorInfo CurrentExceptionInfo();

// Registers the JS class used for errors (called once at init from lib/native.ts).
void SetErrorClass(const Napi::CallbackInfo& info);

// Builds an ExciseError (or a plain Error with .code if none is registered yet).
Napi::Error MakeJsError(Napi::Env env, const ErrorInfo& error);

// Runs fn; any native exception is rethrown as a typed JS exception. For synchronous bindings.
template <typename Fn>
auto Guard(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw MakeJsError(env, CurrentExceptionInfo());
  }
}

}  // namespace excise
