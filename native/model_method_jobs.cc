// The method's jobs on a model: statistics collection, pruning, restore, masks and saving weights.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>

#include "column_norms.h"
#include "errors.h"
#include "js_tensors.h"
#include "eval.h"
#include "logprobs.h"
#include "handles.h"
#include "model_binding.h"
#include "runtime.h"
#include "safetensors.h"
#include "stats.h"
#include "train.h"

namespace excise {
namespace {

using StatsHandle = std::shared_ptr<StatsAccumulator>;

// A session begun on this model (owner: the model's identity).
StatsHandle& SessionArg(const Napi::Value& v, const void* owner) {
  StatsHandle& h = HandleArg<StatsAccumulator>(v, tags::kStatsSession, "a statistics session");
  if (!h) throw Error(code::kInvalidArgument, "this statistics session has already been exported");
  if (h->owner != owner) throw Error(code::kInvalidArgument, "this statistics session belongs to another model");
  return h;
}

// Per layer index lists from a JS array of Int32Arrays (or number arrays).
std::vector<std::vector<int64_t>> LayerLists(const Napi::Value& v, const char* what) {
  std::vector<std::vector<int64_t>> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsArray()) throw Error(code::kInvalidArgument, std::string(what) + ": expected one index list per layer");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t l = 0; l < a.Length(); ++l) {
    Napi::Value e = a.Get(l);
    std::vector<int64_t> list;
    if (e.IsTypedArray() && e.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
      Napi::Int32Array ia = e.As<Napi::Int32Array>();
      for (size_t i = 0; i < ia.ElementLength(); ++i) list.push_back(ia[i]);
    } else if (e.IsArray()) {
      Napi::Array ea = e.As<Napi::Array>();
      for (uint32_t i = 0; i < ea.Length(); ++i) list.push_back(ea.Get(i).As<Napi::Number>().Int64Value());
    } else {
      throw Error(code::kInvalidArgument, std::string(what) + "[" + std::to_string(l) + "]: expected an array of indices");
    }
    out.push_back(std::move(list));
  }
  return out;
}

std::vector<std::vector<double>> LayerMeans(const Napi::Value& v) {
  std::vector<std::vector<double>> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t l = 0; l < a.Length(); ++l) {
    Napi::Float64Array f = a.Get(l).As<Napi::Float64Array>();
    out.emplace_back(f.Data(), f.Data() + f.ElementLength());
  }
  return out;
}

class CollectJob : public Job {
 public:
  CollectJob(Napi::Env env, std::shared_ptr<Decoder> d, StatsHandle stats, at::Tensor ids, at::Tensor mask)
      : Job(env), d_(std::move(d)), stats_(std::move(stats)), ids_(std::move(ids)), mask_(std::move(mask)) {}

