#include "model_binding.h"

#include <ATen/ATen.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/InferenceMode.h>

#include <map>

#include "addon_data.h"
#include "bindings.h"
#include "errors.h"
#include "handles.h"
#include "js_tensors.h"
#include "model_loader.h"
#include "runtime.h"

namespace excise {
namespace {

// ---- argument helpers (TS validates first; these guard the raw binding) ----------------------

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) throw Error(code::kInvalidArgument, std::string(what) + ": expected a string");
  return info[i].As<Napi::String>().Utf8Value();
}

// A parsed JSON value as a JS value (numbers as doubles, as JSON.parse gives them).
Napi::Value JsonToJs(Napi::Env env, const Json& j) {
  switch (j.type()) {
    case Json::Type::Null: return env.Null();
    case Json::Type::Bool: return Napi::Boolean::New(env, j.asBool());
    case Json::Type::Number: return Napi::Number::New(env, j.asDouble());
    case Json::Type::String: return Napi::String::New(env, j.asString());
    case Json::Type::Array: {
      const auto& items = j.asArray();
      Napi::Array a = Napi::Array::New(env, items.size());
      for (size_t i = 0; i < items.size(); ++i) a.Set(static_cast<uint32_t>(i), JsonToJs(env, items[i]));
      return a;
    }
    case Json::Type::Object: {
      Napi::Object o = Napi::Object::New(env);
      // Define, not Set: a key such as "__proto__" stays an ordinary own property.
      for (const auto& [key, value] : j.asObject()) {
        o.DefineProperty(Napi::PropertyDescriptor::Value(key, JsonToJs(env, value), napi_default_jsproperty));
      }
      return o;
    }
  }
  return env.Undefined();
}

// float32, CPU, contiguous: what crosses into JS.
at::Tensor ForJs(const at::Tensor& t) { return t.to(at::kFloat).to(at::kCPU).contiguous(); }

// ---- jobs ---------------------------------------------------------------------------------------

class ForwardJob : public Job {
 public:
  // lastPositionOnly: logits of each row's last real token only ([batch, 1, vocab]); the LM head
  // runs on those rows alone.
  ForwardJob(Napi::Env env, std::shared_ptr<Decoder> d, at::Tensor ids, at::Tensor mask, std::vector<HookPoint> capture,
             bool lastPositionOnly)
      : Job(env), d_(std::move(d)), ids_(std::move(ids)), mask_(std::move(mask)), capture_(std::move(capture)),
        lastPositionOnly_(lastPositionOnly) {}

  void Execute() override {
    c10::InferenceMode guard;
    std::map<std::string, at::Tensor> captured;
    HookSet hooks(d_->config().nLayers, [&](const HookPoint& p, const at::Tensor& act, const HookContext&) {
      captured[HookName(p)] = ForJs(act);
    });
    for (const HookPoint& p : capture_) hooks.enable(p);
    ForwardOptions opts;
    opts.attentionMask = mask_;
    opts.hooks = capture_.empty() ? nullptr : &hooks;
    at::Tensor idsDev = ids_.to(d_->device());
    if (!lastPositionOnly_) {
      logits_ = ForJs(d_->forward(idsDev, opts));  // [B, S, V]
    } else {
      opts.returnHidden = true;
      at::Tensor hidden = d_->forward(idsDev, opts);  // [B, S, E]
      const int64_t B = ids_.size(0), S = ids_.size(1);
      // Each row's last real position (S - 1 when unpadded), from the host mask.
      at::Tensor last = at::full({B}, S - 1, at::kLong);
      if (mask_.defined()) {
        at::Tensor positions = at::arange(S, at::kLong).unsqueeze(0).expand({B, S});
        last = at::where(mask_.ne(0), positions, at::full({}, -1, at::kLong)).amax(1).clamp_min(0);
      }
      at::Tensor rows = hidden.gather(1, last.to(hidden.device()).view({B, 1, 1}).expand({B, 1, hidden.size(2)}));  // [B, 1, E]
      logits_ = ForJs(d_->logitsOf(rows));  // [B, 1, V]
    }
    captured_ = std::move(captured);
  }

