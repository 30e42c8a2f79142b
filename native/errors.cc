#include "errors.h"

#include "addon_data.h"

#include <c10/util/Exception.h>

#include <new>

namespace excise {
namespace {
std::string FirstLine(const std::string& s) {
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}
}  // namespace

ErrorInfo CurrentExceptionInfo() {
  try {
    throw;
  } catch (const Error& e) {
    return {e.code(), e.message()};
  } catch (const c10::OutOfMemoryError& e) {
    return {code::kOutOfMemory, "out of device memory: " + FirstLine(e.what_without_backtrace())};
  } catch (const c10::Error& e) {
    return {code::kTorch, "LibTorch: " + FirstLine(e.what_without_backtrace())};
  } catch (const std::bad_alloc&) {
    return {code::kOutOfMemory, "out of host memory"};
  } catch (const std::exception& e) {
    return {code::kInternal, e.what()};
  } catch (...) {
    return {code::kInternal, "unknown native exception"};
  }
}

void SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    throw Napi::TypeError::New(env, "setErrorClass expects a constructor");
  }
  GetAddonData(env).errorClass = Napi::Persistent(info[0].As<Napi::Function>());
}

Napi::Error MakeJsError(Napi::Env env, const ErrorInfo& error) {
  AddonData& data = GetAddonData(env);
  if (!data.errorClass.IsEmpty()) {
    Napi::Object obj = data.errorClass.New({Napi::String::New(env, error.code), Napi::String::New(env, error.message)});
    return Napi::Error(env, obj);
  }
  Napi::Error e = Napi::Error::New(env, error.message);
  e.Set("code", Napi::String::New(env, error.code));
  return e;
}

}  // namespace excise
