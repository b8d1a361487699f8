// The segments feature: audiences declared over tags (`[[segments]]`) whose members update
// themselves.
//
// After every batch a user's Actions touch a tag a segment reads, the user's membership of
// every segment is evaluated again over the profile the batch leaves (the store's profile
// with the batch's Actions applied), before the batch's checkpoint is written: entering and
// leaving are appended to the `segments` topic and stored per user and per segment. Time
// lapses (`within`, a tag's ttl, a list's max_age under at_least) are re-checked for members
// at the time they can first change. Membership is a function of the profile and the time,
// so it does not depend on the order events arrived in.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/config.h"
#include "features/feature.h"
#include "features/segments/segments_config.h"
#include "store/profile_store.h"

namespace portrait {

struct Membership {
  bool member = false;
  TimestampMs recheck_at = 0;  // a member's first moment its time conditions may lapse; 0 = none
};

// Whether `profile` belongs to `def` at `now`.
Membership EvaluateSegment(const SegmentDef& def, const Profile& profile, const TagRegistry& tags, TimestampMs now);
// The tags the segments read, each once, sorted.
std::vector<std::string> SegmentTags(std::span<const SegmentDef> defs);

std::unique_ptr<Feature> MakeSegmentsFeature();

}  // namespace portrait
