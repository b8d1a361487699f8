// The embedded log: per partition, append-only segment files of checksummed records.
//
// Layout: DIR/p-NNNN/<20-digit base offset>.log, records framed as
//   [u32 payload length][u32 checksum][u64 offset][payload]
// with the checksum (XXH3 of the payload, seeded by offset and length) covering all
// three. Opening recovers each partition's last segment up to its last intact record,
// truncates a torn tail and reports what it dropped. Durability is group-committed by
// one syncer thread: `always` syncs as soon as anything is pending, `batch` waits up to
// the max delay to gather more, `none` never waits for the disk.
#pragma once

#include <memory>
#include <string>

#include "log/log.h"

namespace portrait {

struct SegmentLogOptions {
  std::string dir;
  std::string topic = "events";  // for metric labels
  // Inspect a log another process may be writing: nothing is created or truncated (a torn
  // tail is only left unread) and Append fails.
  bool read_only = false;
  int partitions = 8;
  FsyncPolicy fsync = FsyncPolicy::kBatch;
  int fsync_max_delay_ms = 2;
  uint64_t segment_bytes = 64u << 20;
};

// What opening found: bytes dropped from torn tails, per partition (for logs and tests).
struct SegmentLogRecovery {
  uint64_t dropped_bytes = 0;
  std::vector<std::string> notes;
};

Result<std::unique_ptr<Log>> OpenSegmentLog(const SegmentLogOptions& options, MetricsRegistry* metrics,
                                            SegmentLogRecovery* recovery = nullptr);

}  // namespace portrait
