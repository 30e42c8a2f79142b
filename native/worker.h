// The per-model job queue: one native thread per model runs its jobs in order, so calls on one model
// are serialized natively and never block Node's thread pool. A job copies its inputs into plain
// C++ members on the JS thread, computes in Execute() on the model thread (no N-API calls there),
// and converts its result in OnOK() back on the JS thread (the sharp pattern).
//
// Shutdown. Node tears an environment down (process exit, a worker thread ending) by running the
// environment's cleanup hooks newest first, then closing handles and finalizing wrapped objects in
// no particular order. A thread-safe function may already be gone when a model's finalizer runs,
// so the queue stops itself in a cleanup hook of its own, registered after its thread-safe
// function's (hence run before it): it lets the running job finish, drops the jobs not started,
// joins its thread and releases the thread-safe function while it is still valid. The destructor
// does the same when a model is collected earlier, and nothing once the hook has run.
//
// process.exit() skips that teardown: it calls exit(), which runs static destructors (LibTorch's
// among them) while model threads may still be running jobs that use them. So before exit() every
// queue's thread is stopped and joined, each running job allowed to finish: from the main thread's
// process 'exit' event (lib/native.ts calls stopModelThreadsForExit), and from an atexit handler
// as a second line (it runs before the destructors of statics made before the first model).
#pragma once
#include <c10/core/Device.h>
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
  // Environment teardown: the environment frees its references itself; deleting one now could
  // touch freed memory, so let go of it without a call into N-API.
  void ForgetJsReferences() { keepAlive_.SuppressDestruct(); }

  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference keepAlive_;
  std::optional<ErrorInfo> error_;
};

class JobQueue {
 public:
  // device: the model's; the model thread makes it the current device for every job (a device
  // guard per job), so ATen's current device and stream are the model's, whatever thread ran last.
  JobQueue(Napi::Env env, c10::Device device);
  ~JobQueue();  // JS thread: Shutdown() unless the environment's cleanup already did
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // JS thread. Returns the job's promise; the job runs after every job pushed before it.
  Napi::Promise Push(Napi::Env env, std::unique_ptr<Job> job);

 private:
  static void Settle(Napi::Env env, Napi::Function, JobQueue* queue, Job* job);
  using Tsfn = Napi::TypedThreadSafeFunction<JobQueue, Job, &JobQueue::Settle>;
  void Run();
  // JS thread, once: lets the running job finish, drops queued ones, joins the thread, releases
  // the thread-safe function. After it, Push() rejects with ERR_MODEL_DISPOSED.
  void Shutdown(bool environmentTeardown);
  static void OnEnvironmentCleanup(void* self);
  // Any thread, idempotent: stops the model thread after its running job and joins it. Returns the
  // jobs that never started.
  std::deque<std::unique_ptr<Job>> StopThread();

 public:
  // Any thread: stops every queue of the process (see above).
  static void StopAllAtExit();

 private:

  napi_env env_;
  c10::Device device_;
  Tsfn tsfn_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool stop_ = false;
  std::mutex joinMutex_;   // the JS thread and the atexit handler may both stop the thread
  bool shutDown_ = false;  // JS thread only
  size_t pending_ = 0;     // JS thread only: jobs pushed and not yet settled
  std::thread thread_;
};

}  // namespace excise