  void Execute() override {
    c10::InferenceMode guard;
    StatsAccumulator* acc = stats_.get();
    // A batch lands whole or not at all: if the forward fails part-way (out of memory, say), the
    // hooks it already ran are rolled back.
    StatsAccumulator::Checkpoint before = acc->Save();
    // Test-only fault injection (test/host.test.ts): EXCISE_TEST_FAIL_STATS_HOOK=N fails the batch
    // as if the device ran out of memory in its Nth hook, after N-1 hooks have accumulated.
    const char* failAt = std::getenv("EXCISE_TEST_FAIL_STATS_HOOK");
    // Test-only: EXCISE_TEST_STATS_DEVICE_PATH=1 reduces with the GPU's ATen path on the CPU too.
    const char* devicePath = std::getenv("EXCISE_TEST_STATS_DEVICE_PATH");
    acc->forceDevicePath = devicePath != nullptr && std::string(devicePath) == "1";
    // Test-only: EXCISE_TEST_POISON_PADDING=inf|nan overwrites every padding row of each hooked
    // activation with +Inf or NaN before it is reduced, as an fp16 overflow at a padded position
    // would: the statistics must not see it. (Injected at the hook because a real Inf at a padded
    // position also reaches the real rows through attention, 0 x Inf in softmax(QK) V, in any
    // attention implementation, Hugging Face's included.)
    const char* poison = std::getenv("EXCISE_TEST_POISON_PADDING");
    const double poisonValue = poison == nullptr ? 0.0
                               : std::string(poison) == "nan" ? std::numeric_limits<double>::quiet_NaN()
                               : std::string(poison) == "inf" ? std::numeric_limits<double>::infinity()
                                                              : 0.0;
    const long failHook = failAt != nullptr ? std::strtol(failAt, nullptr, 10) : 0;
    long hookCount = 0;
    try {
      HookSet hooks(d_->config().nLayers, [&](const HookPoint& p, const at::Tensor& act, const HookContext& ctx) {
        if (++hookCount == failHook) throw Error(code::kOutOfMemory, "collect: injected failure in hook " + std::to_string(hookCount));
        if (poisonValue != 0.0 && ctx.tokenMask != nullptr) {
          acc->Accumulate(p, act.masked_fill(ctx.tokenMask->logical_not().unsqueeze(-1), poisonValue), ctx);
          return;
        }
        acc->Accumulate(p, act, ctx);
      });
      for (const HookPoint& p : acc->points()) hooks.enable(p);
      ForwardOptions opts;
      opts.attentionMask = mask_;
      opts.hooks = &hooks;
      opts.computeLogits = false;
      opts.stopAfterLayer = acc->lastLayer();
      opts.paddingOutputsUnused = true;  // the statistics skip padding rows
      d_->forward(ids_.to(d_->device()), opts);
    } catch (...) {
      acc->Rollback(std::move(before));
      throw;
    }
    // Real tokens, counted from the mask itself (1 = token): the statistics' denominator.
    tokens_ = mask_.defined() ? mask_.ne(0).sum().item<int64_t>() : ids_.numel();
    acc->tokens += tokens_;
  }
  Napi::Value OnOK(Napi::Env env) override { return Napi::Number::New(env, static_cast<double>(tokens_)); }

 private:
  std::shared_ptr<Decoder> d_;
  StatsHandle stats_;
  at::Tensor ids_, mask_;
  int64_t tokens_ = 0;
};

class StatsExportJob : public Job {
 public:
  StatsExportJob(Napi::Env env, StatsHandle stats) : Job(env), stats_(std::move(stats)) {}
  void Execute() override {
    for (const NeuronSums& s : stats_->sums()) {
      if (!s.defined()) {
        cpu_.push_back({});
        continue;
      }
      // One [kSumCount, width] float64 copy to the host, rows in kSumNames order.
      std::vector<at::Tensor> rows;
      for (const at::Tensor& t : s.totals) rows.push_back(t.to(at::kDouble));
      cpu_.push_back({at::stack(rows).to(at::kCPU)});
    }
  }
  Napi::Value OnOK(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("tokens", static_cast<double>(stats_->tokens));
    Napi::Object hooks = Napi::Object::New(env);
    const auto& points = stats_->points();
    for (size_t i = 0; i < points.size(); ++i) {
      Napi::Object h = Napi::Object::New(env);
      const at::Tensor& t = cpu_[i].packed;
      for (size_t k = 0; k < kSumCount; ++k) {
        if (t.defined()) h.Set(kSumNames[k], ToFloat64Array(env, t[static_cast<int64_t>(k)]));
      }
      hooks.Set(HookName(points[i]), h);
    }
    out.Set("hooks", hooks);
    return out;
  }

 private:
  struct Packed {
    at::Tensor packed;
  };
  StatsHandle stats_;
  std::vector<Packed> cpu_;
};

