// The consistency feature's config section, [consistency] (consistency_config.cc).
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace portrait {

// [consistency]: the online/offline consistency report of profiles. `portrait consistency
// --date D`, `GET /v1/consistency?date=D`, or daily in `portrait serve` at `at` for
// yesterday, after the batch has made yesterday's snapshot.
struct ConsistencyConfig {
  std::string at;         // "HH:MM" (UTC): `portrait serve` reports on yesterday daily; empty = off
  double sample = 1.0;    // share of users compared, by a hash of the uid (0 < sample <= 1)
  int examples = 5;       // worst mismatches kept per tag
  // Where the batch writes its snapshots: [batch] snapshot_dir (the offline feature's key,
  // read here too, so it is set once), else DATA/snapshots.
  std::string snapshot_dir;
};

// The snapshot directory of `config` (its data_dir as it is now, after --data-dir).
std::string ConsistencySnapshotDir(const Config& config);

std::vector<ConfigSection> ConsistencyConfigSections();

}  // namespace portrait
