// readSafetensors / writeSafetensors for JavaScript. File work runs on the libuv pool; everything
// that touches N-API happens on the JS thread (argument parsing before queueing, result building in
// OnOK), so Execute() only sees plain C++ data.
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "errors.h"
#include "safetensors.h"

namespace excise {
namespace {

// An AsyncWorker settling a promise. Subclasses implement Run() (worker thread, no N-API) and
// Settle() (JS thread). Failures from either reject with the project's ExciseError.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name) : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Settle(Napi::Env env) = 0;

  void Execute() final {
    try {
      Run();
    } catch (...) {
      error_ = CurrentExceptionInfo();
      SetError(error_.message);
    }
  }

  void OnOK() final {
    Napi::Env env = Env();
    // An exception escaping OnOK would surface as an uncaught exception, not a rejection.
    try {
      deferred_.Resolve(Settle(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(MakeJsError(env, CurrentExceptionInfo()).Value());
    }
  }

  void OnError(const Napi::Error&) final { deferred_.Reject(MakeJsError(Env(), error_).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  ErrorInfo error_;
};

// Defines an own data property: unlike Set(), a key such as "__proto__" stays an ordinary key. The
// key goes over as a JS string with its length, so a NUL inside a name does not cut it.
void DefineOwn(Napi::Object obj, const std::string& key, Napi::Value value) {
  Napi::String name = Napi::String::New(obj.Env(), key);
  obj.DefineProperty(Napi::PropertyDescriptor::Value(name, value, napi_default_jsproperty));
}

// Own enumerable string keys (Object.keys semantics; GetPropertyNames would include inherited ones).
std::vector<std::string> OwnKeys(Napi::Env env, Napi::Object obj) {
  napi_value names;
  napi_status status = napi_get_all_property_names(env, obj, napi_key_own_only,
                                                   static_cast<napi_key_filter>(napi_key_enumerable | napi_key_skip_symbols),
                                                   napi_key_numbers_to_strings, &names);
  if (status != napi_ok) throw Napi::Error::New(env);
  Napi::Array arr(env, names);
  std::vector<std::string> keys;
  keys.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) keys.push_back(arr.Get(i).As<Napi::String>().Utf8Value());
  return keys;
}

size_t ElementSize(at::ScalarType t) { return c10::elementSize(t); }

constexpr uint64_t kMaxSafeInteger = (uint64_t{1} << 53) - 1;  // Number.MAX_SAFE_INTEGER

napi_typedarray_type ArrayTypeFor(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return napi_float64_array;
    case at::kFloat: return napi_float32_array;
    case at::kHalf:
    case at::kBFloat16: return napi_uint16_array;  // raw bits: JS has no 16-bit float array everywhere
    case at::kLong: return napi_bigint64_array;
    case at::kInt: return napi_int32_array;
    case at::kShort: return napi_int16_array;
    case at::kChar: return napi_int8_array;
    case at::kByte:
    case at::kBool: return napi_uint8_array;
    default: throw Error(code::kInternal, std::string("no typed array for dtype ") + c10::toString(t));
  }
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// ---- readSafetensors ------------------------------------------------------------------------------

class ReadWorker : public PromiseWorker {
 public:
  ReadWorker(Napi::Env env, std::string path) : PromiseWorker(env, "excise:readSafetensors"), path_(std::move(path)) {}

 private:
  struct Tensor {
    std::string name;
    std::string dtypeName;
    at::ScalarType dtype;
    std::vector<uint64_t> dims;
    size_t nbytes = 0;
    std::unique_ptr<uint8_t[]> bytes;
  };

  void Run() override {
    auto file = SafetensorsFile::Open(path_);
    metadata_ = file->metadata();
    for (const TensorInfo& info : file->tensors()) {
      Tensor t;
      t.name = info.name;
      t.dtypeName = info.dtypeName;
      t.dtype = info.dtype;
      t.dims = info.dims;
      t.nbytes = info.end - info.begin;
      // The bytes as stored, as the official reader returns them (a BOOL byte other than 0 or 1
      // included; tensor() normalizes those for torch). No torch tensor is made, so an empty
      // tensor with dimensions torch cannot hold still reads.
      t.bytes.reset(new uint8_t[t.nbytes > 0 ? t.nbytes : 1]);
      if (t.nbytes > 0) std::memcpy(t.bytes.get(), file->bytes(info), t.nbytes);
      tensors_.push_back(std::move(t));
    }
  }

  Napi::Value Settle(Napi::Env env) override {
    Napi::Object metadata = Napi::Object::New(env);
    for (const auto& [k, v] : metadata_) DefineOwn(metadata, k, Napi::String::New(env, v));
    Napi::Object tensors = Napi::Object::New(env);
    for (Tensor& t : tensors_) {
      Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, t.nbytes);
      if (t.nbytes > 0) std::memcpy(buffer.Data(), t.bytes.get(), t.nbytes);
      t.bytes.reset();  // keep the peak at one copy per tensor
      napi_value data;
      napi_status status = napi_create_typedarray(env, ArrayTypeFor(t.dtype), t.nbytes / ElementSize(t.dtype), buffer, 0, &data);
      if (status != napi_ok) throw Napi::Error::New(env);
      // Numbers, exact up to 2^53-1; a larger dimension (only in an empty tensor) is a BigInt.
      Napi::Array shape = Napi::Array::New(env, t.dims.size());
      for (size_t i = 0; i < t.dims.size(); ++i) {
        const uint64_t d = t.dims[i];
        Napi::Value dim = d <= kMaxSafeInteger ? Napi::Value(Napi::Number::New(env, static_cast<double>(d)))
                                               : Napi::Value(Napi::BigInt::New(env, d));
        shape.Set(static_cast<uint32_t>(i), dim);
      }
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("dtype", t.dtypeName);
      entry.Set("shape", shape);
      entry.Set("data", Napi::Value(env, data));
      DefineOwn(tensors, t.name, entry);
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("metadata", metadata);
    result.Set("tensors", tensors);
    return result;
  }

  std::string path_;
  std::map<std::string, std::string> metadata_;
  std::vector<Tensor> tensors_;
};

// ---- writeSafetensors -----------------------------------------------------------------------------

class WriteWorker : public PromiseWorker {
 public:
  WriteWorker(Napi::Env env, std::string path, std::vector<std::pair<std::string, at::Tensor>> tensors,
              std::map<std::string, std::string> metadata)
      : PromiseWorker(env, "excise:writeSafetensors"),
        path_(std::move(path)),
        tensors_(std::move(tensors)),
        metadata_(std::move(metadata)) {}

 private:
  void Run() override { WriteSafetensors(path_, tensors_, metadata_); }
  Napi::Value Settle(Napi::Env env) override { return env.Undefined(); }

  std::string path_;
  std::vector<std::pair<std::string, at::Tensor>> tensors_;
  std::map<std::string, std::string> metadata_;
};

[[noreturn]] void BadArgument(const std::string& message) { throw Error(code::kInvalidArgument, "writeSafetensors: " + message); }

// Copies one JS tensor description into a CPU at::Tensor (on the JS thread: the typed array's
// memory may move or be detached once we return).
at::Tensor TensorFromJs(const std::string& name, Napi::Value value) {
  const std::string where = "tensor \"" + name + "\"";
  if (!value.IsObject() || value.IsArray()) BadArgument(where + " must be an object {dtype, shape, data}");
  Napi::Object obj = value.As<Napi::Object>();

  Napi::Value dtypeValue = obj.Get("dtype");
  if (!dtypeValue.IsString()) BadArgument(where + ": dtype must be a string");
  std::string dtypeName = dtypeValue.As<Napi::String>().Utf8Value();
  bool known = false;
  at::ScalarType dtype = DtypeFromName(dtypeName, &known);
  if (!known) BadArgument(where + ": unsupported dtype \"" + dtypeName + "\" (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");

  Napi::Value shapeValue = obj.Get("shape");
  if (!shapeValue.IsArray()) BadArgument(where + ": shape must be an array of non-negative integers");
  Napi::Array shapeArray = shapeValue.As<Napi::Array>();
  std::vector<int64_t> shape;
  uint64_t bytes = ElementSize(dtype);
  bool overflow = false;
  for (uint32_t i = 0; i < shapeArray.Length(); ++i) {
    Napi::Value d = shapeArray.Get(i);
    double v = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    if (!(v >= 0 && v <= 9007199254740991.0 && v == static_cast<double>(static_cast<int64_t>(v)))) {
      BadArgument(where + ": shape must be an array of non-negative integers");
    }
    shape.push_back(static_cast<int64_t>(v));
    overflow = overflow || __builtin_mul_overflow(bytes, static_cast<uint64_t>(v), &bytes);
  }
  if (overflow || bytes > static_cast<uint64_t>(INT64_MAX)) BadArgument(where + ": shape " + ShapeText(shape) + " is too large");

  Napi::Value dataValue = obj.Get("data");
  if (!dataValue.IsTypedArray()) BadArgument(where + ": data must be a typed array");
  Napi::TypedArray data = dataValue.As<Napi::TypedArray>();
  if (data.ByteLength() != bytes) {
    BadArgument(where + ": data has " + std::to_string(data.ByteLength()) + " bytes but shape " + ShapeText(shape) + " of " +
                dtypeName + " needs " + std::to_string(bytes));
  }
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype).device(at::kCPU));
  if (bytes > 0) {
    const auto* src = static_cast<const uint8_t*>(data.ArrayBuffer().Data()) + data.ByteOffset();
    std::memcpy(t.data_ptr(), src, bytes);
  }
  return t;
}

// Runs parse() on the JS thread; a failure becomes a rejected promise rather than a throw, so that
// callers see one failure channel.
template <typename Parse>
Napi::Value QueueOrReject(Napi::Env env, Parse&& parse) {
  try {
    PromiseWorker* worker = parse();
    Napi::Promise promise = worker->Promise();
    worker->Queue();  // the worker deletes itself once settled
    return promise;
  } catch (const Napi::Error& e) {
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(e.Value());
    return deferred.Promise();
  } catch (...) {
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(MakeJsError(env, CurrentExceptionInfo()).Value());
    return deferred.Promise();
  }
}

}  // namespace

Napi::Value ReadSafetensorsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return QueueOrReject(env, [&]() -> PromiseWorker* {
    if (info.Length() < 1 || !info[0].IsString()) throw Error(code::kInvalidArgument, "readSafetensors: path must be a string");
    return new ReadWorker(env, info[0].As<Napi::String>().Utf8Value());
  });
}

