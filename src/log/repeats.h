// Repeats: drops events whose id was seen shortly before in the same partition, as a pure
// function of the log, so that every process holding a partition drops the same records.
//
// Collectors drop the repeats they logged themselves; with several processes appending to
// one log (Kafka), a client's retry that lands on another process is logged twice. Events
// are partitioned by their owner, so both copies sit in one partition, and its one holder
// drops the later copy: an event is a repeat when one of the `window` records before it in
// its partition (by position, every kind of record taking a place) is an event with its id.
// A holder that starts at an offset it did not just read (a restart, a partition moved
// here) rebuilds the window by reading the `window` records before it, so the result does
// not depend on who held the partition before or when it crashed.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string_view>
#include <vector>

#include "core/metrics.h"
#include "core/status.h"
#include "core/types.h"
#include "log/log.h"

namespace portrait {

// The ids of the last `capacity` records (0 = a record without an id): a multiset over a
// ring, in a flat open-addressing table at most half full.
class IdWindow {
 public:
  explicit IdWindow(size_t capacity);
  static uint64_t Hash(std::string_view id);
  // Adds the next record's id hash (0 for none); true if the window held it already.
  bool Add(uint64_t h);
  void Clear();
  size_t capacity() const { return ring_.size(); }

 private:
  struct Slot {
    uint64_t h = 0;  // 0 = empty
    uint32_t n = 0;  // how many records of the ring hold it
  };
  size_t Find(uint64_t h) const;  // the slot holding h, or the empty slot where it would go
  void Drop(uint64_t h);

  std::vector<Slot> table_;
  size_t mask_ = 0;
  std::vector<uint64_t> ring_;
  size_t next_ = 0;
  bool full_ = false;
};

class RepeatFilter {
 public:
  // `window` records per partition; `skipped` counts the records dropped.
  RepeatFilter(Log* log, size_t window, Counter* skipped);

  // Removes from `records` (consecutive records of `p`) the events that repeat an id of the
  // window before them.
  Status Filter(PartitionId p, std::vector<LogRecord>* records);
  // Forgets the windows of partitions not in `held` (they moved to another holder).
  void Retain(std::span<const PartitionId> held);

 private:
  struct Partition {
    // The window holds the record being checked too: `window` records before it, plus it.
    explicit Partition(size_t window) : ids(window + 1) {}
    IdWindow ids;
    Offset next{-1};  // the offset after the last record added
  };
  Status Rebuild(PartitionId p, Offset at, Partition* part);

  Log* log_;
  size_t window_;
  Counter* skipped_;
  std::map<int32_t, Partition> partitions_;
};

}  // namespace portrait
