// The features of portrait, in the order they run: their stages see each batch in this
// order (lazy loading adds its Actions before the rules that look at the batch's pending
// Actions), and they stop in reverse. Adding a feature is one line in registry.cc.
#pragma once

#include <memory>
#include <vector>

#include "features/feature.h"

namespace portrait {

std::vector<std::unique_ptr<Feature>> MakeFeatures();

}  // namespace portrait
