// Opaque handles that native code gives to JS (a statistics session, a trainer, the token that lets
// native code construct a model object). Each is an External carrying an N-API type tag, so a
// handle of the wrong kind, a closed one or a forged one is refused with ERR_INVALID_ARGUMENT
// instead of being cast blindly (which crashes the process).
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "errors.h"

namespace excise {

namespace tags {
// Random 128-bit values; each kind of handle has its own.
inline constexpr napi_type_tag kModelConstruction = {0x6c1f0a5e2b9d4c37ULL, 0x9a8e7d6c5b4a3928ULL};
inline constexpr napi_type_tag kStatsSession = {0x3e5d7c9b1a2f4e6dULL, 0x8c7b6a5948372615ULL};
inline constexpr napi_type_tag kTrainer = {0x52a4c6e8f0b2d4f6ULL, 0x1b3d5f7a9c2e4061ULL};
inline constexpr napi_type_tag kDecodeEngine = {0x7d3b1f5a9e2c4a68ULL, 0x2f4e6a8c0b1d3f57ULL};
}  // namespace tags

// A new tagged External owning a shared_ptr<T> (freed when JS collects the handle).
template <typename T>
Napi::External<std::shared_ptr<T>> NewHandle(Napi::Env env, std::shared_ptr<T> value, const napi_type_tag& tag) {
  auto ext = Napi::External<std::shared_ptr<T>>::New(env, new std::shared_ptr<T>(std::move(value)),
                                                     [](Napi::Env, std::shared_ptr<T>* p) { delete p; });
  ext.TypeTag(&tag);
  return ext;
}

// The shared_ptr inside a handle of this kind; ERR_INVALID_ARGUMENT for anything else. The
// shared_ptr may be empty (a closed handle): callers say what that means.
template <typename T>
std::shared_ptr<T>& HandleArg(const Napi::Value& v, const napi_type_tag& tag, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::External<std::shared_ptr<T>>>().CheckTypeTag(&tag)) {
    throw Error(code::kInvalidArgument, std::string("expected ") + what);
  }
  return *v.As<Napi::External<std::shared_ptr<T>>>().Data();
}

}  // namespace excise
