#include "features/consistency/compare.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_map>
#include <utility>

#include "core/json.h"

namespace portrait {
namespace {

// One element of a map, set or list value: its identity and its canonical JSON.
struct Item {
  std::string key, json;
  double sort = NAN;  // lists with sort_by: the item's sort field
};

struct Parsed {
  bool ok = false;
  bool empty = false;      // an empty map, set or list
  std::string canonical;   // the whole value
  std::vector<Item> items;  // maps (by key), sets (sorted), lists (in order)
};

void Canonical(simdjson::dom::element e, std::string* out) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      std::vector<std::pair<std::string_view, std::string>> fields;
      simdjson::dom::object obj;
      if (e.get(obj)) return;
      for (auto f : obj) {
        fields.emplace_back(f.key, std::string());
        Canonical(f.value, &fields.back().second);
      }
      std::sort(fields.begin(), fields.end());
      out->push_back('{');
      for (size_t i = 0; i < fields.size(); ++i) {
        if (i) out->push_back(',');
        AppendJsonString(out, fields[i].first);
        out->push_back(':');
        out->append(fields[i].second);
      }
      out->push_back('}');
      return;
    }
    case simdjson::dom::element_type::ARRAY: {
      out->push_back('[');
      bool first = true;
      simdjson::dom::array arr;
      if (e.get(arr)) return;
      for (auto v : arr) {
        if (!first) out->push_back(',');
        first = false;
        Canonical(v, out);
      }
      out->push_back(']');
      return;
    }
    case simdjson::dom::element_type::STRING:
      AppendJsonString(out, e.get_string().value_unsafe());
      return;
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE: {
      // By value: 3, 3.0 and 3e0 are one number.
      double d = 0;
      if (e.is_int64()) d = static_cast<double>(e.get_int64().value_unsafe());
      else if (e.is_uint64()) d = static_cast<double>(e.get_uint64().value_unsafe());
      else d = e.get_double().value_unsafe();
      if (std::floor(d) == d && std::fabs(d) < 9e15) out->append(std::to_string(static_cast<int64_t>(d)));
      else AppendJsonNumber(out, d);
      return;
    }
    case simdjson::dom::element_type::BOOL:
      out->append(e.get_bool().value_unsafe() ? "true" : "false");
      return;
    case simdjson::dom::element_type::NULL_VALUE:
      out->append("null");
      return;
  }
}

// A list item's identity: its dedup_by fields (or the whole item), canonical.
std::string ListKey(simdjson::dom::element item, const TagConfig& tag, const std::string& whole) {
  if (tag.dedup_by.empty()) return whole;
  std::string key;
  for (const std::string& f : tag.dedup_by) {
    simdjson::dom::element v;
    simdjson::dom::object obj;
    if (!item.get(obj) && !obj[f].get(v)) Canonical(v, &key);
    else key += "null";
    key.push_back('\x1f');
  }
  return key;
}

std::string JoinItems(const std::vector<Item>& items, char open, char close) {
  std::string out(1, open);
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(',');
    out += items[i].json;
  }
  out.push_back(close);
  return out;
}

Parsed Parse(std::string_view json, const TagConfig& tag) {
  thread_local simdjson::dom::parser parser;
  Parsed p;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc)) return p;
  p.ok = true;
  Canonical(doc, &p.canonical);
  switch (tag.type) {
    case TagType::kMap:
      if (simdjson::dom::object obj; !doc.get(obj)) {
        for (auto f : obj) {
          Item it;
          it.key = f.key;
          Canonical(f.value, &it.json);
          p.items.push_back(std::move(it));
        }
        std::sort(p.items.begin(), p.items.end(), [](const Item& a, const Item& b) { return a.key < b.key; });
        p.empty = p.items.empty();
      }
      break;
    case TagType::kSet:
    case TagType::kList:
      if (simdjson::dom::array arr; !doc.get(arr)) {
        for (auto v : arr) {
          Item it;
          Canonical(v, &it.json);
          if (tag.type == TagType::kSet) {
            it.key = it.json;
          } else {
            it.key = ListKey(v, tag, it.json);
            double s = 0;
            simdjson::dom::object obj;
            if (!tag.sort_by.empty() && !v.get(obj) && !obj[tag.sort_by].get(s)) it.sort = s;
          }
          p.items.push_back(std::move(it));
        }
        if (tag.type == TagType::kSet) {
          std::sort(p.items.begin(), p.items.end(), [](const Item& a, const Item& b) { return a.json < b.json; });
          p.canonical = JoinItems(p.items, '[', ']');  // a set has no order
        }
        p.empty = p.items.empty();
      }
      break;
    default:
      break;
  }
  return p;
}