  Napi::Value OnOK(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    // The CPU tensors themselves become the arrays' memory: no copy on the JS thread.
    out.Set("shape", ShapeArray(env, logits_.sizes()));
    out.Set("logits", Float32ArrayOwning(env, std::move(logits_)));
    if (!capture_.empty()) {
      Napi::Object acts = Napi::Object::New(env);
      for (const auto& [name, t] : captured_) {
        Napi::Object a = Napi::Object::New(env);
        a.Set("data", Float32ArrayOwning(env, t));
        a.Set("shape", ShapeArray(env, t.sizes()));
        acts.Set(name, a);
      }
      out.Set("activations", acts);
    }
    return out;
  }

 private:
  std::shared_ptr<Decoder> d_;
  at::Tensor ids_, mask_;
  std::vector<HookPoint> capture_;
  bool lastPositionOnly_ = false;
  at::Tensor logits_;
  std::map<std::string, at::Tensor> captured_;
};

class DisposeJob : public Job {
 public:
  DisposeJob(Napi::Env env, std::shared_ptr<Decoder> d, std::vector<std::shared_ptr<Trainer>> trainers)
      : Job(env), d_(std::move(d)), trainers_(std::move(trainers)) {}
  // Closing the model's trainers and dropping the last reference, on the model thread, frees the
  // weights (and any optimizer state) after every queued job.
  void Execute() override {
    for (auto& t : trainers_) t->Close();
    trainers_.clear();
    bool anyCuda = false;
    for (const at::Device& device : d_->placement().devices) anyCuda |= device.is_cuda();
    d_.reset();
    // Return the freed weights to the driver (LibTorch's caching allocator would keep them for
    // this process only; one call empties every GPU's cache).
    if (anyCuda) c10::getDeviceAllocator(at::kCUDA)->emptyCache();
  }
  Napi::Value OnOK(Napi::Env env) override { return env.Undefined(); }

 private:
  std::shared_ptr<Decoder> d_;
  std::vector<std::shared_ptr<Trainer>> trainers_;
};

// Loading runs on Node's thread pool: there is no model (and no queue) yet.
class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, std::function<std::unique_ptr<Decoder>()> load)
      : Napi::AsyncWorker(env, "excise-load"), deferred_(Napi::Promise::Deferred::New(env)), load_(std::move(load)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      decoder_ = load_();
    } catch (...) {
      error_ = CurrentExceptionInfo();
      SetError(error_.message);
    }
  }
  void OnOK() override { deferred_.Resolve(ModelWrap::Wrap(Env(), std::move(decoder_))); }
  void OnError(const Napi::Error&) override { deferred_.Reject(MakeJsError(Env(), error_).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<std::unique_ptr<Decoder>()> load_;
  std::shared_ptr<Decoder> decoder_;
  ErrorInfo error_;
};

// (device, dtype) at `first`; devices (string[], a split model) at `devicesAt` when given.
LoadOptions LoadOptionsArgs(const Napi::CallbackInfo& info, size_t first, size_t devicesAt) {
  LoadOptions o;
  if (info.Length() > first && info[first].IsString()) o.device = info[first].As<Napi::String>().Utf8Value();
  if (info.Length() > first + 1 && info[first + 1].IsString()) o.dtype = info[first + 1].As<Napi::String>().Utf8Value();
  if (info.Length() > devicesAt && info[devicesAt].IsArray()) {
    Napi::Array list = info[devicesAt].As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) {
      Napi::Value v = list.Get(i);
      if (!v.IsString()) throw Error(code::kInvalidDevice, "devices[" + std::to_string(i) + "]: expected a device name");
      o.devices.push_back(v.As<Napi::String>().Utf8Value());
    }
    if (o.devices.empty()) throw Error(code::kInvalidArgument, "devices: expected a non-empty list of devices");
  }
  return o;
}

}  // namespace

// ---- ModelWrap ----------------------------------------------------------------------------------