Napi::Value WriteSafetensorsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return QueueOrReject(env, [&]() -> PromiseWorker* {
    if (info.Length() < 1 || !info[0].IsString()) BadArgument("path must be a string");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    if (info.Length() < 2 || !info[1].IsObject() || info[1].IsArray()) BadArgument("tensors must be an object of name -> tensor");
    Napi::Object tensorsObj = info[1].As<Napi::Object>();
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const std::string& name : OwnKeys(env, tensorsObj)) tensors.emplace_back(name, TensorFromJs(name, tensorsObj.Get(name)));

    std::map<std::string, std::string> metadata;
    if (info.Length() >= 3 && !info[2].IsUndefined() && !info[2].IsNull()) {
      if (!info[2].IsObject() || info[2].IsArray()) BadArgument("metadata must be an object of string -> string");
      Napi::Object metaObj = info[2].As<Napi::Object>();
      for (const std::string& key : OwnKeys(env, metaObj)) {
        Napi::Value v = metaObj.Get(key);
        if (!v.IsString()) BadArgument("metadata \"" + key + "\" must be a string");
        metadata[key] = v.As<Napi::String>().Utf8Value();
      }
    }
    return new WriteWorker(env, std::move(path), std::move(tensors), std::move(metadata));
  });
}

}  // namespace excise
