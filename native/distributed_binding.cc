// The process group for JavaScript (lib/native.ts -> lib/distributed.ts). Rendezvous and collectives
// block on the network, so each runs on the libuv pool: arguments are copied into plain C++ data on
// the JS thread, Run() sees only that, and the result is converted back in OnOK.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "distributed.h"
#include "errors.h"

namespace excise {
namespace {

using GroupRef = std::shared_ptr<ProcessGroup>;

class GroupWorker : public Napi::AsyncWorker {
 public:
  GroupWorker(Napi::Env env, const char* name) : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Settle(Napi::Env env) { return env.Undefined(); }

  void Execute() final {
    try {
      Run();
    } catch (...) {
      error_ = CurrentExceptionInfo();
      SetError(error_.message);
    }
  }
  void OnOK() final {
    try {
      deferred_.Resolve(Settle(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(MakeJsError(Env(), CurrentExceptionInfo()).Value());
    }
  }
  void OnError(const Napi::Error&) final { deferred_.Reject(MakeJsError(Env(), error_).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  ErrorInfo error_;
};

Napi::Value Queue(Napi::Env env, GroupWorker* worker) {
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // deletes itself once settled
  return promise;
}

Napi::Value Rejected(Napi::Env env, const ErrorInfo& error) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(MakeJsError(env, error).Value());
  return deferred.Promise();
}

GroupRef GroupOf(const Napi::Value& v) {
  if (!v.IsExternal()) throw Error(code::kInvalidArgument, "distributed: not a process group handle");
  GroupRef* ref = v.As<Napi::External<GroupRef>>().Data();
  if (ref == nullptr || !*ref) throw Error(code::kInvalidArgument, "distributed: the process group is closed");
  return *ref;
}

class InitWorker : public GroupWorker {
 public:
  InitWorker(Napi::Env env, ProcessGroupSettings settings) : GroupWorker(env, "excise:distInit"), settings_(std::move(settings)) {}

 private:
  void Run() override { group_ = std::make_shared<ProcessGroup>(settings_); }
  Napi::Value Settle(Napi::Env env) override {
    return Napi::External<GroupRef>::New(env, new GroupRef(std::move(group_)), [](Napi::Env, GroupRef* ref) { delete ref; });
  }
  ProcessGroupSettings settings_;
  GroupRef group_;
};

class AllReduceWorker : public GroupWorker {
 public:
  AllReduceWorker(Napi::Env env, GroupRef group, std::vector<double> data)
      : GroupWorker(env, "excise:distAllReduce"), group_(std::move(group)), data_(std::move(data)) {}

 private:
  void Run() override { group_->AllReduceSum(data_); }
  Napi::Value Settle(Napi::Env env) override {
    auto out = Napi::Float64Array::New(env, data_.size());
    std::copy(data_.begin(), data_.end(), out.Data());
    return out;
  }
  GroupRef group_;
  std::vector<double> data_;
};

class GroupCallWorker : public GroupWorker {
 public:
  enum class Call { kBarrier, kReportFailure, kClose };
  GroupCallWorker(Napi::Env env, GroupRef group, Call call, std::string message = "")
      : GroupWorker(env, "excise:distCall"), group_(std::move(group)), call_(call), message_(std::move(message)) {}

 private:
  void Run() override {
    switch (call_) {
      case Call::kBarrier: group_->Barrier(); break;
      case Call::kReportFailure: group_->ReportFailure(message_); break;
      case Call::kClose: group_->Close(); break;
    }
  }
  GroupRef group_;
  Call call_;
  std::string message_;
};

int IntField(Napi::Object o, const char* name) {
  Napi::Value v = o.Get(name);
  if (!v.IsNumber()) throw Error(code::kInvalidArgument, std::string("distInit: ") + name + " must be a number");
  return v.As<Napi::Number>().Int32Value();
}

}  // namespace

// distInit({ rank, worldSize, masterAddr, masterPort, timeoutMs, socketInterface }) -> Promise<handle>
Napi::Value DistInitJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    if (info.Length() < 1 || !info[0].IsObject()) throw Error(code::kInvalidArgument, "distInit: expected a settings object");
    Napi::Object o = info[0].As<Napi::Object>();
    ProcessGroupSettings s;
    s.rank = IntField(o, "rank");
    s.worldSize = IntField(o, "worldSize");
    s.masterPort = IntField(o, "masterPort");
    s.masterAddr = o.Get("masterAddr").ToString().Utf8Value();
    s.timeoutMs = static_cast<int64_t>(o.Get("timeoutMs").ToNumber().DoubleValue());
    if (o.Has("socketInterface") && o.Get("socketInterface").IsString()) s.socketInterface = o.Get("socketInterface").As<Napi::String>().Utf8Value();
    return Queue(env, new InitWorker(env, std::move(s)));
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    return Rejected(env, CurrentExceptionInfo());
  }
}

// distAllReduceSum(handle, Float64Array) -> Promise<Float64Array> (a new array: the sum over ranks)
Napi::Value DistAllReduceSumJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    GroupRef group = GroupOf(info[0]);
    if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      throw Error(code::kInvalidArgument, "distAllReduceSum: expected a Float64Array");
    }
    auto arr = info[1].As<Napi::Float64Array>();
    std::vector<double> data(arr.Data(), arr.Data() + arr.ElementLength());
    return Queue(env, new AllReduceWorker(env, std::move(group), std::move(data)));
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    return Rejected(env, CurrentExceptionInfo());
  }
}

// distCall(handle, 'barrier' | 'reportFailure' | 'close', message?) -> Promise<void>
Napi::Value DistCallJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    GroupRef group = GroupOf(info[0]);
    std::string call = info.Length() > 1 ? info[1].ToString().Utf8Value() : "";
    std::string message = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
    GroupCallWorker::Call which;
    if (call == "barrier") which = GroupCallWorker::Call::kBarrier;
    else if (call == "reportFailure") which = GroupCallWorker::Call::kReportFailure;
    else if (call == "close") which = GroupCallWorker::Call::kClose;
    else throw Error(code::kInvalidArgument, "distCall: unknown call '" + call + "'");
    return Queue(env, new GroupCallWorker(env, std::move(group), which, std::move(message)));
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    return Rejected(env, CurrentExceptionInfo());
  }
}

// distPeerFailure(handle) -> string | null: what the heartbeat noticed about the peers (no waiting).
Napi::Value DistPeerFailureJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    GroupRef group = GroupOf(info[0]);
    std::string failure = group->PeerFailure();
    if (failure.empty()) return env.Null();
    return Napi::String::New(env, failure);
  });
}

}  // namespace excise