Napi::Function ModelWrap::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeModel",
                                 {
                                     InstanceMethod<&ModelWrap::Config>("config"),
                                     InstanceMethod<&ModelWrap::SourceConfig>("sourceConfig"),
                                     InstanceMethod<&ModelWrap::Forward>("forward"),
                                     InstanceMethod<&ModelWrap::TensorNames>("tensorNames"),
                                     InstanceMethod<&ModelWrap::Dispose>("dispose"),
                                     InstanceMethod<&ModelWrap::StatsBegin>("statsBegin"),
                                     InstanceMethod<&ModelWrap::CollectBatch>("collectBatch"),
                                     InstanceMethod<&ModelWrap::StatsExport>("statsExport"),
                                     InstanceMethod<&ModelWrap::Prune>("prune"),
                                     InstanceMethod<&ModelWrap::Restore>("restore"),
                                     InstanceMethod<&ModelWrap::Masks>("masks"),
                                     InstanceMethod<&ModelWrap::SaveWeights>("saveWeights"),
                                     InstanceMethod<&ModelWrap::EvaluateBatch>("evaluateBatch"),
                                     InstanceMethod<&ModelWrap::TokenLogprobs>("tokenLogprobs"),
                                     InstanceMethod<&ModelWrap::RezeroPruned>("rezeroPruned"),
                                     InstanceMethod<&ModelWrap::OutputColumnNorms>("outputColumnNorms"),
                                     InstanceMethod<&ModelWrap::TrainerCreate>("trainerCreate"),
                                     InstanceMethod<&ModelWrap::TrainStep>("trainStep"),
                                     InstanceMethod<&ModelWrap::TrainerClose>("trainerClose"),
                                 });
  GetAddonData(env).modelClass = Napi::Persistent(f);
  return f;
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  // Only Wrap() can construct one: it passes a tagged External that JS cannot forge.
  if (info.Length() < 1 || !info[0].IsExternal() ||
      !info[0].As<Napi::External<std::shared_ptr<Decoder>>>().CheckTypeTag(&tags::kModelConstruction)) {
    throw MakeJsError(info.Env(), {code::kInvalidArgument, "NativeModel is created by loadModel() or createRandomModel()"});
  }
  auto* d = info[0].As<Napi::External<std::shared_ptr<Decoder>>>().Data();
  decoder_ = *d;
  identity_ = decoder_.get();
  prune_ = std::make_shared<PruneState>(decoder_->config());
  // The queue's device guard makes the first device current for every job. A model split over
  // several devices needs nothing more: CUDA kernels run on their tensors' device, and every tensor
  // the jobs and the decoder make names its device (placement.h).
  queue_ = std::make_unique<JobQueue>(info.Env(), decoder_->device());
}

ModelWrap::~ModelWrap() = default;  // the queue finishes its jobs and joins

std::shared_ptr<Decoder> ModelWrap::decoder() const {
  if (!decoder_) throw Error(code::kModelDisposed, "the model has been disposed");
  return decoder_;
}

Napi::Promise ModelWrap::Queue(Napi::Env env, std::unique_ptr<Job> job) {
  job->KeepAlive(Value());
  return queue_->Push(env, std::move(job));
}

Napi::Value ModelWrap::Config(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::shared_ptr<Decoder> d = decoder();
    const DecoderConfig& c = d->config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("architecture", c.architecture);
    o.Set("family", c.family);
    o.Set("nLayers", static_cast<double>(c.nLayers));
    o.Set("dModel", static_cast<double>(c.dModel));
    o.Set("dMlp", static_cast<double>(c.dMlp));
    o.Set("nHeads", static_cast<double>(c.nHeads));
    o.Set("nKvHeads", static_cast<double>(c.nKvHeads));
    o.Set("headDim", static_cast<double>(c.headDim));
    o.Set("vocabSize", static_cast<double>(c.vocabSize));
    o.Set("maxPositions", static_cast<double>(c.maxPositions));
    o.Set("gatedMlp", c.gatedMlp);
    o.Set("tiedEmbeddings", c.tiedEmbeddings);
    o.Set("maskedLm", !c.causal);
    o.Set("padTokenId", static_cast<double>(c.padTokenId));
    o.Set("device", d->device().str());
    // The placement (placement.h): stage devices, each layer's stage, and the end stages' roles.
    const Placement& p = d->placement();
    Napi::Array devices = Napi::Array::New(env, p.devices.size());
    for (size_t i = 0; i < p.devices.size(); ++i) devices.Set(static_cast<uint32_t>(i), p.devices[i].str());
    o.Set("devices", devices);
    Napi::Array layerDevices = Napi::Array::New(env, p.layerDevice.size());
    for (size_t i = 0; i < p.layerDevice.size(); ++i) layerDevices.Set(static_cast<uint32_t>(i), static_cast<double>(p.layerDevice[i]));
    o.Set("layerDevices", layerDevices);
    o.Set("embedDevice", static_cast<double>(p.embedDevice));
    o.Set("finalDevice", static_cast<double>(p.finalDevice));
    o.Set("headDevice", static_cast<double>(p.headDevice));
    o.Set("dtype", DtypeToString(d->dtype()));
    o.Set("parameterCount", static_cast<double>(d->parameterCount()));
    o.Set("bosTokenId", static_cast<double>(c.bosTokenId));
    Napi::Array eos = Napi::Array::New(env, c.eosTokenIds.size());
    for (size_t i = 0; i < c.eosTokenIds.size(); ++i) eos.Set(static_cast<uint32_t>(i), static_cast<double>(c.eosTokenIds[i]));
    o.Set("eosTokenIds", eos);
    return o;
  });
}