// The masks as JS sees them: { ff: Uint8Array[], attn: Uint8Array[] } (1 = pruned), per layer.
struct MaskSnapshot {
  std::vector<std::vector<uint8_t>> ff, attn;
  static MaskSnapshot Of(const PruneState& st) { return {st.ffMask(), st.attnMask()}; }
  Napi::Object ToJs(Napi::Env env) const {
    auto layers = [&](const std::vector<std::vector<uint8_t>>& m) {
      Napi::Array a = Napi::Array::New(env, m.size());
      for (size_t l = 0; l < m.size(); ++l) {
        Napi::Uint8Array u = Napi::Uint8Array::New(env, m[l].size());
        std::copy(m[l].begin(), m[l].end(), u.Data());
        a.Set(static_cast<uint32_t>(l), u);
      }
      return a;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("ff", layers(ff));
    o.Set("attn", layers(attn));
    return o;
  }
};

class PruneJob : public Job {
 public:
  PruneJob(Napi::Env env, std::shared_ptr<Decoder> d, std::shared_ptr<PruneState> st, PruneRequest req)
      : Job(env), d_(std::move(d)), st_(std::move(st)), req_(std::move(req)) {}
  void Execute() override {
    c10::InferenceMode guard;
    result_ = st_->Apply(*d_, req_);
    masks_ = MaskSnapshot::Of(*st_);  // from the same job: no later job can come in between
  }
  Napi::Value OnOK(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("masks", masks_.ToJs(env));
    auto arr = [&](const std::vector<int64_t>& v) {
      Napi::Array a = Napi::Array::New(env, v.size());
      for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), static_cast<double>(v[i]));
      return a;
    };
    o.Set("ff", arr(result_.ffPruned));
    o.Set("attn", arr(result_.attnPruned));
    return o;
  }

 private:
  std::shared_ptr<Decoder> d_;
  std::shared_ptr<PruneState> st_;
  PruneRequest req_;
  PruneResult result_;
  MaskSnapshot masks_;
};

class RestoreJob : public Job {
 public:
  RestoreJob(Napi::Env env, std::shared_ptr<Decoder> d, std::shared_ptr<PruneState> st) : Job(env), d_(std::move(d)), st_(std::move(st)) {}
  void Execute() override {
    c10::InferenceMode guard;
    st_->Restore();
    masks_ = MaskSnapshot::Of(*st_);
  }
  Napi::Value OnOK(Napi::Env env) override { return masks_.ToJs(env); }

 private:
  std::shared_ptr<Decoder> d_;
  std::shared_ptr<PruneState> st_;
  MaskSnapshot masks_;
};

class MasksJob : public Job {
 public:
  MasksJob(Napi::Env env, std::shared_ptr<PruneState> st) : Job(env), st_(std::move(st)) {}
  void Execute() override { masks_ = MaskSnapshot::Of(*st_); }
  Napi::Value OnOK(Napi::Env env) override { return masks_.ToJs(env); }

 private:
  std::shared_ptr<PruneState> st_;
  MaskSnapshot masks_;
};

// Writes the checkpoint tensors (under their own names) into `dir` as model.safetensors, or as
// model-0000i-of-0000n.safetensors shards of at most maxShardBytes each (a tensor is never split).
class SaveWeightsJob : public Job {
 public:
  // dtype: the floating-point dtype written (converted per shard while writing), or nullopt to
  // write each weight in the dtype it is held in.
  // plan: when not empty, exactly these files with these tensors (saving only the changed shards of
  // a sharded checkpoint: lib/save.ts links the others), instead of shards of maxShardBytes.
  SaveWeightsJob(Napi::Env env, std::shared_ptr<Decoder> d, std::string dir, int64_t maxShardBytes,
                 std::optional<at::ScalarType> dtype, std::vector<std::pair<std::string, std::vector<std::string>>> plan = {})
      : Job(env), d_(std::move(d)), dir_(std::move(dir)), maxShardBytes_(maxShardBytes), dtype_(dtype), plan_(std::move(plan)) {}

