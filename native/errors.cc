#include "errors.h"

#include <c10/util/Exception.h>

#include <new>

namespace excise {
namespace {
// Per-process: the addon is loaded once per process in practice; each env stores its own reference
// in instance data so worker_threads stay correct.
struct ErrorClassHolder {
  Napi::FunctionReference ctor;
};

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
  auto* holder = env.GetInstanceData<ErrorClassHolder>();
  if (holder == nullptr) {
    holder = new ErrorClassHolder();
    env.SetInstanceData(holder);
  }
  holder->ctor = Napi::Persistent(info[0].As<Napi::Function>());
}

Napi::Error MakeJsError(Napi::Env env, const ErrorInfo& error) {
  auto* holder = env.GetInstanceData<ErrorClassHolder>();
  if (holder != nullptr && !holder->ctor.IsEmpty()) {
    Napi::Object obj = holder->ctor.New({Napi::String::New(env, error.code), Napi::String::New(env, error.message)});
    return Napi::Error(env, obj);
  }
  Napi::Error e = Napi::Error::New(env, error.message);
  e.Set("code", Napi::String::New(env, error.code));
  return e;
}

}  // namespace excise