// sourceConfig() -> config.json as parsed at load (a fresh object on every call)
Napi::Value ModelWrap::SourceConfig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return JsonToJs(env, decoder()->sourceConfig); });
}

// forward(ids: Int32Array, batch, seq, mask: Int32Array | null, capture: string[])
Napi::Value ModelWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::shared_ptr<Decoder> d = decoder();
    const int64_t batch = info[1].As<Napi::Number>().Int64Value();
    const int64_t seq = info[2].As<Napi::Number>().Int64Value();
    at::Tensor ids = TokenIdsArg(info[0], batch, seq, d->config().vocabSize);
    at::Tensor mask = info.Length() > 3 ? OptionalMaskArg(info[3], batch, seq) : at::Tensor();
    std::vector<HookPoint> capture;
    if (info.Length() > 4 && info[4].IsArray()) {
      Napi::Array names = info[4].As<Napi::Array>();
      for (uint32_t i = 0; i < names.Length(); ++i) {
        const std::string name = names.Get(i).As<Napi::String>().Utf8Value();
        HookPoint p;
        if (!ParseHookName(name, d->config().nLayers, &p)) {
          throw Error(code::kInvalidArgument, "capture: unknown hook point \"" + name + "\" (expected blocks.{0.." +
                                                  std::to_string(d->config().nLayers - 1) +
                                                  "}.mlp.pre_out or blocks.{L}.attn.pre_out)");
        }
        capture.push_back(p);
      }
    }
    const bool lastPositionOnly = info.Length() > 5 && info[5].IsBoolean() && info[5].As<Napi::Boolean>().Value();
    return Queue(env, std::make_unique<ForwardJob>(env, d, std::move(ids), std::move(mask), std::move(capture), lastPositionOnly));
  });
}

Napi::Value ModelWrap::TensorNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::shared_ptr<Decoder> d = decoder();
    Napi::Array out = Napi::Array::New(env, d->params().size());
    uint32_t i = 0;
    for (const auto& p : d->params()) out.Set(i++, p.first);
    return out;
  });
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (!decoder_) {
      auto deferred = Napi::Promise::Deferred::New(env);
      deferred.Resolve(env.Undefined());
      return deferred.Promise();
    }
    std::vector<std::shared_ptr<Trainer>> trainers;
    for (auto& w : trainers_) {
      if (auto t = w.lock()) trainers.push_back(std::move(t));
    }
    auto job = std::make_unique<DisposeJob>(env, decoder_, std::move(trainers));
    Napi::Promise p = Queue(env, std::move(job));  // may throw (the process is exiting): then nothing changed
    decoder_.reset();  // later calls fail with ERR_MODEL_DISPOSED
    trainers_.clear();
    return p;
  });
}

Napi::Object ModelWrap::Wrap(Napi::Env env, std::shared_ptr<Decoder> decoder) {
  std::shared_ptr<Decoder> holder = std::move(decoder);
  // The constructor copies the shared_ptr out of the External during New().
  Napi::External<std::shared_ptr<Decoder>> ext = Napi::External<std::shared_ptr<Decoder>>::New(env, &holder);
  ext.TypeTag(&tags::kModelConstruction);
  return GetAddonData(env).modelClass.New({ext});
}

// ---- module functions ---------------------------------------------------------------------------

Napi::Value LoadModelJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const std::string dir = StringArg(info, 0, "dir");
    LoadOptions opts = LoadOptionsArgs(info, 1, 3);  // (dir, device, dtype, devices?)
    auto* w = new LoadWorker(env, [dir, opts]() { return LoadDecoder(dir, opts); });
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  });
}

Napi::Value CreateRandomModelJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const std::string config = StringArg(info, 0, "config");
    LoadOptions opts = LoadOptionsArgs(info, 1, 4);  // (config, device, dtype, seed, devices?)
    const uint64_t seed = info.Length() > 3 && info[3].IsNumber() ? static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value()) : 0;
    auto* w = new LoadWorker(env, [config, opts, seed]() { return CreateRandomDecoder(config, opts, seed); });
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  });
}

}  // namespace excise