  void Execute() override {
    if (!plan_.empty()) return WritePlan();
    std::vector<std::vector<std::pair<std::string, at::Tensor>>> shards(1);
    int64_t shardBytes = 0;
    for (const auto& [name, t] : d_->params()) {
      const bool convert = dtype_ && t.is_floating_point();
      const int64_t bytes = t.numel() * static_cast<int64_t>(convert ? c10::elementSize(*dtype_) : t.element_size());
      if (shardBytes > 0 && shardBytes + bytes > maxShardBytes_) {
        shards.emplace_back();
        shardBytes = 0;
      }
      shards.back().emplace_back(name, t);
      shardBytes += bytes;
      total_ += bytes;
    }
    const size_t n = shards.size();
    for (size_t i = 0; i < n; ++i) {
      char file[64];
      if (n == 1) {
        std::snprintf(file, sizeof(file), "model.safetensors");
      } else {
        std::snprintf(file, sizeof(file), "model-%05zu-of-%05zu.safetensors", i + 1, n);
      }
      if (dtype_) {
        // One shard converted at a time: the extra memory is at most one shard.
        std::vector<std::pair<std::string, at::Tensor>> converted;
        for (const auto& [name, t] : shards[i]) converted.emplace_back(name, t.is_floating_point() ? t.to(*dtype_) : t);
        WriteSafetensors(dir_ + "/" + file, converted, {{"format", "pt"}});
      } else {
        WriteSafetensors(dir_ + "/" + file, shards[i], {{"format", "pt"}});
      }
      files_.push_back(file);
      for (const auto& p : shards[i]) weightMap_.emplace_back(p.first, file);
    }
  }
  void WritePlan() {
    std::map<std::string, at::Tensor> byName(d_->params().begin(), d_->params().end());
    for (const auto& [file, names] : plan_) {
      std::vector<std::pair<std::string, at::Tensor>> shard;
      for (const auto& name : names) {
        auto it = byName.find(name);
        if (it == byName.end()) throw Error(code::kInvalidArgument, "saveWeights: the model has no tensor " + name);
        const at::Tensor& t = it->second;
        shard.emplace_back(name, dtype_ && t.is_floating_point() ? t.to(*dtype_) : t);
        total_ += shard.back().second.numel() * static_cast<int64_t>(shard.back().second.element_size());
        weightMap_.emplace_back(name, file);
      }
      WriteSafetensors(dir_ + "/" + file, shard, {{"format", "pt"}});
      files_.push_back(file);
    }
  }

  Napi::Value OnOK(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    Napi::Array files = Napi::Array::New(env, files_.size());
    for (size_t i = 0; i < files_.size(); ++i) files.Set(static_cast<uint32_t>(i), files_[i]);
    Napi::Object map = Napi::Object::New(env);
    for (const auto& [name, file] : weightMap_) map.Set(name, file);
    o.Set("files", files);
    o.Set("weightMap", map);
    o.Set("totalSize", static_cast<double>(total_));
    return o;
  }

 private:
  std::shared_ptr<Decoder> d_;
  std::string dir_;
  int64_t maxShardBytes_;
  std::optional<at::ScalarType> dtype_;
  std::vector<std::pair<std::string, std::vector<std::string>>> plan_;
  std::vector<std::string> files_;
  std::vector<std::pair<std::string, std::string>> weightMap_;
  int64_t total_ = 0;
};

class EvalJob : public Job {
 public:
  // labels: undefined for next-token evaluation; [batch, seq] for a masked LM (see EvaluateMaskedBatch).
  EvalJob(Napi::Env env, std::shared_ptr<Decoder> d, at::Tensor ids, at::Tensor mask, at::Tensor labels, std::vector<int64_t> skip,
          int64_t topK)
      : Job(env), d_(std::move(d)), ids_(std::move(ids)), mask_(std::move(mask)), labels_(std::move(labels)), skip_(std::move(skip)),
        topK_(topK) {}
  void Execute() override {
    c10::InferenceMode guard;
    sums_ = labels_.defined() ? EvaluateMaskedBatch(*d_, ids_, mask_, labels_, skip_, topK_) : EvaluateBatch(*d_, ids_, mask_, skip_, topK_);
  }
  Napi::Value OnOK(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("tokens", static_cast<double>(sums_.tokens));
    o.Set("lossSum", sums_.lossSum);
    o.Set("top1", static_cast<double>(sums_.top1));
    o.Set("topk", static_cast<double>(sums_.topk));
    o.Set("skipTokens", static_cast<double>(sums_.skipTokens));
    o.Set("top1Skip", static_cast<double>(sums_.top1Skip));
    o.Set("topkSkip", static_cast<double>(sums_.topkSkip));
    return o;
  }

