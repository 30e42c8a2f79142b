// A c10d process group for data-parallel runs: rendezvous through LibTorch's TCPStore (rank 0 hosts
// it), collectives through c10d's ProcessGroupGloo (inside libtorch_cpu). No N-API here: the
// binding (distributed_binding.cc) calls these from worker threads.
//
// What crosses ranks is small and lives in host memory: the float64 statistics sums once per
// collection and the per-batch evaluation counts, so Gloo over TCP serves CPU and GPU runs alike.
//
// Failure: a collective that fails (a peer's connection closed, or no progress within the timeout)
// is diagnosed through the store before it is reported: every rank bumps a heartbeat counter from a
// thread of its own, so the ranks whose counter stopped are the ones that died or hang, and a rank
// that failed with an error leaves its message under a key. The error names them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace c10d {
class Store;
class ProcessGroupGloo;
}  // namespace c10d

namespace excise {

// The process group's error codes (also in ErrorCode, lib/errors.ts). Kept here rather than in
// errors.h so that adding them does not recompile every native file.
namespace code {
inline constexpr const char* kRendezvous = "ERR_RENDEZVOUS";
inline constexpr const char* kRankFailed = "ERR_RANK_FAILED";
}  // namespace code

struct ProcessGroupSettings {
  int rank = 0;
  int worldSize = 1;
  std::string masterAddr = "127.0.0.1";
  int masterPort = 29500;
  // Rendezvous and every collective: a peer silent for this long is reported as failed.
  int64_t timeoutMs = 600000;
  // Network interface for Gloo's sockets (GLOO_SOCKET_IFNAME); empty: by the host name, or the
  // loopback when masterAddr is a loopback address.
  std::string socketInterface;
};

class ProcessGroup {
 public:
  // Rendezvous: blocks until every rank has joined (ERR_RENDEZVOUS after timeoutMs).
  explicit ProcessGroup(const ProcessGroupSettings& settings);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  const ProcessGroupSettings& settings() const { return settings_; }

  // In place: data becomes the element-wise sum over ranks (float64). ERR_RANK_FAILED on failure.
  void AllReduceSum(std::vector<double>& data);
  void Barrier();
  // Leaves this rank's error message in the store, for the peers' diagnosis (best effort).
  void ReportFailure(const std::string& message);
  // Stops the heartbeat and closes the connections (peers still in a collective see them close).
  void Close();
  // What the heartbeat thread has noticed about the peers between collectives (a rank whose
  // heartbeat stopped for kPeerSilence, a rank that reported a failure, the store gone), or "".
  // Lets a rank stop between batches instead of at its next collective.
  std::string PeerFailure();

 private:
  std::string DiagnoseFailure(const std::string& cause);
  void HeartbeatLoop();
  [[noreturn]] void ThrowPeerFailure(const std::string& what, const std::string& cause);

  ProcessGroupSettings settings_;
  struct Handles;  // c10d objects (intrusive pointers), kept out of this header
  std::unique_ptr<Handles> handles_;
  std::mutex collectiveMutex_;  // one collective at a time, in call order
  std::thread heartbeat_;
  std::mutex heartbeatMutex_;
  std::condition_variable heartbeatWake_;
  bool stopping_ = false;
  bool closed_ = false;
  std::mutex failureMutex_;
  std::string peerFailure_;
};

}  // namespace excise
