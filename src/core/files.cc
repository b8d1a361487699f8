#include "core/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace portrait {

Status CreateFileIfMissing(const std::string& path) {
  std::error_code ec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(path + ": " + std::strerror(errno));
  ::close(fd);
  return Status::Ok();
}

Status AppendSynced(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return Status::IOError(path + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Status::IOError(path + ": " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  int rc = ::fdatasync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::IOError(path + " sync: " + std::strerror(err));
  return Status::Ok();
}

Status ReadFileFrom(const std::string& path, uint64_t offset, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(path + ": " + std::strerror(errno));
  char buf[64 << 10];
  for (uint64_t at = offset;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(at));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Status::IOError(path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
    at += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return Status::Ok();
}

}  // namespace portrait
