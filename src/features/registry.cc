#include "features/registry.h"

#include "features/channels/channels.h"
#include "features/decisions/decisions_feature.h"
#include "features/offline/offline.h"
#include "features/profiles/profiles.h"

namespace portrait {

std::vector<std::unique_ptr<Feature>> MakeFeatures() {
  std::vector<std::unique_ptr<Feature>> f;
  f.push_back(MakeOfflineFeature());    // lazy loading: offline rows join the batch first
  f.push_back(MakeProfilesFeature());   // tag rules, logged Actions, history, device links
  f.push_back(MakeChannelsFeature());   // new users per channel
  f.push_back(MakeDecisionsFeature());  // rules over the batch's events and pending Actions
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
