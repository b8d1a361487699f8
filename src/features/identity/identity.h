// The identity feature: profiles follow the person, not the device.
//
// An event with both `uid` and `device_id` links the device to the user. The user keeps
// the devices seen with it (internal set tag `~devices`); the device keeps its owner
// (internal list tag `~owner`, one item, the first link by event time, or with
// `[identity] link = "latest"` the newest). Both are written as Actions with the same
// operators as every tag, so the link does not depend on arrival order or repeats.
//
// A person is assembled when read: `GET /v1/profiles/{id}` resolves a device to its owner
// (`"resolved_from"`) and merges into the user's profile the profiles of every device whose
// owner it is (fusion::MergeState), so a device's events before and after login count for
// the user. Every event is still written once, under the id it was logged by, which is what
// keeps the person exactly-once across partitions and processes: nothing is moved or copied
// when a link appears. Erasing the user erases its devices' profiles (Stage::LinkedIds).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "features/feature.h"

namespace portrait {

inline constexpr std::string_view kDevicesTag = "~devices";
inline constexpr std::string_view kOwnerTag = "~owner";

// [identity]
struct IdentityConfig {
  bool enabled = true;        // link devices to users and answer for the person
  bool latest_wins = false;   // link = "latest": a device belongs to its newest login's user
};

std::vector<ConfigSection> IdentityConfigSections();
std::unique_ptr<Feature> MakeIdentityFeature();

}  // namespace portrait
