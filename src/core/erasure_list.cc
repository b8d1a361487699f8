#include "core/erasure_list.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace portrait {
namespace {

// A line is `erased_at TAB hex(id) LF`: ids may hold any byte.
std::string EncodeLine(std::string_view id, TimestampMs at) {
  static const char* kHex = "0123456789abcdef";
  std::string line = std::to_string(at);
  line.push_back('\t');
  for (unsigned char c : id) {
    line.push_back(kHex[c >> 4]);
    line.push_back(kHex[c & 15]);
  }
  line.push_back('\n');
  return line;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool DecodeLine(std::string_view line, ErasureList::Entry* e) {
  size_t tab = line.find('\t');
  if (tab == std::string_view::npos || tab == 0) return false;
  TimestampMs at = 0;
  for (size_t i = 0; i < tab; ++i) {
    if (line[i] < '0' || line[i] > '9') return false;
    at = at * 10 + (line[i] - '0');
  }
  std::string_view hex = line.substr(tab + 1);
  if (hex.size() % 2) return false;
  e->id.clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = HexValue(hex[i]), lo = HexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    e->id.push_back(static_cast<char>(hi * 16 + lo));
  }
  e->erased_at = at;
  return true;
}

}  // namespace

std::string DefaultErasureListPath(const std::string& data_dir) { return data_dir + "/erasures.list"; }

Result<std::unique_ptr<ErasureList>> ErasureList::Open(std::string path) {
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("erasure list " + path + ": " + std::strerror(errno));
  ::close(fd);
  std::unique_ptr<ErasureList> list(new ErasureList(std::move(path)));
  RETURN_IF_ERROR(list->Refresh());
  return list;
}

Status ErasureList::ReadFrom(uint64_t offset) {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("erasure list " + path_ + ": " + std::strerror(errno));
  std::string data;
  char buf[64 << 10];
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(offset + data.size()));
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::IOError("erasure list " + path_ + ": " + std::strerror(err));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t start = 0;
  Entry e;
  for (size_t nl; (nl = data.find('\n', start)) != std::string::npos; start = nl + 1) {
    if (!DecodeLine(std::string_view(data).substr(start, nl - start), &e)) continue;
    TimestampMs& newest = newest_[e.id];
    newest = std::max(newest, e.erased_at);
    entries_.push_back(e);
  }
  read_bytes_ = offset + start;  // a torn last line is read again once it is whole
  return Status::Ok();
}

Status ErasureList::Refresh() {
  std::lock_guard lk(mu_);
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) return Status::IOError("erasure list " + path_ + ": " + std::strerror(errno));
  if (static_cast<uint64_t>(st.st_size) == read_bytes_) return Status::Ok();
  if (static_cast<uint64_t>(st.st_size) < read_bytes_) {  // replaced: read it whole again
    entries_.clear();
    newest_.clear();
    read_bytes_ = 0;
  }
  return ReadFrom(read_bytes_);
}

Status ErasureList::Add(std::span<const std::string> ids, TimestampMs erased_at) {
  RETURN_IF_ERROR(Refresh());
  std::lock_guard lk(mu_);
  std::string lines;
  for (const std::string& id : ids) {
    auto it = newest_.find(id);
    if (it != newest_.end() && it->second >= erased_at) continue;
    lines += EncodeLine(id, erased_at);
  }
  if (lines.empty()) return Status::Ok();
  int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return Status::IOError("erasure list " + path_ + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < lines.size()) {
    ssize_t n = ::write(fd, lines.data() + done, lines.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Status::IOError("erasure list " + path_ + ": " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  int rc = ::fdatasync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::IOError("erasure list " + path_ + " sync: " + std::strerror(err));
  return ReadFrom(read_bytes_);
}

std::optional<TimestampMs> ErasureList::ErasedAt(std::string_view id) const {
  std::lock_guard lk(mu_);
  auto it = newest_.find(id);
  if (it == newest_.end()) return std::nullopt;
  return it->second;
}

bool ErasureList::ErasedAfter(std::string_view uid, std::string_view device, TimestampMs ts) const {
  std::lock_guard lk(mu_);
  for (std::string_view id : {uid, device}) {
    if (id.empty()) continue;
    auto it = newest_.find(id);
    if (it != newest_.end() && ts < it->second) return true;
  }
  return false;
}

bool ErasureList::empty() const {
  std::lock_guard lk(mu_);
  return entries_.empty();
}

std::vector<ErasureList::Entry> ErasureList::Entries() const {
  std::lock_guard lk(mu_);
  return entries_;
}

}  // namespace portrait
