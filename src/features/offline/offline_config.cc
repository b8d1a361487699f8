#include "features/offline/offline_config.h"

#include "core/config_check.h"

namespace portrait {
namespace {

const Property<BatchConfig> kBatchProperties[] = {
    ClockProperty<BatchConfig>("at", &BatchConfig::at, "02:00",
                               "`portrait serve` runs the batch for yesterday daily at this time (UTC); empty = off"),
    StringProperty<BatchConfig>("snapshot_dir", &BatchConfig::snapshot_dir, "a directory",
                                "where snapshots are written; default DATA/snapshots"),
    IntProperty<BatchConfig>("keep", &BatchConfig::keep, 1, 1000, "complete snapshots kept; older ones are retired"),
    IntProperty<BatchConfig>("threads", &BatchConfig::threads, 1, 256, "archive partitions computed in parallel"),
};

const Property<LazyLoadConfig> kLazyLoadProperties[] = {
    BoolProperty<LazyLoadConfig>("enabled", &LazyLoadConfig::enabled, "load offline profiles on trigger events"),
};

void ParseLazyLoad(ConfigChecker& c, const toml::table& t, const Config& cfg, LazyLoadConfig* l) {
  ReadProperties<LazyLoadConfig>(c, t, "[lazy_load]", kLazyLoadProperties, l, {"triggers"});
  const toml::node* n = t.get("triggers");
  if (!n) return;
  l->triggers.clear();
  const toml::array* arr = n->as_array();
  if (!arr) c.Error(*n, "[lazy_load]: triggers must be an array of event type names");
  for (size_t i = 0; arr && i < arr->size(); ++i) {
    auto s = (*arr)[i].value<std::string>();
    if (!s || !cfg.events.count(*s)) {
      c.Error((*arr)[i], "[lazy_load]: triggers[" + std::to_string(i) + "] must name a declared event type");
    } else {
      l->triggers.push_back(*s);
    }
  }
}

}  // namespace

std::string SnapshotDir(const Config& c) {
  const std::string& dir = c.section<BatchConfig>().snapshot_dir;
  return dir.empty() ? c.data_dir + "/snapshots" : dir;
}

std::vector<ConfigSection> OfflineConfigSections() {
  return {
      {"batch", false, false,
       [](ConfigChecker& c, const toml::node* n, Config* cfg) {
         ReadProperties<BatchConfig>(c, *n->as_table(), "[batch]", kBatchProperties, &cfg->mutable_section<BatchConfig>());
       }},
      {"lazy_load", false, false,
       [](ConfigChecker& c, const toml::node* n, Config* cfg) {
         ParseLazyLoad(c, *n->as_table(), *cfg, &cfg->mutable_section<LazyLoadConfig>());
       }},
      // Across processes the snapshots must be where every process reads them.
      {"", false, true,
       [](ConfigChecker& c, const toml::node*, Config* cfg) {
         const LazyLoadConfig& lazy = cfg->section<LazyLoadConfig>();
         bool used = !cfg->section<BatchConfig>().at.empty() || (lazy.enabled && !lazy.triggers.empty());
         if (cfg->log.backend == "kafka" && used && cfg->section<BatchConfig>().snapshot_dir.empty()) {
           c.ErrorNoPos("[batch] snapshot_dir = \"...\" must be set with [log] backend = \"kafka\": a directory every "
                        "process mounts (a shared file system), where each computes its partitions' part of the daily "
                        "snapshot and lazy loading reads them. Or remove [batch] at and set [lazy_load] enabled = false");
         }
       }},
  };
}

}  // namespace portrait
