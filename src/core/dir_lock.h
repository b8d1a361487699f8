// DirLock: an exclusive advisory lock (flock) on DIR/LOCK, held for the object's
// lifetime, so that two processes never write the same data directory (two servers, or
// `portrait replay` next to a running server). Released by the kernel if the process dies.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"

namespace portrait {

class DirLock {
 public:
  static Result<std::unique_ptr<DirLock>> Acquire(const std::string& dir);
  ~DirLock();

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace portrait