// Jaccard index of the two key sets (maps: of whole entries), 1 when both are empty.
double Jaccard(const std::vector<Item>& a, const std::vector<Item>& b, bool entries) {
  auto id = [&](const Item& it) { return entries ? it.key + '\x1f' + it.json : it.key; };
  std::unordered_map<std::string, int> seen;
  for (const Item& it : a) seen[id(it)] |= 1;
  for (const Item& it : b) seen[id(it)] |= 2;
  if (seen.empty()) return 1;
  size_t both = 0;
  for (const auto& [_, bits] : seen) both += bits == 3;
  return static_cast<double>(both) / static_cast<double>(seen.size());
}

// The normalised Spearman footrule of the items both lists hold, ranked among themselves.
double RankDistance(const std::vector<Item>& a, const std::vector<Item>& b) {
  std::unordered_map<std::string_view, size_t> in_b;
  for (const Item& it : b) in_b.emplace(it.key, in_b.size());
  std::unordered_map<std::string_view, bool> common;
  for (const Item& it : a) {
    if (in_b.count(it.key)) common.emplace(it.key, true);
  }
  const size_t k = common.size();
  if (k < 2) return 0;
  std::unordered_map<std::string_view, size_t> rank_b;
  for (const Item& it : b) {
    if (common.count(it.key) && !rank_b.count(it.key)) rank_b.emplace(it.key, rank_b.size());
  }
  std::unordered_map<std::string_view, bool> done;
  double footrule = 0;
  size_t rank_a = 0;
  for (const Item& it : a) {
    if (!common.count(it.key) || done.count(it.key)) continue;
    done.emplace(it.key, true);
    footrule += std::fabs(static_cast<double>(rank_a++) - static_cast<double>(rank_b.at(it.key)));
  }
  const double max = std::floor(static_cast<double>(k) * static_cast<double>(k) / 2);
  return max > 0 ? footrule / max : 0;
}

}  // namespace

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kEqual: return "equal";
    case Outcome::kMissing: return "missing";
    case Outcome::kExtra: return "extra";
    case Outcome::kDifferent: return "different";
    case Outcome::kLater: return "later";
  }
  return "?";
}

bool SortedByEventTime(const Config& config, const TagConfig& tag) {
  if (tag.type != TagType::kList) return false;
  if (tag.sort_by.empty()) return true;
  bool any = false;
  for (const RuleSpec& r : config.rules) {
    if (r.tag != tag.name) continue;
    if (r.op != OpCode::kListRpush && r.op != OpCode::kListRpushl) continue;
    bool from_ts = false;
    for (const auto& [name, sub] : r.value.fields) {
      if (name == tag.sort_by) {
        from_ts = sub.kind == ValueTemplate::Kind::kField && sub.field.kind == FieldRef::Kind::kTs;
      }
    }
    if (!from_ts) return false;
    any = true;
  }
  return any;
}

TagWindow WindowFor(const Config& config, const TagConfig& tag, TimestampMs as_of) {
  TagWindow w;
  w.as_of = as_of;
  if (tag.offline_window_ms > 0) w.from = as_of - tag.offline_window_ms + 1;
  w.time_sorted = SortedByEventTime(config, tag);
  return w;
}

std::vector<const TagConfig*> TagsInBothLayers(const Config& config) {
  std::vector<const TagConfig*> out;
  for (const auto& [name, tag] : config.tags.all()) {
    if (!tag.offline || tag.internal) continue;
    bool rt = false, off = false;
    for (const RuleSpec& r : config.rules) {
      if (r.tag != name) continue;
      rt = rt || r.realtime;
      off = off || r.offline;
    }
    if (rt && off) out.push_back(&tag);
  }
  return out;
}

