// The batch layer: T+1 offline profiles from the archive, snapshots imported from a
// warehouse, and the daily schedule that runs the batch inside `portrait serve`.
//
// RunBatch computes, for every user, every tag declared with `offline = {...}` from the
// archived events up to the end of `date` (each tag over its own window), by the tag's
// rules of the offline layer and the fusion operators; the value stored is the tag as the
// profile API would render it at the end of that day. The archive is partitioned like the
// log, by user, so each archive partition is computed on its own (`[batch] threads` at a
// time) and only one partition's users are in memory per thread. Each partition becomes its
// own part of the snapshot, so a snapshot can be computed by several runs (processes,
// machines) each taking some partitions; the last one to finish commits it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/daily_schedule.h"
#include "core/metrics.h"
#include "core/progress.h"
#include "core/status.h"
#include "store/snapshot.h"

namespace portrait {

struct BatchStats {
  uint64_t files = 0;        // archive part files read
  uint64_t events = 0;       // events read from them
  uint64_t used = 0;         // events some offline rule took (in a tag's window)
  uint64_t bad_lines = 0;    // archive lines that were not events (skipped, logged)
  double seconds = 0;          // all of it
  double compute_seconds = 0;  // reading the archive and writing the rows, before the commit
  std::vector<int> partitions;   // the partitions this run computed
  std::vector<int> waiting_for;  // partitions whose part no run has finished yet
  SnapshotInfo snapshot;         // version 0 while parts are missing
};

// Computes the parts of `partitions` (empty = all) of the snapshot of `date`; the snapshot
// is committed by the run that finishes its last missing part (store/snapshot.h, CommitParts).
// `progress` (optional) hears archive files read of all to read.
Result<BatchStats> RunBatch(const Config& config, const std::string& date, std::vector<int> partitions = {},
                            const ProgressFn& progress = nullptr);

struct ImportOptions {
  std::string format = "ndjson";           // "ndjson" or "csv" (with a header row)
  std::string uid_column = "uid";
  std::map<std::string, std::string> map;  // column -> tag, for columns not named like their tag
  bool ignore_unknown = false;             // skip columns that are no tag, instead of rejecting the row
  size_t max_bad_rows = 0;                 // more bad rows than this: nothing is written
  char delimiter = ',';
  ProgressFn progress;                     // optional: bytes of the file read, of its size
};

struct ImportStats {
  uint64_t rows = 0;
  uint64_t bad_rows = 0;
  std::vector<std::string> problems;  // "line N: what is wrong", the first 20
  double seconds = 0;
  SnapshotInfo snapshot;
};

// Loads one user per row from `file` into a snapshot of `date`. Each value is checked
// against its tag's load operator (the shape the profile API renders); bad rows are
// counted and named, and past max_bad_rows no snapshot is written.
Result<ImportStats> ImportSnapshot(const Config& config, const std::string& date, const std::string& file,
                                   const ImportOptions& options);

// The batch of `[batch] at`: RunBatch for yesterday over `partitions` (empty = all), logged.
Status RunScheduledBatch(const Config& config, const std::string& date, std::vector<int> partitions = {});

}  // namespace portrait
