// Archiver: keeps every accepted event, by event-time hour, in an open layout that Hive,
// Spark or DuckDB read as an external table:
//   DIR/date=YYYY-MM-DD/hour=HH/part-<partition>-<first offset>.ndjson.gz
// one JSON event per line (the API's form). It consumes the events topic as its own
// consumer ("archive"), gathers up to flush_seconds, writes each hour's part file under a
// temporary name, fsyncs, renames, and only then commits its offsets: a crash re-reads from
// the last commit and rewrites the same part names, so no event is archived twice or lost.
// Late events land in their own (older) hour; a backfill of old events is archived like
// any other. Retention deletes part files written longer ago than [archive] retention (the
// time the archive received the data, not the events' time).
//
// Several processes (the Kafka log) share one archive directory (a shared file system):
// each archives the partitions it holds, its offsets kept in the group (Log::CommitOffset).
//
// Erasure: with an ErasureList, events of an erased identity older than its erasure are
// not archived, and the part files already holding such events are rewritten without
// them (in the archiver's thread, under a temporary name, fsynced, renamed), batched so
// that an erasure waits at most `erase_within_ms` (0: at the next pass). How far the
// rewrites got is kept per partition in DIR/_erasures/applied-<partition>.
//
// Compaction (compaction.h): with [archive] compact, once a minute the same thread merges
// the part files of each closed hour into one per partition, under the partitions' leases,
// after the flushes and the erasure rewrite of its pass.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <map>
#include <set>
#include <mutex>
#include <string>
#include <thread>

#include "core/config.h"
#include "core/erasure_list.h"
#include "core/event.h"
#include "core/metrics.h"
#include "log/archive/compaction.h"
#include "log/log.h"
#include "log/repeats.h"

namespace portrait {

class Archiver {
 public:
  static constexpr const char* kConsumer = "archive";

  Archiver(const ArchiveConfig& config, std::string dir, Log* log, MetricsRegistry* metrics);
  ~Archiver();
  // Before Start. `erasures` outlives the archiver.
  void SetErasures(ErasureList* erasures, int64_t erase_within_ms) {
    erasures_ = erasures;
    erase_within_ms_ = erase_within_ms;
  }
  // Several processes sharing the archive (the Kafka log): each archives, and rewrites for
  // erasures, only the partitions `held` says this process holds now (the processor's
  // share), and drops repeats like the processor (log/repeats.h, `repeat_window` records
  // per partition) so the archive holds what the profiles applied. Before Start.
  void ShareWithGroup(std::function<std::vector<PartitionId>()> held, size_t repeat_window);
  Status Start();
  // Rewrites the part files holding events of erased identities; returns how many files
  // were rewritten. Run by the archiver's thread when erasures are due.
  Result<size_t> RewriteErased();
  Result<size_t> RewriteErased(const std::vector<PartitionId>& partitions);  // of these only
  void Stop();  // writes what is gathered, then returns
  // One compaction pass over the held (and leased) partitions' closed hours. Run by the
  // archiver's thread; call it only while that is not running (tests, tools).
  CompactionStats CompactClosedHours();
  // Tests: called between the steps of a compaction (false stops it there). Before Start.
  void SetCompactionHook(std::function<bool(CompactionStep)> hook) { compactor_.SetHook(std::move(hook)); }

  // "date=2023-11-14/hour=22"
  static std::string HourPath(TimestampMs ts);

 private:
  void Run();
  Status FlushPartition(PartitionId p, Offset first, Offset next);
  void DeleteExpiredHours();
  void RewriteIfDue();
  void CompactIfDue();

  ArchiveConfig config_;
  std::string dir_;
  Log* log_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, std::string> pending_;  // hour path -> NDJSON lines (current partition)
  Counter* archived_;
  Counter* files_;
  Counter* errors_;
  Counter* rewritten_;
  Counter* expired_files_;
  Counter* erased_dropped_;
  Counter* compacted_files_;
  Counter* compacted_hours_;
  ArchiveCompactor compactor_;
  std::chrono::steady_clock::time_point last_compaction_{};
  std::vector<PartitionId> Held() const;

  ErasureList* erasures_ = nullptr;
  std::function<std::vector<PartitionId>()> held_;  // empty: every partition
  std::unique_ptr<RepeatFilter> repeats_;
  std::map<int, int64_t> last_commit_ms_;  // by partition: this process's last offset commit
  Counter* repeats_skipped_;
  std::set<std::string> dropped_hours_logged_;  // hours whose drops were logged once
  int64_t erase_within_ms_ = 0;
};

}  // namespace portrait
