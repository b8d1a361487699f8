// Archive compaction: once an event-time hour has closed ([archive] compact_after past its
// end), the part files of each partition in it are merged into one,
//   DIR/date=D/hour=H/part-<partition>-<lo>-<hi>.ndjson.gz
// which holds every event of the part files of that partition and hour whose offsets are
// within [lo, hi] (archive_files.h: listing skips the files it covers). Steps, each durable
// before the next: the merged file is written under a temporary name and fsynced, with
// its directory; it is renamed into place and the directory fsynced (the one atomic step:
// before it readers read the inputs, after it the merged file and not the inputs); the
// inputs are removed [archive] compact_grace later (a reader that listed them before the
// rename can still read them). A crash at any point leaves either a .tmp (removed by the
// next pass, the inputs still counted) or a complete merged file whose covered inputs the
// next pass removes. So no reader of ListArchive ever counts an event twice or misses it.
//
// Only part files from before the archive's committed offset are merged: one from the
// offset on may still be rewritten under the same name after a crash. A late event for a
// compacted hour lands in a new part file, merged with the merged file at the next pass.
// The caller holds the partitions' archive leases, and runs compaction on the thread that
// flushes and rewrites for erasures (archiver.h): they never race. Not thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/erasure_list.h"
#include "core/status.h"
#include "core/types.h"

namespace portrait {

struct CompactionOptions {
  int gzip_level = 1;
  int64_t after_ms = 2 * 3'600'000;  // an hour is closed this long after its end
  int64_t grace_ms = 600'000;        // merged-away inputs are removed this long after the merge
};

// The points between the steps, for tests that stop a compaction there (as a kill -9 would).
enum class CompactionStep { kMergedWritten, kMergedVisible, kInputRemoved };

struct CompactionStats {
  size_t hours = 0;    // merged files written (one per partition and hour compacted)
  size_t files = 0;    // part files merged into them
  size_t removed = 0;  // merged-away inputs removed (also leftovers of a crash)
  size_t errors = 0;   // hours left as they were (an unreadable input, a failed write)
  bool stopped = false;  // the hook asked to stop
};

class ArchiveCompactor {
 public:
  ArchiveCompactor(std::string dir, CompactionOptions options) : dir_(std::move(dir)), options_(options) {}
  // Events of erased identities from before their erasure are left out of merged files.
  // `erasures` outlives the compactor; null: none.
  void SetErasures(const ErasureList* erasures) { erasures_ = erasures; }
  // Called after each step; returning false stops the pass right there.
  void SetHook(std::function<bool(CompactionStep)> hook) { hook_ = std::move(hook); }

  // One pass over the closed hours of the partitions in `committed` (partition -> the
  // archive's committed offset there), as of `now`.
  CompactionStats Compact(const std::map<int, int64_t>& committed, TimestampMs now);
  // Removes now, grace or not, the merged-away inputs of these partitions (in every hour):
  // before an erasure rewrite, which rewrites only what readers read. Returns how many.
  size_t RemoveCovered(const std::vector<int>& partitions);

 private:
  // One hour directory, its part file names of partition `p`.
  void CompactHour(const std::string& hour, int p, int64_t committed, const std::vector<std::string>& names,
                   TimestampMs now, CompactionStats* stats);
  bool Step(CompactionStep s, CompactionStats* stats);

  std::string dir_;
  CompactionOptions options_;
  const ErasureList* erasures_ = nullptr;
  std::function<bool(CompactionStep)> hook_;
  std::map<std::string, TimestampMs> covered_since_;  // covered input -> when first seen covered
};

// True when an archived line (EventToJson's form) is an event of an identity erased after it.
bool ErasedLine(std::string_view line, const ErasureList& erasures);

}  // namespace portrait
