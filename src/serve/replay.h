// Replay: rebuilds every profile (and the event history) from the log, from an offset or
// an event time on. The store's derived state is erased first and the processor runs from
// the chosen point to the end of the log, so running it twice gives the same profiles
// (including counters). Needs the data directory to itself (no server running on it).
#pragma once

#include <optional>

#include "core/config.h"
#include "core/metrics.h"
#include "core/progress.h"
#include "core/status.h"

namespace portrait {

struct ReplayFrom {
  std::optional<int64_t> offset;       // the same offset in every partition (clamped to its end)
  std::optional<TimestampMs> time;     // per partition, the first record with event time >= this
};

struct ReplayStats {
  int64_t records = 0;                 // log records replayed, all partitions
};

// `progress` (optional) hears log records processed of stats->records.
Status Replay(const Config& config, const ReplayFrom& from, MetricsRegistry* metrics, ReplayStats* stats,
              const ProgressFn& progress = nullptr);

}  // namespace portrait
