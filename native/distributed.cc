#include "distributed.h"

// c10d's Gloo backend is compiled into libtorch_cpu; these defines expose its declarations (the
// Gloo headers it includes are vendored in native/vendor/gloo).
#ifndef USE_DISTRIBUTED
#define USE_DISTRIBUTED 1
#endif
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <ATen/ATen.h>

#include <exception>
#include <sstream>

#include "errors.h"

namespace excise {

struct ProcessGroup::Handles {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

namespace {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

constexpr auto kHeartbeatPeriod = Millis(200);
// A live rank bumps its counter ~10 times in this window; one whose counter stays put is gone.
constexpr auto kDiagnosisWindow = Millis(2000);
// Between collectives, the heartbeat thread reads the peers' counters every kPeerCheckPeriod; a
// counter unchanged for kPeerSilence means that rank is gone (or stopped). Generous: a live but
// starved process must never be taken for a dead one.
constexpr auto kPeerCheckPeriod = Millis(1000);
constexpr auto kPeerSilence = Millis(10000);

const std::string kJoinedCount = "excise/joined";
std::string JoinedKey(int rank) { return "excise/joined/" + std::to_string(rank); }
std::string HeartbeatKey(int rank) { return "excise/heartbeat/" + std::to_string(rank); }
std::string FailedKey(int rank) { return "excise/failed/" + std::to_string(rank); }

std::string FirstLine(const std::string& s) {
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}

std::string ExceptionText(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return FirstLine(c->what_without_backtrace());
  return FirstLine(e.what());
}

std::string Endpoint(const ProcessGroupSettings& s) { return s.masterAddr + ":" + std::to_string(s.masterPort); }

bool IsLoopback(const std::string& addr) {
  return addr == "localhost" || addr == "::1" || addr.rfind("127.", 0) == 0;
}

c10::intrusive_ptr<c10d::TCPStore> ConnectStore(const ProcessGroupSettings& s, bool server, Millis timeout) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(s.masterPort);
  options.isServer = server;
  options.numWorkers = static_cast<std::size_t>(s.worldSize);
  options.waitWorkers = false;  // joining is counted below, to say who is missing
  options.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(s.masterAddr, options);
}

std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

}  // namespace

ProcessGroup::ProcessGroup(const ProcessGroupSettings& settings) : settings_(settings), handles_(std::make_unique<Handles>()) {
  const auto& s = settings_;
  if (s.worldSize < 1 || s.rank < 0 || s.rank >= s.worldSize) {
    throw Error(code::kInvalidArgument, "distributed: rank " + std::to_string(s.rank) + " is outside world size " + std::to_string(s.worldSize));
  }
  if (s.masterPort < 1 || s.masterPort > 65535) throw Error(code::kInvalidArgument, "distributed: masterPort must be in 1..65535");
  const Millis timeout(s.timeoutMs);
  const auto deadline = Clock::now() + timeout;

  // 1. The store: rank 0 serves it, the others connect (retrying until the timeout).
  try {
    handles_->store = ConnectStore(s, s.rank == 0, timeout);
  } catch (const std::exception& e) {
    if (s.rank == 0) {
      throw Error(code::kRendezvous, "distributed: rank 0 could not serve the rendezvous store on " + Endpoint(s) + ": " + ExceptionText(e));
    }
    throw Error(code::kRendezvous, "distributed: rank " + std::to_string(s.rank) + " could not reach the rendezvous store on " + Endpoint(s) +
                                       " within " + std::to_string(s.timeoutMs) + " ms (is rank 0 running there? MASTER_ADDR / MASTER_PORT): " +
                                       ExceptionText(e));
  }

  // 2. Every rank says it joined; wait for all of them, and name the missing ones on timeout.
  try {
    auto& store = *handles_->store;
    store.set(JoinedKey(s.rank), Bytes("1"));
    store.add(kJoinedCount, 1);
    while (store.add(kJoinedCount, 0) < s.worldSize) {
      if (Clock::now() >= deadline) {
        std::string missing;
        int joined = 0;
        for (int r = 0; r < s.worldSize; ++r) {
          if (store.check({JoinedKey(r)})) {
            ++joined;
          } else {
            missing += (missing.empty() ? "" : ", ") + std::to_string(r);
          }
        }
        throw Error(code::kRendezvous, "distributed: the rendezvous on " + Endpoint(s) + " did not complete within " + std::to_string(s.timeoutMs) +
                                           " ms: " + std::to_string(joined) + " of " + std::to_string(s.worldSize) + " ranks joined (missing: rank " +
                                           missing + ")");
      }
      std::this_thread::sleep_for(Millis(20));
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(code::kRendezvous, "distributed: the rendezvous on " + Endpoint(s) + " failed: " + ExceptionText(e));
  }

  // 3. Gloo: a full mesh of TCP connections, set up through the store.
  try {
    auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    if (!s.socketInterface.empty()) {
      options->devices = {c10d::ProcessGroupGloo::createDeviceForInterface(s.socketInterface)};
    } else if (IsLoopback(s.masterAddr)) {
      options->devices = {c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")};
    } else {
      options->devices = {c10d::ProcessGroupGloo::createDefaultDevice()};
    }
    options->threads = 1;  // collectives are issued one at a time
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("excise/gloo", handles_->store);
    handles_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, s.rank, s.worldSize, options);
  } catch (const std::exception& e) {
    handles_->store.reset();
    throw Error(code::kRendezvous, "distributed: rank " + std::to_string(s.rank) + " could not connect to its peers: " + ExceptionText(e));
  }

  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
}

ProcessGroup::~ProcessGroup() { Close(); }

void ProcessGroup::HeartbeatLoop() {
  // Its own store connection: the store client is not shared across threads.
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    store = ConnectStore(settings_, false, Millis(settings_.timeoutMs));
  } catch (const std::exception&) {
    return;  // the peers will see no heartbeat from this rank only if it is really gone
  }
  const int world = settings_.worldSize;
  std::vector<int64_t> lastSeen(world, -1);
  std::vector<Clock::time_point> lastChange(world, Clock::now());
  auto nextCheck = Clock::now() + kPeerCheckPeriod;
  auto noteFailure = [this](const std::string& what) {
    std::lock_guard<std::mutex> guard(failureMutex_);
    if (peerFailure_.empty()) peerFailure_ = what;
  };
  std::unique_lock<std::mutex> lock(heartbeatMutex_);
  while (!stopping_) {
    lock.unlock();
    try {
      store->add(HeartbeatKey(settings_.rank), 1);
      const auto now = Clock::now();
      if (now >= nextCheck) {
        nextCheck = now + kPeerCheckPeriod;
        for (int r = 0; r < world; ++r) {
          if (r == settings_.rank) continue;
          if (store->check({FailedKey(r)})) {
            auto bytes = store->get(FailedKey(r));
            noteFailure("rank " + std::to_string(r) + " failed: " + std::string(bytes.begin(), bytes.end()));
          }
          const int64_t beats = store->add(HeartbeatKey(r), 0);
          if (beats != lastSeen[r]) {
            lastSeen[r] = beats;
            lastChange[r] = now;
          } else if (now - lastChange[r] > kPeerSilence) {
            noteFailure("rank " + std::to_string(r) + " stopped responding (no heartbeat for " +
                        std::to_string(kPeerSilence.count() / 1000) + " s: it exited, was killed, or is stopped)");
          }
        }
      }
    } catch (const std::exception&) {
      lock.lock();
      if (!stopping_) {
        noteFailure("rank 0 (which serves the rendezvous store on " + Endpoint(settings_) + ") is gone: it exited, was killed, or its machine is unreachable");
      }
      return;
    }
    lock.lock();
    heartbeatWake_.wait_for(lock, kHeartbeatPeriod, [this] { return stopping_; });
  }
}

std::string ProcessGroup::DiagnoseFailure(const std::string& cause) {
  const auto& s = settings_;
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    store = ConnectStore(s, false, std::min(Millis(s.timeoutMs), Millis(3000)));
  } catch (const std::exception&) {
    return "rank 0 (which serves the rendezvous store on " + Endpoint(s) + ") is gone: it exited, was killed, or its machine is unreachable";
  }
  try {
    std::vector<int64_t> before(s.worldSize, 0);
    for (int r = 0; r < s.worldSize; ++r) before[r] = store->add(HeartbeatKey(r), 0);
    std::this_thread::sleep_for(kDiagnosisWindow);
    std::vector<std::string> found;
    for (int r = 0; r < s.worldSize; ++r) {
      if (r == s.rank) continue;
      if (store->check({FailedKey(r)})) {
        auto bytes = store->get(FailedKey(r));
        found.push_back("rank " + std::to_string(r) + " failed: " + std::string(bytes.begin(), bytes.end()));
      } else if (store->add(HeartbeatKey(r), 0) == before[r]) {
        found.push_back("rank " + std::to_string(r) + " stopped responding (it exited, was killed, or hangs)");
      }
    }
    if (found.empty()) return "no peer could be identified as failed";
    std::string text;
    for (const auto& f : found) text += (text.empty() ? "" : "; ") + f;
    return text;
  } catch (const std::exception&) {
    return "rank 0 (which serves the rendezvous store on " + Endpoint(s) + ") is gone: it exited, was killed, or its machine is unreachable";
  }
}

