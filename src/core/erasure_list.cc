#include "core/erasure_list.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/coding.h"
#include "core/files.h"

namespace portrait {
namespace {

// A line is `erased_at TAB hex(id) LF`: ids may hold any byte.
std::string EncodeLine(std::string_view id, TimestampMs at) {
  std::string line = std::to_string(at);
  line.push_back('\t');
  AppendHex(id, &line);
  line.push_back('\n');
  return line;
}

bool DecodeLine(std::string_view line, ErasureList::Entry* e) {
  size_t tab = line.find('\t');
  if (tab == std::string_view::npos || tab == 0) return false;
  TimestampMs at = 0;
  for (size_t i = 0; i < tab; ++i) {
    if (line[i] < '0' || line[i] > '9') return false;
    at = at * 10 + (line[i] - '0');
  }
  if (!DecodeHex(line.substr(tab + 1), &e->id)) return false;
  e->erased_at = at;
  return true;
}

}  // namespace

std::string DefaultErasureListPath(const std::string& data_dir) { return data_dir + "/erasures.list"; }

Result<std::unique_ptr<ErasureList>> ErasureList::Open(std::string path) {
  RETURN_IF_ERROR(CreateFileIfMissing(path).WithContext("erasure list"));
  std::unique_ptr<ErasureList> list(new ErasureList(std::move(path)));
  RETURN_IF_ERROR(list->Refresh());
  return list;
}

Status ErasureList::ReadFrom(uint64_t offset) {
  std::string data;
  RETURN_IF_ERROR(ReadFileFrom(path_, offset, &data).WithContext("erasure list"));
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
  RETURN_IF_ERROR(AppendSynced(path_, lines).WithContext("erasure list"));
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
