// Log: the durable, partitioned event log between the collector and the processor.
//
// Records are opaque byte strings appended to a partition and numbered by Offset from 0.
// Append returns once the records are durable per the configured fsync policy; a reader
// sees only durable records, in order, each verified by its checksum (a corrupt record
// is an error, never served). Log and LogReader are thread-safe for Append/Open/Commit;
// one LogReader is used by one thread at a time.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "core/status.h"
#include "core/types.h"

namespace portrait {

struct LogEntry {
  PartitionId partition;
  std::string_view payload;
};

struct LogRecord {
  Offset offset;
  std::string_view payload;  // valid until the reader's next Read
};

class LogReader {
 public:
  virtual ~LogReader() = default;
  // Appends to `out` up to about `max_bytes` of durable records from the current position
  // (at least one if any is available); leaves `out` empty when there is nothing new.
  virtual Status Read(size_t max_bytes, std::vector<LogRecord>* out) = 0;
  virtual Offset position() const = 0;  // the next offset Read returns
};

struct PartitionOffset {
  PartitionId partition;
  Offset next;  // the next offset to read
};

// Records of one partition, in offset order, as handed out by GroupMember::Poll.
struct PartitionBatch {
  PartitionId partition;
  std::vector<LogRecord> records;
};

// One member of a consumer group: the group spreads the log's partitions over its
// members, in this process and others, and moves them when members come or go. A member
// is used by one thread.
class GroupMember {
 public:
  virtual ~GroupMember() = default;
  // Waits up to `wait` for records of the partitions this member holds and appends up to
  // about `max_records` of them to `out`, grouped by partition. A partition taken away
  // during the call is left out entirely; its new holder starts where the group's start
  // rule says. Payloads stay valid until the next Poll.
  virtual Status Poll(size_t max_records, std::chrono::milliseconds wait, std::vector<PartitionBatch>* out) = 0;
  // Records in the group that these partitions are done up to `next` (after the work
  // is applied); asynchronous, for lag monitoring and as the fallback start.
  virtual Status Commit(std::span<const PartitionOffset> done) = 0;
  // The partitions held now.
  virtual std::vector<PartitionId> Assignment() const = 0;
};

// Where a member starts reading a partition it is given: an offset, or nullopt for the
// group's committed offset (the oldest kept record when there is none).
using GroupStart = std::function<std::optional<Offset>(PartitionId)>;

class Log {
 public:
  virtual ~Log() = default;
  virtual int partitions() const = 0;
  // Appends entries, keeping the order of entries within a partition; returns when they
  // are durable. `first_offsets`, if given, receives the offset of each entry.
  virtual Status Append(std::span<const LogEntry> entries, std::vector<Offset>* offsets = nullptr) = 0;
  virtual Result<std::unique_ptr<LogReader>> OpenReader(PartitionId p, Offset from) = 0;
  // Offset the next durable record of `p` will get (the readable end).
  virtual Offset EndOffset(PartitionId p) const = 0;
  // The oldest offset still kept (retention deletes whole segments from the front).
  virtual Offset StartOffset(PartitionId p) const = 0;
  // Deletes old segments of `p` — never the active one, never one holding an offset at or
  // past `keep_from` — while they are older than `max_age_ms` (0 = no limit) or the
  // partition is larger than `max_bytes` (0 = no limit). Returns the bytes deleted.
  virtual Result<uint64_t> Trim(PartitionId p, Offset keep_from, int64_t max_age_ms, uint64_t max_bytes) = 0;
  virtual Status CommitOffset(std::string_view consumer, PartitionId p, Offset next) = 0;
  // Offset(0) when the consumer never committed.
  virtual Result<Offset> CommittedOffset(std::string_view consumer, PartitionId p) = 0;
  // A counter that moves whenever new records become readable; WaitForData blocks until
  // it differs from `seen` or the timeout passes (or the log closes).
  virtual uint64_t DataEpoch() const = 0;
  virtual void WaitForData(uint64_t seen, std::chrono::milliseconds timeout) = 0;
  // Consumer groups (backends that spread partitions over processes, such as Kafka).
  // The embedded log has none: there one process owns every partition.
  virtual bool HasGroups() const { return false; }
  virtual Result<std::unique_ptr<GroupMember>> JoinGroup(const std::string& group, GroupStart start) {
    return Status::FailedPrecondition("this log backend has no consumer groups");
  }
  // Makes everything appended durable and stops background work; Append fails after it.
  virtual void Close() = 0;
};

// Calls `fn(offset, payload)` for the newest `limit` records of partition `p`, oldest
// first (for listing tools such as the failed and dead-letter topics).
Status ReadTail(Log& log, PartitionId p, size_t limit, const std::function<Status(Offset, std::string_view)>& fn);

// Opens topic `topic` of the log backend named in `config` under `data_dir`, with
// `partitions` partitions (0 = the configured count).
Result<std::unique_ptr<Log>> MakeLog(const LogConfig& config, const std::string& data_dir, const std::string& topic,
                                     int partitions, MetricsRegistry* metrics, bool read_only = false);

}  // namespace portrait
