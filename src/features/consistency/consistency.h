// The consistency feature: the online/offline consistency report of profiles (README
// "Online/offline consistency"). For every tag computed in both layers it compares the
// real-time value in the profile store with the batch's snapshot of a day, per user.
//
// - No stage and no state of its own: it reads the profile store, the snapshots
//   (store/snapshot.h) and the archive of the day (consistency_report.h, compare.h).
// - `portrait consistency --date D`, GET /v1/consistency?date=D (scope admin: the worst
//   examples hold profile values), and [consistency] at for yesterday in `portrait serve`
//   (with consumer groups, only the process holding partition 0 runs it).
// - Metrics of the last report: portrait_consistency_users{tag,outcome},
//   portrait_consistency_compared_users{tag}, portrait_consistency_equal_ppm{tag}.
#pragma once

#include <memory>

#include "features/feature.h"

namespace portrait {

std::unique_ptr<Feature> MakeConsistencyFeature();

}  // namespace portrait
