#include "worker.h"

#include <c10/core/DeviceGuard.h>

#include "bindings.h"

#include <cstdlib>
#include <set>

namespace excise {
namespace {

// Every live queue of the process (all environments: the main thread and worker threads).
std::mutex gQueuesMutex;
std::set<JobQueue*>& Queues() {
  static auto* queues = new std::set<JobQueue*>();  // never destroyed: atexit handlers use it
  return *queues;
}

}  // namespace

Napi::Value StopModelThreadsForExitJs(const Napi::CallbackInfo& info) {
  JobQueue::StopAllAtExit();
  return info.Env().Undefined();
}

void JobQueue::StopAllAtExit() {
  std::lock_guard<std::mutex> lock(gQueuesMutex);
  for (JobQueue* q : Queues()) {
    // Jobs that never started are leaked: they hold JS references, and this may not be their thread.
    for (auto& job : q->StopThread()) (void)job.release();
  }
}

std::deque<std::unique_ptr<Job>> JobQueue::StopThread() {
  std::deque<std::unique_ptr<Job>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    dropped.swap(queue_);  // not started: nobody is left to receive their results
  }
  cv_.notify_all();
  std::lock_guard<std::mutex> join(joinMutex_);
  if (thread_.joinable()) thread_.join();  // the running job (if any) finishes first
  return dropped;
}

JobQueue::JobQueue(Napi::Env env, c10::Device device) : env_(env), device_(device) {
  tsfn_ = Tsfn::New(env, "excise-model", 0, 1, this);
  tsfn_.Unref(env);  // an idle model must not keep the process alive
  // Registered after the thread-safe function's own hook, so it runs before it (see worker.h).
  NAPI_THROW_IF_FAILED_VOID(env, napi_add_env_cleanup_hook(env, &JobQueue::OnEnvironmentCleanup, this));
  thread_ = std::thread([this] { Run(); });
  // Registered last: a constructor that throws earlier leaves nothing behind.
  std::lock_guard<std::mutex> lock(gQueuesMutex);
  static const bool registered = std::atexit(&JobQueue::StopAllAtExit) == 0;
  (void)registered;
  Queues().insert(this);
}

JobQueue::~JobQueue() {
  {
    std::lock_guard<std::mutex> lock(gQueuesMutex);
    Queues().erase(this);
  }
  if (shutDown_) return;
  napi_remove_env_cleanup_hook(env_, &JobQueue::OnEnvironmentCleanup, this);
  Shutdown(false);
}

void JobQueue::OnEnvironmentCleanup(void* self) { static_cast<JobQueue*>(self)->Shutdown(true); }

void JobQueue::Shutdown(bool environmentTeardown) {
  if (shutDown_) return;
  shutDown_ = true;
  std::deque<std::unique_ptr<Job>> dropped = StopThread();
  for (auto& job : dropped) {
    if (environmentTeardown) job->ForgetJsReferences();
  }
  dropped.clear();
  // Jobs that finished but were not settled yet are handed to Settle() with no environment by the
  // thread-safe function's teardown, which deletes them.
  tsfn_.Release();
}

Napi::Promise JobQueue::Push(Napi::Env env, std::unique_ptr<Job> job) {
  if (shutDown_) throw Error(code::kModelDisposed, "the model's job queue has shut down (the environment is ending)");
  Napi::Promise promise = job->Promise();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Stopped for the process's exit: a job queued now would never run.
    if (stop_) throw Error(code::kModelDisposed, "the process is exiting: the model's thread has stopped");
    queue_.push_back(std::move(job));
  }
  if (pending_++ == 0) tsfn_.Ref(env);
  cv_.notify_one();
  return promise;
}

void JobQueue::Run() {
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_ || queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      // The model's device is current for the job (a no-op on the CPU).
      c10::OptionalDeviceGuard deviceGuard(device_.is_cpu() ? std::nullopt : std::optional<c10::Device>(device_));
      job->Execute();
    } catch (...) {
      job->error_ = CurrentExceptionInfo();
    }
    Job* raw = job.release();
    // The thread-safe function stays valid until Shutdown() has joined this thread. If the call
    // fails (the environment is closing), Settle() is never called for it: the job is leaked
    // rather than destroyed off the JS thread.
    (void)tsfn_.NonBlockingCall(raw);
  }
}

void JobQueue::Settle(Napi::Env env, Napi::Function, JobQueue* queue, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) {
    // The environment is tearing down; the queue itself may already be gone.
    job->ForgetJsReferences();
    return;
  }
  try {
    Napi::HandleScope scope(env);
    if (job->error_) {
      job->deferred_.Reject(MakeJsError(env, *job->error_).Value());
    } else {
      try {
        job->deferred_.Resolve(job->OnOK(env));
      } catch (const Napi::Error& e) {
        job->deferred_.Reject(e.Value());
      } catch (...) {
        job->deferred_.Reject(MakeJsError(env, CurrentExceptionInfo()).Value());
      }
    }
  } catch (...) {
    // The environment can no longer run JS (a worker being terminated): nobody is left to tell.
    // This is a C callback: nothing may escape it.
  }
  if (--queue->pending_ == 0 && !queue->shutDown_) {
    try {
      queue->tsfn_.Unref(env);
    } catch (...) {
    }
  }
}

}  // namespace excise
