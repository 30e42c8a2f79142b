#include "worker.h"

namespace excise {

JobQueue::JobQueue(Napi::Env env) {
  tsfn_ = Tsfn::New(env, "excise-model", 0, 1, this);
  tsfn_.Unref(env);  // an idle model must not keep the process alive
  thread_ = std::thread([this] { Run(); });
}

JobQueue::~JobQueue() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  tsfn_.Release();
}

Napi::Promise JobQueue::Push(Napi::Env env, std::unique_ptr<Job> job) {
  Napi::Promise promise = job->Promise();
  if (pending_++ == 0) tsfn_.Ref(env);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return promise;
}

void JobQueue::Run() {
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      job->Execute();
    } catch (...) {
      job->error_ = CurrentExceptionInfo();
    }
    Job* raw = job.release();
    // If the environment is shutting down the call fails; the job (holding JS references) is then
    // deliberately leaked rather than destroyed off the JS thread.
    (void)tsfn_.NonBlockingCall(raw);
  }
}

void JobQueue::Settle(Napi::Env env, Napi::Function, JobQueue* queue, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) return;  // the environment is tearing down
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
  if (--queue->pending_ == 0) queue->tsfn_.Unref(env);
}

}  // namespace excise
