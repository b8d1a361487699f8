// EvaluateSegment: a segment's conditions over a profile at a time.
#include <algorithm>
#include <set>

#include "core/json.h"
#include "features/segments/segments.h"
#include "fusion/fusion.h"

namespace portrait {
namespace {

const fusion::TagState* Find(const Profile& p, std::string_view tag) {
  auto it = std::lower_bound(p.tags.begin(), p.tags.end(), tag,
                             [](const TagValue& v, std::string_view name) { return v.name < name; });
  return it != p.tags.end() && it->name == tag ? &it->state : nullptr;
}

// The number a condition compares, and (for lists under max_age) when the count of items
// drops by one below what it is now: fills `lapses[i]` with the time the count falls to i.
double NumberOf(const fusion::TagState& s, const TagConfig& cfg, const SegmentCondition& c, TimestampMs now,
                std::vector<TimestampMs>* ages) {
  switch (s.type) {
    case TagType::kNumber:
      return s.number;
    case TagType::kMap: {
      if (c.key.empty()) return static_cast<double>(s.map.size());
      auto it = s.map.find(c.key);
      return it != s.map.end() && it->second.is_number ? it->second.number : 0;
    }
    case TagType::kSet:
      return static_cast<double>(s.members.size());
    case TagType::kList: {
      if (cfg.max_age_ms <= 0) return static_cast<double>(s.items.size());
      const double oldest = static_cast<double>(now - cfg.max_age_ms);
      size_t n = 0;
      for (const ListItem& it : s.items) {  // ascending by sort
        if (it.sort < oldest) continue;
        ++n;
        ages->push_back(static_cast<TimestampMs>(it.sort) + cfg.max_age_ms);
      }
      return static_cast<double>(n);
    }
    case TagType::kString:
      return 0;
  }
  return 0;
}

// Whether `c` holds, and when it may first stop holding (0: not by time alone).
bool Holds(const SegmentCondition& c, const Profile& p, const TagRegistry& tags, TimestampMs now, TimestampMs* lapse) {
  *lapse = 0;
  const TagConfig* cfg = tags.Find(c.tag);
  const fusion::TagState* s = Find(p, c.tag);
  if (!cfg || !s || !fusion::IsLive(*s, *cfg, now)) return false;
  auto earliest = [&](TimestampMs t) {
    if (t > 0 && (*lapse == 0 || t < *lapse)) *lapse = t;
  };
  if (cfg->ttl_ms > 0) earliest(s->updated_at + cfg->ttl_ms);
  if (c.within_ms > 0) {
    if (s->updated_at + c.within_ms <= now) return false;
    earliest(s->updated_at + c.within_ms);
  }
  if (c.equals) {
    if (s->type == TagType::kString) return s->text == *c.equals;
    auto it = s->map.find(c.key);
    std::string want;
    JsonWriter(&want).String(*c.equals);
    return it != s->map.end() && it->second.json == want;
  }
  if (c.at_least || c.at_most) {
    std::vector<TimestampMs> ages;
    const double v = NumberOf(*s, *cfg, c, now, &ages);
    if (c.at_least && v < *c.at_least) return false;
    if (c.at_most && v > *c.at_most) return false;
    if (c.at_least && !ages.empty()) {
      // The count falls below at_least when the (count - at_least + 1)-th oldest item ages out.
      const double spare = v - *c.at_least;  // items that may go first
      const size_t index = static_cast<size_t>(std::max(0.0, spare));
      if (index < ages.size()) earliest(ages[index]);
    }
  }
  return true;
}

}  // namespace

Membership EvaluateSegment(const SegmentDef& def, const Profile& profile, const TagRegistry& tags, TimestampMs now) {
  Membership m;
  m.member = !def.any;
  for (const SegmentCondition& c : def.when) {
    TimestampMs lapse = 0;
    const bool holds = Holds(c, profile, tags, now, &lapse);
    if (holds && lapse > 0 && (m.recheck_at == 0 || lapse < m.recheck_at)) m.recheck_at = lapse;
    if (def.any && holds) m.member = true;
    if (!def.any && !holds) m.member = false;
  }
  if (!m.member) m.recheck_at = 0;
  return m;
}

std::vector<std::string> SegmentTags(std::span<const SegmentDef> defs) {
  std::set<std::string> names;
  for (const SegmentDef& d : defs) {
    for (const SegmentCondition& c : d.when) names.insert(c.tag);
  }
  return {names.begin(), names.end()};
}

}  // namespace portrait
