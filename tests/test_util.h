// Helpers shared by the unit tests: small tag configs and actions.
#pragma once

#include <string>

#include "core/action.h"
#include "core/config.h"
#include "fusion/fusion.h"

namespace portrait::testing_util {

// A click list like the production one: sorted by et, dedup on (item_id, et).
inline TagConfig ClickList(size_t size_limit) {
  TagConfig cfg;
  cfg.name = "clicks";
  cfg.type = TagType::kList;
  cfg.size_limit = size_limit;
  cfg.sort_by = "et";
  cfg.dedup_by = {"item_id", "et"};
  return cfg;
}

inline Action Click(const TagConfig& cfg, int item, int64_t et, TimestampMs ts = 0,
                    Source source = Source::kRealtime) {
  Action a;
  a.uid = "u";
  a.tag = cfg.name;
  a.op = OpCode::kListRpush;
  a.ts = ts ? ts : et;
  a.source = source;
  std::vector<std::pair<std::string, std::string>> fields = {{"item_id", std::to_string(item)},
                                                             {"et", std::to_string(et)}};
  a.items.push_back(fusion::MakeListItem(fields, cfg, a.ts, source).value());
  return a;
}

}  // namespace portrait::testing_util
