// Segment membership beside the profiles: per user (its segments) and per segment (its
// members, in uid order, and the members due for a time re-check). RocksDB
// (rocksdb_segments.cc) or Redis (redis_segments.cc). Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/types.h"
#include "store/profile_store.h"

namespace portrait {

struct SegmentEntry {
  TimestampMs since = 0;       // when the user entered (wall clock)
  TimestampMs recheck_at = 0;  // 0: no time condition can lapse
  bool operator==(const SegmentEntry&) const = default;
};

// One user's change of one segment: entered or kept (`entry` set), or left.
struct SegmentWrite {
  std::string uid;
  std::string segment;
  bool member = false;
  SegmentEntry entry;
  TimestampMs old_recheck_at = 0;  // the entry's re-check time before, to move it
};

class SegmentStore {
 public:
  virtual ~SegmentStore() = default;
  // Each user's segments, in the order given.
  virtual Result<std::vector<std::map<std::string, SegmentEntry>>> Get(std::span<const std::string> uids) = 0;
  // Idempotent: writing the same change again changes nothing.
  virtual Status Write(std::span<const SegmentWrite> writes) = 0;
  // Members after `after` (uid order), at most `limit`.
  virtual Result<std::vector<std::string>> Members(std::string_view segment, std::string_view after, size_t limit) = 0;
  virtual Result<uint64_t> Count(std::string_view segment) = 0;
  // Members whose re-check time is at or before `now`, at most `limit`.
  virtual Result<std::vector<std::string>> Due(std::string_view segment, TimestampMs now, size_t limit) = 0;
  // Forgets the user in every segment (its segments read, then left without a change).
  virtual Status EraseUser(std::string_view uid);
};

// Opens the store beside the profile store's database; null when it keeps neither.
Result<std::unique_ptr<SegmentStore>> OpenSegmentStore(StoreHandles handles);

}  // namespace portrait
