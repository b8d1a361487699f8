// The segments feature's config: `[[segments]]` (reloadable) and `[segment_changes]`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config.h"

namespace portrait {

// One condition over a tag of the profile.
struct SegmentCondition {
  std::string tag;
  std::string key;                  // a map tag's key (its value is the number compared)
  std::optional<double> at_least;   // the tag's number (counts for lists, sets and maps)
  std::optional<double> at_most;
  std::optional<std::string> equals;  // a string tag's value (or a map key's string value)
  int64_t within_ms = 0;            // the tag was written (event time) less than this ago
};

struct SegmentDef {
  std::string name;
  bool any = false;  // `match = "any"`: one condition suffices; default all
  std::vector<SegmentCondition> when;
  std::string ToJson() const;  // the definition as the routes show it
};

// [[segments]] and [segment_changes].
struct SegmentsConfig {
  std::vector<SegmentDef> segments;
  std::string webhook;            // segment changes are POSTed here too (through the retry queue)
  int webhook_timeout_ms = 5000;
  std::string webhook_ca_file;    // PEM CAs for an https:// webhook; empty = the system's
  int64_t recheck_interval_ms = 1000;  // how often members whose time conditions lapse are checked
};

std::vector<ConfigSection> SegmentsConfigSections();

}  // namespace portrait
