#include "js_tensors.h"

#include <cstring>
#include <string>

#include "errors.h"

namespace excise {

at::Tensor Int32Arg(const Napi::Value& v, int64_t batch, int64_t seq, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Error(code::kInvalidArgument, std::string(what) + ": expected an Int32Array");
  }
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  if (static_cast<int64_t>(a.ElementLength()) != batch * seq) {
    throw Error(code::kInvalidArgument, std::string(what) + ": length " + std::to_string(a.ElementLength()) +
                                            " does not match shape [" + std::to_string(batch) + ", " +
                                            std::to_string(seq) + "]");
  }
  return at::from_blob(a.Data(), {batch, seq}, at::kInt).clone();
}

at::Tensor TokenIdsArg(const Napi::Value& v, int64_t batch, int64_t seq, int64_t vocab, const char* what) {
  at::Tensor ids = Int32Arg(v, batch, seq, what);
  const int32_t* p = ids.data_ptr<int32_t>();
  for (int64_t i = 0; i < batch * seq; ++i) {
    if (p[i] < 0 || p[i] >= vocab) {
      throw Error(code::kTokenOutOfRange, std::string(what) + ": token id " + std::to_string(p[i]) + " at [" +
                                              std::to_string(i / seq) + ", " + std::to_string(i % seq) +
                                              "] is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  return ids.to(at::kLong);
}

at::Tensor OptionalMaskArg(const Napi::Value& v, int64_t batch, int64_t seq) {
  return v.IsTypedArray() ? Int32Arg(v, batch, seq, "attentionMask") : at::Tensor();
}

Napi::Float32Array ToFloat32Array(Napi::Env env, const at::Tensor& t) {
  at::Tensor c = t.to(at::kFloat).to(at::kCPU).contiguous();
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(c.numel()));
  if (c.numel() > 0) std::memcpy(out.Data(), c.data_ptr<float>(), static_cast<size_t>(c.numel()) * sizeof(float));
  return out;
}

Napi::Float32Array Float32ArrayOwning(Napi::Env env, at::Tensor t) {
  t = t.to(at::kFloat).to(at::kCPU).contiguous();
  const size_t n = static_cast<size_t>(t.numel());
  const size_t bytes = n * sizeof(float);
  if (n == 0) return Napi::Float32Array::New(env, 0);
  // The buffer's finalizer (JS thread, when the buffer is collected) drops the tensor.
  auto* owner = new at::Tensor(std::move(t));
  napi_value buffer;
  napi_status status = napi_create_external_arraybuffer(
      env, owner->data_ptr<float>(), bytes,
      [](napi_env e, void*, void* hint) {
        auto* held = static_cast<at::Tensor*>(hint);
        const int64_t freed = static_cast<int64_t>(held->nbytes());
        delete held;
        int64_t ignored;
        napi_adjust_external_memory(e, -freed, &ignored);
      },
      owner, &buffer);
  if (status != napi_ok) {
    // External buffers are not allowed here (V8 sandbox): copy instead.
    Napi::Float32Array copy = ToFloat32Array(env, *owner);
    delete owner;
    return copy;
  }
  // Tell V8 what the buffer holds, so it collects it as promptly as one it allocated itself.
  int64_t ignored;
  napi_adjust_external_memory(env, static_cast<int64_t>(bytes), &ignored);
  return Napi::Float32Array::New(env, n, Napi::ArrayBuffer(env, buffer), 0);
}

Napi::Float64Array ToFloat64Array(Napi::Env env, const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).to(at::kCPU).contiguous();
  Napi::Float64Array out = Napi::Float64Array::New(env, static_cast<size_t>(c.numel()));
  if (c.numel() > 0) std::memcpy(out.Data(), c.data_ptr<double>(), static_cast<size_t>(c.numel()) * sizeof(double));
  return out;
}

Napi::Array ShapeArray(Napi::Env env, at::IntArrayRef sizes) {
  Napi::Array a = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(sizes[i])));
  return a;
}

}  // namespace excise
