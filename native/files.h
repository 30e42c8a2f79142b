// Opening and reading the files a model folder holds, never blocking and never reading without end:
// a FIFO without a writer under a file's name would block the open, a device (/dev/zero) would read
// forever. Used by config.json and the safetensors reader (weights, shards, the shard index).
#pragma once
#include <cstdint>
#include <string>

namespace excise {

// Which codes a caller's failures carry: a file that does not exist, and one that cannot be used
// (not a regular file, too large, unreadable).
struct FileCodes {
  const char* missing;
  const char* invalid;
};

// A read-only descriptor of a regular file. Checked before opening (stat never blocks) and again on
// the descriptor (the path may have changed in between); O_NONBLOCK keeps even that race from hanging.
int OpenRegularFile(const std::string& path, FileCodes codes);

// The whole of a regular file of at most maxBytes.
std::string ReadRegularFile(const std::string& path, uint64_t maxBytes, FileCodes codes);

}  // namespace excise
