// The JS-facing decode engine: module functions that take the model object first and
// queue their work on that model's thread (so they run in call order with its other jobs).
#include <napi.h>

#include "addon_data.h"
#include "bindings.h"
#include "decode_engine.h"
#include "errors.h"
#include "handles.h"
#include "js_tensors.h"
#include "model_binding.h"

namespace excise {
namespace {

using EngineHandle = std::shared_ptr<DecodeEngine>;

ModelWrap* ModelArg(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(GetAddonData(env).modelClass.Value())) {
    throw Error(code::kInvalidArgument, "expected a model");
  }
  return Napi::ObjectWrap<ModelWrap>::Unwrap(v.As<Napi::Object>());
}

EngineHandle EngineArg(const Napi::Value& v) {
  EngineHandle& h = HandleArg<DecodeEngine>(v, tags::kDecodeEngine, "a decode engine");
  if (!h) throw Error(code::kInvalidArgument, "this decode engine has been released");
  return h;
}

int64_t IntProp(const Napi::Object& o, const char* key) { return o.Get(key).As<Napi::Number>().Int64Value(); }
double NumProp(const Napi::Object& o, const char* key) { return o.Get(key).As<Napi::Number>().DoubleValue(); }

std::vector<int64_t> IdList(const Napi::Value& v) {
  std::vector<int64_t> out;
  if (v.IsTypedArray()) {
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    out.assign(a.Data(), a.Data() + a.ElementLength());
  } else if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).As<Napi::Number>().Int64Value());
  }
  return out;
}

const char* FinishName(FinishReason f) {
  switch (f) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::None: break;
  }
  return nullptr;
}

class EngineStepJob : public Job {
 public:
  EngineStepJob(Napi::Env env, std::shared_ptr<Decoder> d, EngineHandle e, std::vector<DecodeRequest> admit)
      : Job(env), d_(std::move(d)), e_(std::move(e)), admit_(std::move(admit)) {}

  void Execute() override { result_ = e_->Step(*d_, std::move(admit_)); }

  Napi::Value OnOK(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    Napi::Array events = Napi::Array::New(env, result_.events.size());
    for (size_t i = 0; i < result_.events.size(); ++i) {
      const TokenEvent& ev = result_.events[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("id", static_cast<double>(ev.id));
      o.Set("token", static_cast<double>(ev.token));
      o.Set("logprob", static_cast<double>(ev.logprob));
      if (!ev.topIds.empty()) {
        Napi::Int32Array ids = Napi::Int32Array::New(env, ev.topIds.size());
        Napi::Float32Array lps = Napi::Float32Array::New(env, ev.topLogprobs.size());
        std::copy(ev.topIds.begin(), ev.topIds.end(), ids.Data());
        std::copy(ev.topLogprobs.begin(), ev.topLogprobs.end(), lps.Data());
        o.Set("topIds", ids);
        o.Set("topLogprobs", lps);
      }
      if (const char* f = FinishName(ev.finish)) o.Set("finish", f);
      events.Set(static_cast<uint32_t>(i), o);
    }
    out.Set("events", events);
    out.Set("active", static_cast<double>(result_.active));
    out.Set("waiting", static_cast<double>(result_.waiting));
    out.Set("batch", static_cast<double>(result_.batch));
    return out;
  }

 private:
  std::shared_ptr<Decoder> d_;
  EngineHandle e_;
  std::vector<DecodeRequest> admit_;
  StepResult result_;
};

class EngineResetJob : public Job {
 public:
  EngineResetJob(Napi::Env env, EngineHandle e) : Job(env), e_(std::move(e)) {}
  void Execute() override { e_->Reset(); }
  Napi::Value OnOK(Napi::Env env) override { return env.Undefined(); }

 private:
  EngineHandle e_;
};

}  // namespace

// engineCreate(model, maxBatch, maxSequence) -> engine handle (the cache is allocated on first use)
Napi::Value EngineCreateJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    ModelArg(env, info[0])->decoder();  // ERR_MODEL_DISPOSED
    EngineOptions o;
    o.maxBatch = info[1].As<Napi::Number>().Int64Value();
    o.maxSequence = info[2].As<Napi::Number>().Int64Value();
    if (o.maxBatch < 1 || o.maxSequence < 2) throw Error(code::kInvalidArgument, "engine: maxBatch >= 1 and maxSequence >= 2 expected");
    return NewHandle(env, std::make_shared<DecodeEngine>(o), tags::kDecodeEngine);
  });
}

// engineStep(model, engine, admit: Array<{ id, prompt: Int32Array, maxNewTokens, temperature, topK,
// topP, seed, stopIds, logprobs }>) -> Promise<{ events, active, waiting, batch }>
Napi::Value EngineStepJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    ModelWrap* model = ModelArg(env, info[0]);
    std::shared_ptr<Decoder> d = model->decoder();
    EngineHandle e = EngineArg(info[1]);
    std::vector<DecodeRequest> admit;
    Napi::Array list = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) {
      Napi::Object o = list.Get(i).As<Napi::Object>();
      DecodeRequest q;
      q.id = IntProp(o, "id");
      Napi::Value prompt = o.Get("prompt");
      const int64_t n = prompt.IsTypedArray() ? static_cast<int64_t>(prompt.As<Napi::TypedArray>().ElementLength()) : 0;
      if (n == 0) throw Error(code::kInvalidArgument, "prompt: expected at least one token");
      at::Tensor ids = TokenIdsArg(prompt, 1, n, d->config().vocabSize, "prompt");
      q.prompt.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + n);
      q.maxNewTokens = IntProp(o, "maxNewTokens");
      q.temperature = NumProp(o, "temperature");
      q.topK = IntProp(o, "topK");
      q.topP = NumProp(o, "topP");
      q.seed = static_cast<uint64_t>(IntProp(o, "seed"));
      q.stopIds = IdList(o.Get("stopIds"));
      q.logprobs = IntProp(o, "logprobs");
      if (q.maxNewTokens < 1) throw Error(code::kInvalidArgument, "maxNewTokens: expected a positive integer");
      admit.push_back(std::move(q));
    }
    return model->Queue(env, std::make_unique<EngineStepJob>(env, d, std::move(e), std::move(admit)));
  });
}

// engineCancel(engine, id): the request stops before the engine's next decoding step.
Napi::Value EngineCancelJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    EngineArg(info[0])->Cancel(info[1].As<Napi::Number>().Int64Value());
    return env.Undefined();
  });
}

// engineReset(model, engine) -> Promise: frees the cache and forgets every request (in call order).
Napi::Value EngineResetJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    ModelWrap* model = ModelArg(env, info[0]);
    model->decoder();
    return model->Queue(env, std::make_unique<EngineResetJob>(env, EngineArg(info[1])));
  });
}

}  // namespace excise