 private:
  std::shared_ptr<Decoder> d_;
  at::Tensor ids_, mask_, labels_;
  std::vector<int64_t> skip_;
  int64_t topK_;
  EvalSums sums_;
};

class TokenLogprobsJob : public Job {
 public:
  TokenLogprobsJob(Napi::Env env, std::shared_ptr<Decoder> d, at::Tensor ids, at::Tensor mask, at::Tensor targets)
      : Job(env), d_(std::move(d)), ids_(std::move(ids)), mask_(std::move(mask)), targets_(std::move(targets)) {}
  void Execute() override {
    c10::InferenceMode guard;
    r_ = ComputeTokenLogprobs(*d_, ids_, mask_, targets_);
  }
  Napi::Value OnOK(Napi::Env env) override {
    Napi::Float32Array lp = ToFloat32Array(env, r_.logprob);
    Napi::Uint8Array g = Napi::Uint8Array::New(env, static_cast<size_t>(r_.greedy.numel()));
    if (g.ElementLength() > 0) std::memcpy(g.Data(), r_.greedy.data_ptr<uint8_t>(), g.ElementLength());
    Napi::Object o = Napi::Object::New(env);
    o.Set("logprobs", lp);
    o.Set("greedy", g);
    return o;
  }

 private:
  std::shared_ptr<Decoder> d_;
  at::Tensor ids_, mask_, targets_;
  TokenLogprobs r_;
};

class RezeroJob : public Job {
 public:
  RezeroJob(Napi::Env env, std::shared_ptr<Decoder> d, std::shared_ptr<PruneState> st) : Job(env), d_(std::move(d)), st_(std::move(st)) {}
  void Execute() override {
    c10::NoGradGuard noGrad;  // the weights may still be flagged for gradients by a trainer
    st_->Rezero();
  }
  Napi::Value OnOK(Napi::Env env) override { return env.Undefined(); }

 private:
  std::shared_ptr<Decoder> d_;
  std::shared_ptr<PruneState> st_;
};

// { ff: Float64Array[], attn: Float64Array[] }: ‖W_out[:, i]‖₂ per layer (column_norms.h).
class OutputColumnNormsJob : public Job {
 public:
  OutputColumnNormsJob(Napi::Env env, std::shared_ptr<Decoder> d) : Job(env), d_(std::move(d)) {}
  void Execute() override {
    c10::InferenceMode guard;
    norms_ = ComputeOutputColumnNorms(*d_);
  }
  Napi::Value OnOK(Napi::Env env) override {
    auto layers = [&](const std::vector<at::Tensor>& perLayer) {
      Napi::Array a = Napi::Array::New(env, perLayer.size());
      for (size_t l = 0; l < perLayer.size(); ++l) a.Set(static_cast<uint32_t>(l), ToFloat64Array(env, perLayer[l]));
      return a;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("ff", layers(norms_.ff));
    o.Set("attn", layers(norms_.attn));
    return o;
  }

 private:
  std::shared_ptr<Decoder> d_;
  ProjectionNorms norms_;
};

using TrainerHandle = std::shared_ptr<Trainer>;

// A trainer made on this model (owner: the model's identity).
TrainerHandle& TrainerArg(const Napi::Value& v, const void* owner) {
  TrainerHandle& h = HandleArg<Trainer>(v, tags::kTrainer, "a trainer");
  if (!h) throw Error(code::kInvalidArgument, "this trainer is closed");
  if (h->owner() != owner) throw Error(code::kInvalidArgument, "this trainer belongs to another model");
  return h;
}

class TrainStepJob : public Job {
 public:
  TrainStepJob(Napi::Env env, TrainerHandle t, at::Tensor ids, at::Tensor mask, at::Tensor rowWeights)
      : Job(env), t_(std::move(t)), ids_(std::move(ids)), mask_(std::move(mask)), rowWeights_(std::move(rowWeights)) {}
  void Execute() override { r_ = t_->Step(ids_, mask_, rowWeights_); }
  Napi::Value OnOK(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", r_.loss);
    o.Set("gradNorm", r_.gradNorm);
    o.Set("lr", r_.lr);
    o.Set("step", static_cast<double>(r_.step));
    o.Set("tokens", static_cast<double>(r_.tokens));
    return o;
  }

