// The profiles feature: tag rules turn events into Actions, logged Actions from other
// systems pass through, the event history is kept when [history] is on, and the devices a
// user logged in from are linked to the user (so an erasure of the user covers the
// profiles those devices had before login). Routes: the profile API and the history.
//
// State (per user, in the profile store): the profile (tags, applied ids, freshness), the
// history, and the internal set tag `~devices` (device ids seen with the uid).
#pragma once

#include <memory>
#include <string_view>

#include "features/feature.h"

namespace portrait {

// The internal tag holding a user's linked devices (a set of JSON strings). Names with `~`
// cannot be declared in config, and profile routes never show it.
inline constexpr std::string_view kDevicesTag = "~devices";

std::unique_ptr<Feature> MakeProfilesFeature();

}  // namespace portrait
