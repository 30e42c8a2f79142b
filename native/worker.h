// The per-model job queue: one native thread per model runs its jobs in order, so calls on one model
// are serialized natively and never block Node's thread pool. A job copies its inputs into plain
// C++ members on the JS thread, computes in Execute() on the model thread (no N-API calls there),
// and converts its result in OnOK() back on the JS thread (the sharp pattern).
#pragma once
#include <napi.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "errors.h"

namespace excise {

class Job {
 public:
  explicit Job(Napi::Env env) : deferred_(Napi::Promise::Deferred::New(env)) {}
  virtual ~Job() = default;

  virtual void Execute() = 0;                   // model thread; must not touch N-API
  virtual Napi::Value OnOK(Napi::Env env) = 0;  // JS thread

  Napi::Promise Promise() const { return deferred_.Promise(); }
  // Keeps a JS object (the model) alive until the job has settled.
  void KeepAlive(Napi::Object obj) { keepAlive_ = Napi::Persistent(obj); }

 private:
  friend class JobQueue;
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference keepAlive_;
  std::optional<ErrorInfo> error_;
};

class JobQueue {
 public:
  explicit JobQueue(Napi::Env env);
  ~JobQueue();  // finishes queued jobs, then joins the thread
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // JS thread. Returns the job's promise.
  Napi::Promise Push(Napi::Env env, std::unique_ptr<Job> job);

 private:
  static void Settle(Napi::Env env, Napi::Function, JobQueue* queue, Job* job);
  using Tsfn = Napi::TypedThreadSafeFunction<JobQueue, Job, &JobQueue::Settle>;
  void Run();

  Tsfn tsfn_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool stop_ = false;
  size_t pending_ = 0;  // JS thread only: jobs pushed and not yet settled
  std::thread thread_;
};

}  // namespace excise