 private:
  TrainerHandle t_;
  at::Tensor ids_, mask_, rowWeights_;
  TrainStepResult r_;
};

class TrainerCloseJob : public Job {
 public:
  TrainerCloseJob(Napi::Env env, TrainerHandle t) : Job(env), t_(std::move(t)) {}
  void Execute() override {
    t_->Close();
    t_.reset();
  }
  Napi::Value OnOK(Napi::Env env) override { return env.Undefined(); }

 private:
  TrainerHandle t_;
};

}  // namespace

// trainerCreate({ lr, minLrRatio, warmupSteps, totalSteps, beta1, beta2, eps, weightDecay, gradClip }) -> trainer
Napi::Value ModelWrap::TrainerCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::shared_ptr<Decoder> d = decoder();
    Napi::Object o = info[0].As<Napi::Object>();
    TrainOptions t;
    t.lr = o.Get("lr").As<Napi::Number>().DoubleValue();
    t.minLrRatio = o.Get("minLrRatio").As<Napi::Number>().DoubleValue();
    t.warmupSteps = o.Get("warmupSteps").As<Napi::Number>().Int64Value();
    t.totalSteps = o.Get("totalSteps").As<Napi::Number>().Int64Value();
    t.beta1 = o.Get("beta1").As<Napi::Number>().DoubleValue();
    t.beta2 = o.Get("beta2").As<Napi::Number>().DoubleValue();
    t.eps = o.Get("eps").As<Napi::Number>().DoubleValue();
    t.weightDecay = o.Get("weightDecay").As<Napi::Number>().DoubleValue();
    t.gradClip = o.Get("gradClip").As<Napi::Number>().DoubleValue();
    // Only the options are checked here: flagging the weights and allocating the optimizer state
    // happen on the model thread, at the first step (weights change only through the queue).
    auto trainer = std::make_shared<Trainer>(d, t);
    trainers_.push_back(trainer);
    return NewHandle(env, std::move(trainer), tags::kTrainer);
  });
}

// trainStep(trainer, ids: Int32Array, batch, seq, mask | null, rowWeights: Float64Array | undefined)
//   -> Promise<{ loss, gradNorm, lr, step, tokens }>; rowWeights [batch] weigh each row's loss
//   (-1: gradient ascent on that row).
Napi::Value ModelWrap::TrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::shared_ptr<Decoder> d = decoder();
    TrainerHandle t = TrainerArg(info[0], identity_);
    const int64_t batch = info[2].As<Napi::Number>().Int64Value();
    const int64_t seq = info[3].As<Napi::Number>().Int64Value();
    at::Tensor ids = TokenIdsArg(info[1], batch, seq, d->config().vocabSize);
    at::Tensor mask = OptionalMaskArg(info[4], batch, seq);
    at::Tensor rowWeights;
    if (info.Length() > 5 && info[5].IsTypedArray()) {
      Napi::Float64Array w = info[5].As<Napi::Float64Array>();
      if (static_cast<int64_t>(w.ElementLength()) != batch) throw Error(code::kInvalidArgument, "trainStep: rowWeights needs one weight per row");
      rowWeights = at::tensor(std::vector<double>(w.Data(), w.Data() + w.ElementLength()), at::TensorOptions().dtype(at::kDouble));
    }
    return Queue(env, std::make_unique<TrainStepJob>(env, std::move(t), std::move(ids), std::move(mask), std::move(rowWeights)));
  });
}

