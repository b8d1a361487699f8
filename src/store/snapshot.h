// Offline snapshots: immutable per-user offline profiles, and the completion log that says
// which of them are whole.
//
// A snapshot is a read-only RocksDB database under DIR/date=YYYY-MM-DD/v=N, keyed by uid,
// or (made by the batch, per log partition) one such database per partition under
// v=N/part-P with v=N/PARTS holding the partition count, a uid looked up in its partition's;
// whose values are the user's offline tags as one JSON object ({"clicks": [...], ...}, each
// value in the form the profile API renders it). A SnapshotWriter builds it in a temporary
// directory; Commit() syncs it, takes the next version for its date under an exclusive lock,
// renames it into place and only then appends its row to DIR/completed.ndjson (fsynced):
//   {"date":"2026-11-20","version":1,"users":812,"bytes":90211,"completed_at":"...","source":"batch"}
// A writer that dies before that leaves only a temporary directory, which no reader opens
// and the next writer deletes. Readers (SnapshotCatalog) only open snapshots with a row.
// Retiring a snapshot appends {"date":...,"version":...,"retired_at":...} and deletes it.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dates.h"
#include "core/status.h"
#include "core/types.h"

namespace rocksdb {
class DB;
}

namespace portrait {

// The last millisecond of `date`: the time offline values are stamped with.
TimestampMs SnapshotAsOf(std::string_view date);

struct SnapshotInfo {
  std::string date;
  int version = 0;
  uint64_t users = 0;
  uint64_t bytes = 0;
  std::string completed_at;
  std::string source;      // "batch" or "import"
  std::string retired_at;  // empty while it can be read

  std::string Mark() const;  // "date/version"
  std::string ToJson() const;
};

// The completion log, newest row last; retired rows are folded into the rows they retire.
// A torn last line (a writer killed mid-append) is ignored.
Result<std::vector<SnapshotInfo>> ReadCompletionLog(const std::string& dir);

class SnapshotWriter {
 public:
  // Starts a snapshot of `date` under `dir` (created when missing).
  static Result<std::unique_ptr<SnapshotWriter>> Create(const std::string& dir, std::string date, std::string source);
  // Starts the part of log partition `partition` of a snapshot of `date` made per partition
  // (the batch): FinishPart puts it beside the other finished parts, and CommitParts makes
  // them one snapshot once every partition's part is there.
  static Result<std::unique_ptr<SnapshotWriter>> CreatePart(const std::string& dir, std::string date, int partition);
  ~SnapshotWriter();  // without Commit()/FinishPart(): deletes what was written

  // Thread-safe. `profile_json` is the user's offline tags as a JSON object.
  Status Put(std::string_view uid, std::string_view profile_json);
  // Makes the snapshot whole and visible; then retires all but the newest `keep` snapshots.
  Result<SnapshotInfo> Commit(int keep);
  // Makes the part durable under DIR/date=D/.parts/part-P (replacing an older one).
  Status FinishPart();

 private:
  SnapshotWriter() = default;
  // Create (partition < 0) and CreatePart.
  static Result<std::unique_ptr<SnapshotWriter>> Start(const std::string& dir, std::string date, std::string source,
                                                       int partition);
  Status Open();
  Status Seal();  // flushes, closes and syncs the database at tmp_
  std::string dir_, date_, source_, tmp_;
  int partition_ = -1;
  std::unique_ptr<rocksdb::DB> db_;
  std::atomic<uint64_t> users_{0};
};

// When the finished parts of `date` cover partitions 0..partitions-1: makes them the next
// version of `date` (one completion row, users summed) and retires all but the newest
// `keep`; nullopt while some are missing (named in `missing`). Safe to call from several
// processes at once: one of them commits.
Result<std::optional<SnapshotInfo>> CommitParts(const std::string& dir, const std::string& date, int partitions,
                                                int keep, std::vector<int>* missing);

// Retires all but the newest `keep` complete snapshots of `dir`.
Status RetireSnapshots(const std::string& dir, int keep);

// What readers see: the completion log (re-read when it changes) and open snapshots.
// Thread-safe.
class SnapshotCatalog {
 public:
  explicit SnapshotCatalog(std::string dir);
  ~SnapshotCatalog();

  // Re-reads the completion log if it changed since the last call (a stat otherwise).
  Status Refresh();
  std::vector<SnapshotInfo> List();
  // The newest complete snapshot dated before `day` (that is, day - 1 or older).
  std::optional<SnapshotInfo> NewestBefore(std::string_view day);
  // The newest complete version of the snapshot dated `date`, or nullopt.
  std::optional<SnapshotInfo> NewestOf(std::string_view date);
  // The user's offline profile JSON in snapshot `s`, or nullopt when the user is absent.
  Result<std::optional<std::string>> Lookup(const SnapshotInfo& s, std::string_view uid);
  // Calls fn(uid, profile JSON) for every user of `s` (part by part, in key order within a
  // part); stops at the first error fn returns and returns it.
  using RowFn = std::function<Status(std::string_view uid, std::string_view profile_json)>;
  Status ForEach(const SnapshotInfo& s, const RowFn& fn);
  const std::string& dir() const { return dir_; }

 private:
  // The database holding `uid` in `s`: the snapshot's own, or its part for the uid's
  // partition when it was made per partition.
  Result<std::shared_ptr<rocksdb::DB>> Open(const SnapshotInfo& s, std::string_view uid);
  Result<std::shared_ptr<rocksdb::DB>> OpenPath(const std::string& key, const std::string& path);
  // The partition count of `s` (0 = one database), read once from its PARTS file.
  Result<int> Partitions(const SnapshotInfo& s);

  std::string dir_;
  std::mutex mu_;
  int64_t seen_size_ = -1;
  int64_t seen_mtime_ns_ = -1;
  std::vector<SnapshotInfo> rows_;
  std::map<std::string, std::shared_ptr<rocksdb::DB>> open_;  // by mark, or mark/part-P
  std::map<std::string, int> parts_;                          // by mark: partitions (0 = one database)
};

}  // namespace portrait
