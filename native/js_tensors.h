// Tensors to and from JS typed arrays, shared by the bindings. Nothing JS owns is referenced after
// the call returns; results are copied out, except Float32ArrayOwning's, which JS then owns.
#pragma once
#include <ATen/ATen.h>
#include <napi.h>

namespace excise {

// An Int32Array of batch*seq values as an int32 [batch, seq] CPU tensor; `what` names the argument.
at::Tensor Int32Arg(const Napi::Value& v, int64_t batch, int64_t seq, const char* what);
// Token ids: as Int32Arg, and every id checked against the vocabulary (ERR_TOKEN_OUT_OF_RANGE with
// its position). Returns int64. Every binding that feeds ids to the model goes through this.
at::Tensor TokenIdsArg(const Napi::Value& v, int64_t batch, int64_t seq, int64_t vocab, const char* what = "inputIds");
// An optional padding mask: undefined tensor when v is not a typed array.
at::Tensor OptionalMaskArg(const Napi::Value& v, int64_t batch, int64_t seq);

Napi::Float32Array ToFloat32Array(Napi::Env env, const at::Tensor& t);  // any dtype/device
// A float32 CPU contiguous tensor handed to JS without a copy: the Float32Array's buffer is the
// tensor's memory, and the tensor lives until JS collects the buffer. (Falls back to a copy where
// the runtime forbids external buffers, e.g. Electron's V8 sandbox.)
Napi::Float32Array Float32ArrayOwning(Napi::Env env, at::Tensor t);
Napi::Float64Array ToFloat64Array(Napi::Env env, const at::Tensor& t);  // any dtype/device
Napi::Array ShapeArray(Napi::Env env, at::IntArrayRef sizes);

}  // namespace excise