Napi::Value ModelWrap::TrainerClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    // No decoder() check: closing a trainer after dispose() (which closed it already) still settles.
    TrainerHandle& h = TrainerArg(info[0], identity_);
    Napi::Promise p = Queue(env, std::make_unique<TrainerCloseJob>(env, h));
    h.reset();
    return p;
  });
}

// evaluateBatch(ids: Int32Array, batch, seq, mask: Int32Array | null, skip: Int32Array, topK,
//               labels?: Int32Array [batch, seq] (masked LM: original token at masked positions, -1 elsewhere)) -> Promise<sums>
Napi::Value ModelWrap::EvaluateBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::shared_ptr<Decoder> d = decoder();
    const int64_t batch = info[1].As<Napi::Number>().Int64Value();
    const int64_t seq = info[2].As<Napi::Number>().Int64Value();
    at::Tensor ids = TokenIdsArg(info[0], batch, seq, d->config().vocabSize);
    at::Tensor mask = OptionalMaskArg(info[3], batch, seq);
    Napi::Int32Array skipArr = info[4].As<Napi::Int32Array>();
    std::vector<int64_t> skip(skipArr.Data(), skipArr.Data() + skipArr.ElementLength());
    const int64_t topK = info[5].As<Napi::Number>().Int64Value();
    if (topK < 1) throw Error(code::kInvalidArgument, "topK must be >= 1");
    at::Tensor labels;
    if (info.Length() > 6 && info[6].IsTypedArray()) {
      labels = Int32Arg(info[6], batch, seq, "labels");
      const int32_t* p = labels.data_ptr<int32_t>();
      for (int64_t i = 0; i < batch * seq; ++i) {
        if (p[i] < -1 || p[i] >= d->config().vocabSize) throw Error(code::kTokenOutOfRange, "labels: " + std::to_string(p[i]) + " is neither -1 nor a token id");
      }
      labels = labels.to(at::kLong);
    }
    return Queue(env, std::make_unique<EvalJob>(env, d, std::move(ids), std::move(mask), std::move(labels), std::move(skip), topK));
  });
}

// tokenLogprobs(ids: Int32Array, batch, seq, mask: Int32Array | null, targets: Int32Array)
//   -> Promise<{ logprobs: Float32Array, greedy: Uint8Array }>: one entry per nonzero targets[b, t]
// with t >= 1, in row-major order: log p(ids[b, t] | ids[b, <t]) and whether it was the argmax.
Napi::Value ModelWrap::TokenLogprobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::shared_ptr<Decoder> d = decoder();
    const int64_t batch = info[1].As<Napi::Number>().Int64Value();
    const int64_t seq = info[2].As<Napi::Number>().Int64Value();
    at::Tensor ids = TokenIdsArg(info[0], batch, seq, d->config().vocabSize);
    at::Tensor mask = OptionalMaskArg(info[3], batch, seq);
    at::Tensor targets = Int32Arg(info[4], batch, seq, "targets");
    return Queue(env, std::make_unique<TokenLogprobsJob>(env, d, std::move(ids), std::move(mask), std::move(targets)));
  });
}

Napi::Value ModelWrap::RezeroPruned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return Queue(env, std::make_unique<RezeroJob>(env, decoder(), prune_)); });
}

// outputColumnNorms() -> Promise<{ ff: Float64Array[], attn: Float64Array[] }> (current weights)
Napi::Value ModelWrap::OutputColumnNorms(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return Queue(env, std::make_unique<OutputColumnNormsJob>(env, decoder())); });
}

// statsBegin(hookNames: string[]) -> session
Napi::Value ModelWrap::StatsBegin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::shared_ptr<Decoder> d = decoder();
    std::vector<HookPoint> points;
    Napi::Array names = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < names.Length(); ++i) {
      const std::string name = names.Get(i).As<Napi::String>().Utf8Value();
      HookPoint p;
      if (!ParseHookName(name, d->config().nLayers, &p)) throw Error(code::kInvalidArgument, "hooks: unknown hook point \"" + name + "\"");
      points.push_back(p);
    }
    auto session = std::make_shared<StatsAccumulator>(std::move(points), d->config().nLayers);
    session->owner = identity_;
    return NewHandle(env, std::move(session), tags::kStatsSession);
  });
}

