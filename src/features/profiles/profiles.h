// The profiles feature: tag rules turn events into Actions, logged Actions from other
// systems pass through, the event history is kept when [history] is on. Routes: the
// profile API (rendered through the features' ProfileView: the person an id belongs to,
// and what other features add to a profile) and the history.
//
// State (per user, in the profile store): the profile (tags, applied ids, freshness) and
// the history.
#pragma once

#include <memory>
#include <string_view>

#include "features/feature.h"

namespace portrait {

std::unique_ptr<Feature> MakeProfilesFeature();

}  // namespace portrait
