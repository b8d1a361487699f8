// The features of portrait, in the order they run: their stages see each batch in this
// order (lazy loading adds its Actions before the rules that look at the batch's pending
// Actions), and they stop in reverse. Adding a feature is one line in registry.cc.
#pragma once

#include <memory>
#include <vector>

#include "features/feature.h"

namespace portrait {

std::vector<std::unique_ptr<Feature>> MakeFeatures();

// Every feature's config sections, and the config loaders that read them with core's.
const std::vector<ConfigSection>& FeatureConfigSections();
Result<Config> LoadConfig(const std::string& path);
Result<Config> ParseConfig(std::string_view toml_text, const std::string& name);

}  // namespace portrait
