#include "features/consistency/consistency_config.h"

#include "core/config_check.h"

namespace portrait {
namespace {

// A share in (0, 1]; an integer 1 is accepted too.
Property<ConsistencyConfig> SampleProperty() {
  return {"sample", "share of users compared, chosen by a hash of the uid (0 < sample <= 1)", false,
          [](ConfigChecker& c, const toml::table& t, std::string_view what, ConsistencyConfig* s) {
            const toml::node* n = t.get("sample");
            if (!n) return;
            std::optional<double> v = n->value<double>();
            if (!v || !(*v > 0 && *v <= 1)) {
              c.Error(*n, std::string(what) + ": \"sample\" must be a number above 0 and at most 1 (0.01 = one user in 100)");
              return;
            }
            s->sample = *v;
          }};
}

const Property<ConsistencyConfig> kProperties[] = {
    ClockProperty<ConsistencyConfig>("at", &ConsistencyConfig::at, "04:00",
                                     "`portrait serve` compares yesterday's real-time tags with yesterday's snapshot "
                                     "daily at this time (UTC; after [batch] at); empty = off"),
    SampleProperty(),
    IntProperty<ConsistencyConfig>("examples", &ConsistencyConfig::examples, 0, 100,
                                   "worst mismatches shown per tag"),
};

}  // namespace

std::string ConsistencySnapshotDir(const Config& c) {
  const std::string& dir = c.section<ConsistencyConfig>().snapshot_dir;
  return dir.empty() ? c.data_dir + "/snapshots" : dir;
}

std::vector<ConfigSection> ConsistencyConfigSections() {
  return {
      {"consistency", false, false,
       [](ConfigChecker& c, const toml::node* n, Config* cfg) {
         ReadProperties<ConsistencyConfig>(c, *n->as_table(), "[consistency]", kProperties,
                                           &cfg->mutable_section<ConsistencyConfig>());
       }},
      // Only where the snapshots are; [batch] itself is read and checked by the offline feature.
      {"batch", false, false,
       [](ConfigChecker&, const toml::node* n, Config* cfg) {
         if (const toml::table* t = n->as_table()) {
           if (auto dir = t->get_as<std::string>("snapshot_dir")) cfg->mutable_section<ConsistencyConfig>().snapshot_dir = dir->get();
         }
       }},
      {"", false, true,
       [](ConfigChecker& c, const toml::node*, Config* cfg) {
         const ConsistencyConfig& k = cfg->section<ConsistencyConfig>();
         if (!k.at.empty() && cfg->log.backend == "kafka" && k.snapshot_dir.empty()) {
           c.ErrorNoPos("[consistency] at needs [batch] snapshot_dir with [log] backend = \"kafka\": the directory every "
                        "process mounts, where the batch writes the snapshots the report reads");
         }
       }},
  };
}

}  // namespace portrait