void ProcessGroup::ThrowPeerFailure(const std::string& what, const std::string& cause) {
  const std::string diagnosis = DiagnoseFailure(cause);
  throw Error(code::kRankFailed, "distributed: " + diagnosis + "; rank " + std::to_string(settings_.rank) + " stops (" + what +
                                     " failed: " + cause + ")");
}

void ProcessGroup::AllReduceSum(std::vector<double>& data) {
  std::lock_guard<std::mutex> lock(collectiveMutex_);
  if (closed_ || !handles_->group) throw Error(code::kInvalidArgument, "distributed: the process group is closed");
  if (data.empty()) return;
  // [n] float64, wrapping data (no copy): Gloo reduces into it in place.
  at::Tensor tensor = at::from_blob(data.data(), {static_cast<int64_t>(data.size())}, at::TensorOptions().dtype(at::kDouble));
  std::vector<at::Tensor> tensors{tensor};
  try {
    auto work = handles_->group->allreduce(tensors);
    work->wait();
  } catch (const std::exception& e) {
    ThrowPeerFailure("all-reduce", ExceptionText(e));
  }
}

void ProcessGroup::Barrier() {
  std::lock_guard<std::mutex> lock(collectiveMutex_);
  if (closed_ || !handles_->group) throw Error(code::kInvalidArgument, "distributed: the process group is closed");
  try {
    handles_->group->barrier()->wait();
  } catch (const std::exception& e) {
    ThrowPeerFailure("barrier", ExceptionText(e));
  }
}

void ProcessGroup::ReportFailure(const std::string& message) {
  std::lock_guard<std::mutex> lock(collectiveMutex_);
  if (closed_ || !handles_->store) return;
  try {
    handles_->store->set(FailedKey(settings_.rank), Bytes(message.substr(0, 2000)));
  } catch (const std::exception&) {
    // best effort: the store may be gone already
  }
}

std::string ProcessGroup::PeerFailure() {
  std::lock_guard<std::mutex> guard(failureMutex_);
  return peerFailure_;
}

void ProcessGroup::Close() {
  {
    std::lock_guard<std::mutex> lock(heartbeatMutex_);
    stopping_ = true;
  }
  heartbeatWake_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  std::lock_guard<std::mutex> lock(collectiveMutex_);
  if (closed_) return;
  closed_ = true;
  try {
    handles_->group.reset();
    handles_->store.reset();
  } catch (const std::exception&) {
    // closing after a peer died may report the broken connections; nothing is left to do
  }
}

}  // namespace excise
