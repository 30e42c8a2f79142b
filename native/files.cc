#include "files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "errors.h"

namespace excise {

int OpenRegularFile(const std::string& path, FileCodes codes) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) throw Error(codes.missing, path + ": file not found (" + std::strerror(errno) + ")");
    throw Error(codes.invalid, path + ": cannot open (" + std::strerror(errno) + ")");
  }
  if (!S_ISREG(st.st_mode)) throw Error(codes.invalid, path + ": not a regular file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw Error(codes.invalid, path + ": cannot open (" + std::strerror(errno) + ")");
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(codes.invalid, path + ": not a regular file");
  }
  return fd;
}

std::string ReadRegularFile(const std::string& path, uint64_t maxBytes, FileCodes codes) {
  const int fd = OpenRegularFile(path, codes);
  std::string text;
  try {
    struct stat st;
    if (::fstat(fd, &st) != 0) throw Error(codes.invalid, path + ": cannot stat (" + std::strerror(errno) + ")");
    if (static_cast<uint64_t>(st.st_size) > maxBytes) {
      throw Error(codes.invalid, path + ": " + std::to_string(st.st_size) + " bytes, more than the " + std::to_string(maxBytes) +
                                     " such a file may have");
    }
    text.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < text.size()) {
      const ssize_t n = ::pread(fd, text.data() + got, text.size() - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Error(codes.invalid, path + ": cannot read (" + std::strerror(errno) + ")");
      if (n == 0) break;  // shrank while read
      got += static_cast<size_t>(n);
    }
    text.resize(got);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return text;
}

}  // namespace excise