// collectBatch(session, ids: Int32Array, batch, seq, mask: Int32Array | null) -> Promise<real tokens counted>
Napi::Value ModelWrap::CollectBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::shared_ptr<Decoder> d = decoder();
    StatsHandle stats = SessionArg(info[0], identity_);
    const int64_t batch = info[2].As<Napi::Number>().Int64Value();
    const int64_t seq = info[3].As<Napi::Number>().Int64Value();
    at::Tensor ids = TokenIdsArg(info[1], batch, seq, d->config().vocabSize);
    at::Tensor mask = OptionalMaskArg(info[4], batch, seq);
    return Queue(env, std::make_unique<CollectJob>(env, d, std::move(stats), std::move(ids), std::move(mask)));
  });
}

Napi::Value ModelWrap::StatsExport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    decoder();
    StatsHandle& session = SessionArg(info[0], identity_);
    Napi::Promise p = Queue(env, std::make_unique<StatsExportJob>(env, session));
    // The job holds the accumulator until it is exported; the session lets go now, so the device
    // memory is freed as soon as the export finishes rather than whenever JS collects the handle.
    session.reset();
    return p;
  });
}

// prune(ff: per layer indices, attn: per layer indices, ffMean: Float64Array[] | null, attnMean)
Napi::Value ModelWrap::Prune(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::shared_ptr<Decoder> d = decoder();
    PruneRequest req;
    req.ff = LayerLists(info[0], "selection.ff");
    req.attn = LayerLists(info[1], "selection.attn");
    req.ffMean = LayerMeans(info[2]);
    req.attnMean = LayerMeans(info[3]);
    return Queue(env, std::make_unique<PruneJob>(env, d, prune_, std::move(req)));
  });
}

Napi::Value ModelWrap::Restore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return Queue(env, std::make_unique<RestoreJob>(env, decoder(), prune_)); });
}

Napi::Value ModelWrap::Masks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    decoder();
    return Queue(env, std::make_unique<MasksJob>(env, prune_));
  });
}

// saveWeights(dir, maxShardBytes, dtype?) -> Promise<{ files, weightMap, totalSize }>
Napi::Value ModelWrap::SaveWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::shared_ptr<Decoder> d = decoder();
    const std::string dir = info[0].As<Napi::String>().Utf8Value();
    const int64_t maxShard = info[1].As<Napi::Number>().Int64Value();
    if (maxShard <= 0) throw Error(code::kInvalidArgument, "maxShardBytes must be positive");
    std::optional<at::ScalarType> dtype;
    if (info.Length() > 2 && info[2].IsString()) dtype = ParseDtype(info[2].As<Napi::String>().Utf8Value());
    // plan (optional): [{ file, names: [...] }], the files to write and their tensors.
    std::vector<std::pair<std::string, std::vector<std::string>>> plan;
    if (info.Length() > 3 && info[3].IsArray()) {
      Napi::Array entries = info[3].As<Napi::Array>();
      for (uint32_t i = 0; i < entries.Length(); ++i) {
        Napi::Object e = entries.Get(i).As<Napi::Object>();
        const std::string file = e.Get("file").As<Napi::String>().Utf8Value();
        if (file.empty() || file.find('/') != std::string::npos || file[0] == '.') {
          throw Error(code::kInvalidArgument, "saveWeights: plan file names must be plain file names");
        }
        Napi::Array names = e.Get("names").As<Napi::Array>();
        std::vector<std::string> list;
        for (uint32_t j = 0; j < names.Length(); ++j) list.push_back(names.Get(j).As<Napi::String>().Utf8Value());
        plan.emplace_back(file, std::move(list));
      }
    }
    return Queue(env, std::make_unique<SaveWeightsJob>(env, d, dir, maxShard, dtype, std::move(plan)));
  });
}

}  // namespace excise