TagComparison CompareTag(const TagConfig& tag, const TagWindow& window, const fusion::TagState* realtime,
                         std::optional<std::string_view> offline) {
  TagComparison c;
  const bool is_list = tag.type == TagType::kList;
  Parsed off;
  if (offline) {
    off = Parse(*offline, tag);
    if (!off.ok) off.canonical = std::string(*offline);
  }
  bool has_off = offline && !off.empty;
  // A full list may have cut items older than its oldest: those are left out of both sides.
  double horizon = -INFINITY;
  if (is_list && has_off && off.ok && tag.size_limit > 0 && off.items.size() >= tag.size_limit) {
    double oldest = INFINITY;
    for (const Item& it : off.items) {
      if (!std::isnan(it.sort)) oldest = std::min(oldest, it.sort);
    }
    if (oldest != INFINITY) horizon = oldest;
  }
  Parsed rt;
  bool has_rt = false;
  if (realtime && realtime->present) {
    const fusion::TagState* shown = realtime;
    fusion::TagState filtered;
    if (is_list) {
      filtered = *realtime;
      const double lo = std::max(horizon, window.time_sorted ? static_cast<double>(window.from) : -INFINITY);
      const double hi = window.time_sorted ? static_cast<double>(window.as_of) : INFINITY;
      std::erase_if(filtered.items, [&](const ListItem& it) { return it.sort < lo || it.sort > hi; });
      shown = &filtered;
      if (tag.size_limit > 0 && realtime->items.size() >= tag.size_limit && !realtime->items.empty() && has_off) {
        const double oldest = realtime->items.front().sort;  // storage is ascending
        std::erase_if(off.items, [&](const Item& it) { return !std::isnan(it.sort) && it.sort < oldest; });
        has_off = !off.items.empty();
      }
    }
    std::string json;
    fusion::RenderValue(*shown, tag, window.as_of, &json);
    rt = Parse(json, tag);
    if (!rt.ok) rt.canonical = json;
    has_rt = !rt.empty;
  }
  if (!has_rt && !has_off) {
    c.absent = true;
    return c;
  }
  if (has_off && is_list && off.ok) off.canonical = JoinItems(off.items, '[', ']');
  if (has_rt) c.realtime = rt.canonical;
  if (has_off) c.offline = off.canonical;
  if (!has_rt) {
    c.outcome = Outcome::kMissing;
    c.score = 1;
    return c;
  }
  if (!has_off) {
    c.outcome = Outcome::kExtra;
    c.score = 1;
    return c;
  }
  const bool containers = rt.ok && off.ok && (tag.type == TagType::kMap || tag.type == TagType::kSet || is_list);
  if (containers) {
    c.overlap = Jaccard(rt.items, off.items, tag.type == TagType::kMap);
    if (is_list) c.rank_distance = RankDistance(rt.items, off.items);
  }
  const bool equal = rt.ok && off.ok && rt.canonical == off.canonical;
  if (equal) {
    c.outcome = Outcome::kEqual;
    return c;
  }
  c.score = containers ? std::max(0.05, 1 - c.overlap * (1 - 0.5 * std::max(0.0, c.rank_distance))) : 1;
  const bool written_after = realtime->updated_at > window.as_of && !(is_list && window.time_sorted);
  c.outcome = written_after ? Outcome::kLater : Outcome::kDifferent;
  return c;
}

void TagTally::Add(std::string_view uid, TagComparison c, size_t max_examples) {
  if (c.absent) return;
  ++counts[static_cast<size_t>(c.outcome)];
  if (c.overlap >= 0) {
    overlap_sum += c.overlap;
    ++overlap_n;
  }
  if (c.rank_distance >= 0) {
    rank_sum += c.rank_distance;
    ++rank_n;
  }
  if (max_examples == 0 || c.outcome == Outcome::kEqual || c.outcome == Outcome::kLater) return;
  auto worse = [](const ConsistencyExample& a, double score, std::string_view uid) {
    return a.comparison.score > score || (a.comparison.score == score && a.uid < uid);
  };
  auto at = std::find_if(worst.begin(), worst.end(), [&](const ConsistencyExample& e) { return !worse(e, c.score, uid); });
  if (at == worst.end() && worst.size() >= max_examples) return;
  worst.insert(at, ConsistencyExample{std::string(uid), std::move(c)});
  if (worst.size() > max_examples) worst.pop_back();
}

uint64_t TagTally::users() const {
  uint64_t n = 0;
  for (uint64_t v : counts) n += v;
  return n;
}

double TagTally::ratio(Outcome o) const {
  const uint64_t n = users();
  return n ? static_cast<double>(count(o)) / static_cast<double>(n) : 0;
}

std::optional<double> TagTally::mean_overlap() const {
  if (!overlap_n) return std::nullopt;
  return overlap_sum / static_cast<double>(overlap_n);
}

std::optional<double> TagTally::mean_rank_distance() const {
  if (!rank_n) return std::nullopt;
  return rank_sum / static_cast<double>(rank_n);
}

}  // namespace portrait
