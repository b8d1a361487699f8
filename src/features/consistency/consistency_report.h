// The online/offline consistency report: for every tag computed in both layers, the
// profile store's value (real time) against the batch's snapshot of day D.
//
// Users compared: every user of the snapshot of D (its newest version), and every user with
// an archived event on D that the snapshot lacks (so `extra`, a value only real time has,
// is found among the users active on D; the store cannot list its users cheaply, so a user
// known only to real time and inactive on D is not seen). With `sample` < 1 only users whose
// uid hashes below the share are compared, the same users in every run. Each user's tags are
// compared by CompareTag (compare.h) and summed per tag.
//
// Reads only: the snapshot, the archive of D and the profile store (GetMany, in chunks).
// Errors: a bad date, no complete snapshot of D, no tag in both layers, a store or snapshot
// read failure. Thread-compatible: one call at a time per report.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "core/status.h"
#include "features/consistency/compare.h"
#include "store/profile_store.h"
#include "store/snapshot.h"

namespace portrait {

struct ConsistencyOptions {
  double sample = 1.0;  // (0, 1]
  size_t examples = 5;  // worst mismatches per tag
};

struct ConsistencyReport {
  std::string date;
  SnapshotInfo snapshot;
  double sample = 1;
  uint64_t snapshot_users = 0;      // users of the snapshot compared (after sampling)
  uint64_t archive_only_users = 0;  // users with an event on D, not in the snapshot (after sampling)
  bool archive_read = false;        // false: the archive had no file of D (only snapshot users compared)
  double seconds = 0;
  std::vector<TagTally> tags;  // by name
  std::string ToJson() const;
};

// Whether `uid` is in a deterministic sample of share `sample` (a hash of the uid).
bool InSample(std::string_view uid, double sample);

Result<ConsistencyReport> RunConsistency(const Config& config, ProfileStore* store, const std::string& date,
                                         const ConsistencyOptions& options);

// Sets portrait_consistency_users{tag,outcome} and portrait_consistency_compared_users{tag},
// and counts the report.
void RecordConsistency(const ConsistencyReport& report, MetricsRegistry* metrics);

}  // namespace portrait
