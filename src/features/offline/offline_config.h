// The offline feature's config sections, [batch] and [lazy_load] (offline_config.cc).
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace portrait {

// [batch]: T+1 snapshots. `portrait batch --date D` (or the schedule in `portrait serve`)
// writes DIR/date=D/v=N; the completion log DIR/completed.ndjson lists the whole ones.
struct BatchConfig {
  std::string at;               // "HH:MM" (UTC): `portrait serve` runs the batch for yesterday daily; empty = off
  std::string snapshot_dir;     // default DATA/snapshots
  int keep = 3;                 // complete snapshots kept; older ones are retired and deleted
  int threads = 2;              // archive partitions computed in parallel
};

// [lazy_load]: on a trigger event the processor loads the user's offline profile from the
// newest complete snapshot dated before the event's day, once per snapshot version.
struct LazyLoadConfig {
  bool enabled = true;
  std::vector<std::string> triggers = {"APPSTART", "init"};
};

// Where the snapshots live: [batch] snapshot_dir, else DATA/snapshots.
std::string SnapshotDir(const Config& config);

std::vector<ConfigSection> OfflineConfigSections();

}  // namespace portrait
