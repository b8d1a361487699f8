#include "features/registry.h"

#include "features/channels/channels.h"
#include "features/consistency/consistency.h"
#include "features/decisions/decisions_feature.h"
#include "features/identity/identity.h"
#include "features/offline/offline.h"
#include "features/profiles/profiles.h"
#include "features/segments/segments.h"

namespace portrait {

std::vector<std::unique_ptr<Feature>> MakeFeatures() {
  std::vector<std::unique_ptr<Feature>> f;
  f.push_back(MakeOfflineFeature());    // lazy loading: offline rows join the batch first
  f.push_back(MakeProfilesFeature());   // tag rules, logged Actions, history
  f.push_back(MakeIdentityFeature());   // devices linked to users; the person a reader sees
  f.push_back(MakeChannelsFeature());   // new users per channel
  f.push_back(MakeDecisionsFeature());  // rules over the batch's events and pending Actions
  f.push_back(MakeSegmentsFeature());   // audiences over the profiles the batch leaves
  f.push_back(MakeConsistencyFeature());  // real-time tags against the batch's snapshots (reads only)
  return f;
}

const std::vector<ConfigSection>& FeatureConfigSections() {
  static const std::vector<ConfigSection> sections = [] {
    std::vector<ConfigSection> all;
    for (const auto& f : MakeFeatures()) {
      for (ConfigSection& s : f->ConfigSections()) all.push_back(std::move(s));
    }
    return all;
  }();
  return sections;
}

Result<Config> LoadConfig(const std::string& path) { return LoadConfigWith(path, FeatureConfigSections()); }

Result<Config> ParseConfig(std::string_view toml_text, const std::string& name) {
  return ParseConfigWith(toml_text, name, FeatureConfigSections());
}

}  // namespace portrait
