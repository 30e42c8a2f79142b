// The JS-facing Model object: owns a Decoder and its job queue. Every heavy method queues a Job.
#pragma once
#include <napi.h>

#include <memory>

#include "decoder.h"
#include "prune.h"
#include "train.h"
#include "worker.h"

namespace excise {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Wraps a loaded decoder in a new JS object (JS thread).
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<Decoder> decoder);

  explicit ModelWrap(const Napi::CallbackInfo& info);
  ~ModelWrap() override;

  // The decoder, or ERR_MODEL_DISPOSED.
  std::shared_ptr<Decoder> decoder() const;
  // Queues a job on this model's thread; the job keeps this object alive until it settles.
  Napi::Promise Queue(Napi::Env env, std::unique_ptr<Job> job);

 private:
  Napi::Value Config(const Napi::CallbackInfo& info);
  Napi::Value SourceConfig(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value TensorNames(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  // Statistics (stats.h): a session accumulates on the device across collectBatch calls.
  Napi::Value StatsBegin(const Napi::CallbackInfo& info);
  Napi::Value CollectBatch(const Napi::CallbackInfo& info);
  Napi::Value StatsExport(const Napi::CallbackInfo& info);
  // Pruning (prune.h) and saving.
  Napi::Value Prune(const Napi::CallbackInfo& info);
  Napi::Value Restore(const Napi::CallbackInfo& info);
  Napi::Value Masks(const Napi::CallbackInfo& info);
  Napi::Value SaveWeights(const Napi::CallbackInfo& info);
  // Evaluation (eval.h): one batch's sums.
  Napi::Value EvaluateBatch(const Napi::CallbackInfo& info);
  // Per-token log-likelihoods at target positions (logprobs.h): continuation scoring (model.score),
  // multiple-choice scoring, membership inference.
  Napi::Value TokenLogprobs(const Napi::CallbackInfo& info);
  // Zeroes the pruned slices again after training moved them (prune.h).
  Napi::Value RezeroPruned(const Napi::CallbackInfo& info);
  // ‖W_out[:, i]‖₂ of every layer's FF and attention output projections (column_norms.h).
  Napi::Value OutputColumnNorms(const Napi::CallbackInfo& info);
  // Training (train.h).
  Napi::Value TrainerCreate(const Napi::CallbackInfo& info);
  Napi::Value TrainStep(const Napi::CallbackInfo& info);
  Napi::Value TrainerClose(const Napi::CallbackInfo& info);

  std::shared_ptr<Decoder> decoder_;
  // The decoder's address, kept after dispose: handles (sessions, trainers) are checked against it.
  const Decoder* identity_ = nullptr;
  // Trainers made on this model: dispose() closes them, so none keeps the weights alive.
  std::vector<std::weak_ptr<Trainer>> trainers_;
  std::shared_ptr<PruneState> prune_;
  std::unique_ptr<JobQueue> queue_;
};

// Module-level functions (registered by addon.cc).
Napi::Value LoadModelJs(const Napi::CallbackInfo& info);          // (dir, device, dtype, devices?) -> Promise<Model>
Napi::Value CreateRandomModelJs(const Napi::CallbackInfo& info);  // (configJson, device, dtype, seed, devices?)

}  // namespace excise
