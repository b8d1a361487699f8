// The offline feature: T+1 snapshots and their lazy loading into profiles.
//
// - `portrait batch` (and `[batch] at` in `portrait serve`) computes offline profiles from
//   the archive (batch.h); `portrait snapshot import` loads a warehouse export; both write
//   immutable snapshots with a completion log (store/snapshot.h).
// - Its stage loads a user's offline row on a trigger event ([lazy_load]) into the same
//   batch write as the events (lazy_loader.h).
// - Erasure: snapshots are immutable, so an erased user's rows stay in the snapshots that
//   hold them until those are retired ([batch] keep); the erasure list masks them (no row
//   of a snapshot completed before the erasure is loaded) and the batch skips the user's
//   archived events older than the erasure. The load mark lives in the profile, erased
//   with it.
// Route: GET /v1/snapshots.
#pragma once

#include <memory>

#include "features/feature.h"

namespace portrait {

std::unique_ptr<Feature> MakeOfflineFeature();

}  // namespace portrait
