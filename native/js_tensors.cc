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
