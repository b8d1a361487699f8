// ErasureList: the durable list of erased identities, (id, erased_at), one line each in
// an append-only file (ARCHITECTURE.md "Per-user state, erasure and quarantine").
//
// The processor appends to it when it applies an erasure (before any stage forgets the
// user), so it survives `portrait replay` and everything derived from the log. It is
// consulted where data about a user comes from outside the log: lazy loading (no row of a
// snapshot completed before the erasure comes back), the batch (the user's archived events
// older than the erasure are skipped) and the archive rewrite (part files are rewritten
// without them). It keeps the erased ids themselves, because that is what those checks
// need; nothing else about the user.
//
// Several readers in one process share an instance; other processes (a `portrait batch`
// beside the server) see appends at their next Refresh. Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace portrait {

class ErasureList {
 public:
  struct Entry {
    std::string id;
    TimestampMs erased_at = 0;
  };

  // Opens (creating when missing) the list at `path`; a torn last line is ignored.
  static Result<std::unique_ptr<ErasureList>> Open(std::string path);

  // Appends the ids not yet listed with this or a later time, then syncs the file.
  Status Add(std::span<const std::string> ids, TimestampMs erased_at);
  // Re-reads what other processes appended (a stat when nothing changed).
  Status Refresh();
  // The newest erasure of `id`, if any (as of the last Add or Refresh).
  std::optional<TimestampMs> ErasedAt(std::string_view id) const;
  // True when `uid` or `device` (either may be empty) was erased after `ts`: what the
  // processor, the archive and the batch drop.
  bool ErasedAfter(std::string_view uid, std::string_view device, TimestampMs ts) const;
  bool empty() const;
  // Every entry in file order (the archive rewrite works through it by position).
  std::vector<Entry> Entries() const;
  const std::string& path() const { return path_; }

 private:
  explicit ErasureList(std::string path) : path_(std::move(path)) {}
  Status ReadFrom(uint64_t offset);

  std::string path_;
  mutable std::mutex mu_;
  uint64_t read_bytes_ = 0;
  std::vector<Entry> entries_;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, TimestampMs, Hash, std::equal_to<>> newest_;  // looked up without a copy
};

// Where the erasure list of `data_dir` lives by default.
std::string DefaultErasureListPath(const std::string& data_dir);

}  // namespace portrait
