// The channels feature's config section, [channels] (channels_config.cc).
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace portrait {

// [channels]: new users per (product, channel, event-time hour). A user is new for a product
// at the first event of (product, uid); devices before login count by device_id until an
// event carries both. `portrait calibrate --date D` (or the schedule) recomputes a day from
// the archive and replaces the served figures of that day.
struct ChannelsConfig {
  bool enabled = true;
  std::string default_product = "default";  // for events without a product
  std::string calibrate_at;                 // "HH:MM" (UTC): `portrait serve` calibrates yesterday daily; empty = off
  size_t filter_mb = 256;                   // per processor worker: first-seen filter before the store is asked
  int calibrate_threads = 2;                // archive partitions a calibration reads in parallel
};

std::vector<ConfigSection> ChannelsConfigSections();

}  // namespace portrait
