#include "features/channels/channels_config.h"

#include "core/config_check.h"

namespace portrait {
namespace {

const Property<ChannelsConfig> kProperties[] = {
    BoolProperty<ChannelsConfig>("enabled", &ChannelsConfig::enabled, "count new users per channel in real time"),
    StringProperty<ChannelsConfig>("default_product", &ChannelsConfig::default_product, "a product name",
                                   "the product of events that name none",
                                   [](const std::string& v) {
                                     return v.empty() ? std::string("default_product must not be empty") : std::string();
                                   }),
    ClockProperty<ChannelsConfig>("calibrate_at", &ChannelsConfig::calibrate_at, "03:00",
                                  "`portrait serve` calibrates yesterday daily at this time (UTC); empty = off"),
    IntProperty<ChannelsConfig>("filter_mb", &ChannelsConfig::filter_mb, 1, 1 << 20,
                                "per processor worker: the first-seen filter in front of the registry"),
    IntProperty<ChannelsConfig>("calibrate_threads", &ChannelsConfig::calibrate_threads, 1, 256,
                                "archive partitions a calibration reads in parallel"),
};

}  // namespace

std::vector<ConfigSection> ChannelsConfigSections() {
  return {{"channels", false, false, [](ConfigChecker& c, const toml::node* n, Config* cfg) {
             ReadProperties<ChannelsConfig>(c, *n->as_table(), "[channels]", kProperties,
                                            &cfg->mutable_section<ChannelsConfig>());
           }}};
}

}  // namespace portrait
