#include "fusion/fusion.h"

#include <cmath>

#include <algorithm>
#include <charconv>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "core/coding.h"
#include "core/json.h"

namespace portrait::fusion {

namespace {

// Total order among items sharing a dedup key: the greatest one is kept.
bool BetterItem(const ListItem& a, const ListItem& b) {
  return std::tie(a.sort, a.ts, a.source, a.json) > std::tie(b.sort, b.ts, b.source, b.json);
}

bool ItemLess(const ListItem& a, const ListItem& b) {
  return std::tie(a.sort, a.key) < std::tie(b.sort, b.key);
}

// True when equal keys imply equal sort values, so a duplicate can only sit among the
// items with the same sort value and a binary search finds it.
bool KeyImpliesSort(const TagConfig& cfg) {
  if (cfg.sort_by.empty()) return false;
  if (cfg.dedup_by.empty()) return true;  // key is the whole item, which holds sort_by
  return std::find(cfg.dedup_by.begin(), cfg.dedup_by.end(), cfg.sort_by) != cfg.dedup_by.end();
}

void CutToLimit(std::vector<ListItem>& items, const TagConfig& cfg) {
  if (cfg.size_limit > 0 && items.size() > cfg.size_limit) {
    items.erase(items.begin(), items.begin() + static_cast<ptrdiff_t>(items.size() - cfg.size_limit));
  }
}

// Last-writer-wins: does (ts, source, value) beat the register's current write?
template <typename V>
bool Wins(TimestampMs ts, Source src, const V& v, TimestampMs cur_ts, Source cur_src, const V& cur) {
  return std::tie(ts, src, v) > std::tie(cur_ts, cur_src, cur);
}

void ResetTo(TagState& s, TagType type) {
  s = TagState();
  s.type = type;
}

void IncrMapEntry(std::map<std::string, MapValue>& m, const std::string& key, double amount,
                  TimestampMs ts, Source src) {
  MapValue& v = m[key];
  v.number = (v.is_number ? v.number : 0) + amount;
  v.is_number = true;
  v.json.clear();
  AppendJsonNumber(&v.json, v.number);
  v.ts = std::max(v.ts, ts);
  v.source = src;
}

void PutMapEntry(std::map<std::string, MapValue>& m, const MapEntry& e, TimestampMs ts, Source src) {
  auto it = m.find(e.key);
  if (it != m.end() && !Wins(ts, src, e.json, it->second.ts, it->second.source, it->second.json)) return;
  MapValue v;
  v.json = e.json;
  double d = 0;
  auto [p, ec] = std::from_chars(e.json.data(), e.json.data() + e.json.size(), d);
  v.is_number = ec == std::errc() && p == e.json.data() + e.json.size();
  v.number = v.is_number ? d : 0;
  v.ts = ts;
  v.source = src;
  m[e.key] = std::move(v);
}

}  // namespace

void MergeListItems(std::vector<ListItem>& items, std::vector<ListItem> add, const TagConfig& cfg) {
  if (add.empty()) return;
  if (KeyImpliesSort(cfg) && add.size() <= 64) {
    for (ListItem& x : add) {
      auto pos = std::lower_bound(items.begin(), items.end(), x, ItemLess);
      if (pos != items.end() && pos->key == x.key) {
        if (BetterItem(x, *pos)) *pos = std::move(x);
        continue;
      }
      if (cfg.size_limit > 0 && items.size() >= cfg.size_limit && pos == items.begin()) continue;
      items.insert(pos, std::move(x));
      CutToLimit(items, cfg);
    }
    return;
  }
  // General path: union, keep the best item per key, sort, cut.
  for (ListItem& x : add) items.push_back(std::move(x));
  std::unordered_map<std::string_view, size_t> best;
  best.reserve(items.size());
  std::vector<bool> keep(items.size(), true);
  for (size_t i = 0; i < items.size(); ++i) {
    auto [it, inserted] = best.emplace(items[i].key, i);
    if (inserted) continue;
    if (BetterItem(items[i], items[it->second])) {
      keep[it->second] = false;
      it->second = i;
    } else {
      keep[i] = false;
    }
  }
  std::vector<ListItem> out;
  out.reserve(best.size());
  for (size_t i = 0; i < items.size(); ++i) {
    if (keep[i]) out.push_back(std::move(items[i]));
  }
  std::sort(out.begin(), out.end(), ItemLess);
  items = std::move(out);
  CutToLimit(items, cfg);
}

void Apply(TagState& s, const Action& a, const TagConfig& cfg) {
  if (a.op == OpCode::kTagDel) {
    ResetTo(s, cfg.type);
    return;
  }
  if (ExpiredWhenWritten(a, cfg)) return;
  if (cfg.ttl_ms > 0 && a.written_ms > 0 && s.present && s.updated_at + cfg.ttl_ms <= a.written_ms) {
    ResetTo(s, cfg.type);  // expired when this action came: it starts afresh
  }
  if (s.type != cfg.type) ResetTo(s, cfg.type);
  const bool fresh = !s.present;
  s.present = true;
  s.updated_at = std::max(s.updated_at, a.ts);
  switch (a.op) {
    case OpCode::kStringSet:
      if (fresh || Wins(a.ts, a.source, a.text, s.set_ts, s.set_source, s.text)) {
        s.text = a.text;
        s.set_ts = a.ts;
        s.set_source = a.source;
      }
      break;
    case OpCode::kNumberSet:
      if (!s.number_was_set || Wins(a.ts, a.source, a.number, s.set_ts, s.set_source, s.number)) {
        s.number = a.number;
        s.set_ts = a.ts;
        s.set_source = a.source;
        s.number_was_set = true;
      }
      break;
    case OpCode::kNumberIncr:
      s.number += a.number;
      break;
    case OpCode::kNumberMax:
      s.number = fresh ? a.number : std::max(s.number, a.number);
      s.number_was_set = true;
      break;
    case OpCode::kNumberMin:
      s.number = fresh ? a.number : std::min(s.number, a.number);
      s.number_was_set = true;
      break;
    case OpCode::kMapPut:
    case OpCode::kMapMerge:
      for (const MapEntry& e : a.entries) PutMapEntry(s.map, e, a.ts, a.source);
      break;
    case OpCode::kMapIncr:
      for (const MapEntry& e : a.entries) IncrMapEntry(s.map, e.key, e.number, a.ts, a.source);
      break;
    case OpCode::kMapDel:
      for (const MapEntry& e : a.entries) s.map.erase(e.key);
      break;
    case OpCode::kSetAdd:
    case OpCode::kSetAddl:
      s.members.insert(a.members.begin(), a.members.end());
      break;
    case OpCode::kListRpush:
    case OpCode::kListRpushl:
      MergeListItems(s.items, a.items, cfg);
      break;
    case OpCode::kTagDel:
      break;
  }
}

void MergeState(TagState& into, const TagState& from, const TagConfig& cfg) {
  if (!from.present || from.type != cfg.type) return;
  if (!into.present || into.type != cfg.type) {
    into = from;
    return;
  }
  into.updated_at = std::max(into.updated_at, from.updated_at);
  switch (cfg.type) {
    case TagType::kString:
      if (Wins(from.set_ts, from.set_source, from.text, into.set_ts, into.set_source, into.text)) {
        into.text = from.text;
        into.set_ts = from.set_ts;
        into.set_source = from.set_source;
      }
      break;
    case TagType::kNumber: {
      const bool only_min = cfg.ops.size() == 1 && cfg.ops[0] == OpCode::kNumberMin;
      if (!into.number_was_set && !from.number_was_set) {
        into.number += from.number;  // counters
      } else if (only_min && into.number_was_set && from.number_was_set) {
        into.number = std::min(into.number, from.number);
      } else if (into.set_ts == 0 && from.set_ts == 0 && into.number_was_set && from.number_was_set) {
        into.number = std::max(into.number, from.number);  // number.max (no number.set on either)
      } else if (from.number_was_set &&
                 (!into.number_was_set ||
                  Wins(from.set_ts, from.set_source, from.number, into.set_ts, into.set_source, into.number))) {
        // A register (number.set): the newest set wins; a pure counter on one side loses.
        into.number = from.number;
        into.set_ts = from.set_ts;
        into.set_source = from.set_source;
        into.number_was_set = true;
      }
      break;
    }
    case TagType::kMap: {
      // Numbers on both sides are counts (summed) unless the tag declares put or merge.
      const bool counts = cfg.ops.empty() || (cfg.Allows(OpCode::kMapIncr) && !cfg.Allows(OpCode::kMapPut) &&
                                              !cfg.Allows(OpCode::kMapMerge));
      for (const auto& [k, v] : from.map) {
        auto it = into.map.find(k);
        if (it == into.map.end()) {
          into.map.emplace(k, v);
        } else if (counts && v.is_number && it->second.is_number) {
          IncrMapEntry(into.map, k, v.number, v.ts, v.source);
        } else if (Wins(v.ts, v.source, v.json, it->second.ts, it->second.source, it->second.json)) {
          it->second = v;
        }
      }
      break;
    }
    case TagType::kSet:
      into.members.insert(from.members.begin(), from.members.end());
      break;
    case TagType::kList:
      MergeListItems(into.items, from.items, cfg);
      break;
  }
}

bool NeedsExactlyOnce(OpCode op) { return op == OpCode::kNumberIncr || op == OpCode::kMapIncr; }

bool AppliedIds::Record(const std::string& id, TimestampMs ts) {
  auto [it, fresh] = ids.emplace(id, ts);
  if (!fresh) return false;
  if (ids.size() > kMaxAppliedIds) {
    // Forget ids outside the window behind the newest, then the oldest, down to 90%.
    TimestampMs newest = 0;
    for (const auto& [_, t] : ids) newest = std::max(newest, t);
    std::vector<std::pair<TimestampMs, std::string>> by_age;
    for (const auto& [k, t] : ids) by_age.emplace_back(t, k);
    std::sort(by_age.begin(), by_age.end());
    size_t keep = kMaxAppliedIds * 9 / 10;
    for (const auto& [t, k] : by_age) {
      if (ids.size() <= keep && t >= newest - kAppliedIdWindowMs) break;
      ids.erase(k);
    }
  }
  return true;
}

void AppliedIds::Encode(std::string* out) const {
  Writer w(out);
  w.Varint(ids.size());
  for (const auto& [id, ts] : ids) {
    w.Bytes(id);
    w.SignedVarint(ts);
  }
}

bool AppliedIds::Decode(std::string_view in) {
  Reader r(in);
  ids.clear();
  uint64_t n = r.Varint();
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    std::string id(r.Bytes());
    ids[std::move(id)] = r.SignedVarint();
  }
  return r.ok() && r.done();
}

void ProfileMeta::Observe(const Action& a) {
  if (IsSnapshotMark(a)) {
    if (SnapshotMarkLess(snapshot, a.text)) snapshot = a.text;
    return;
  }
  if (a.source == Source::kRealtime) realtime_updated_at = std::max(realtime_updated_at, a.ts);
}

void ProfileMeta::Encode(std::string* out) const {
  Writer w(out);
  w.SignedVarint(realtime_updated_at);
  w.Bytes(snapshot);
}

bool ProfileMeta::Decode(std::string_view in) {
  Reader r(in);
  realtime_updated_at = r.SignedVarint();
  snapshot = r.Bytes();
  return r.ok() && r.done();
}

namespace {

// Whole numbers whose sums are exact in a double: adding them in any grouping gives the same
// bits. Fractions are not combined, so where a batch is cut cannot change a counter.
bool ExactInteger(double v) { return v == std::trunc(v) && std::fabs(v) < 9.0e15; }

}  // namespace

bool TryCombine(Action& into, const Action& next, const TagConfig& cfg) {
  // Expiry is judged per action when it is written (Apply): ttl'd actions stay apart.
  if (cfg.ttl_ms > 0) return false;
  // An id must stay with its action so that the store can apply it exactly once.
  if (NeedsExactlyOnce(into.op) && (!into.id.empty() || !next.id.empty())) return false;
  // The combined action keeps one source: actions of two sources stay apart, so that the
  // profile's real-time freshness never takes an offline or external action's time.
  if (into.source != next.source) return false;
  if (into.op == OpCode::kNumberIncr && next.op == OpCode::kNumberIncr &&
      !(ExactInteger(into.number) && ExactInteger(next.number))) {
    return false;
  }
  if (into.op == OpCode::kMapIncr && next.op == OpCode::kMapIncr) {
    for (const Action* a : {static_cast<const Action*>(&into), &next}) {
      for (const MapEntry& e : a->entries) {
        if (!ExactInteger(e.number)) return false;
      }
    }
  }
  auto is_list = [](OpCode op) { return op == OpCode::kListRpush || op == OpCode::kListRpushl; };
  auto is_set = [](OpCode op) { return op == OpCode::kSetAdd || op == OpCode::kSetAddl; };
  if (is_list(into.op) && is_list(next.op)) {
    MergeListItems(into.items, next.items, cfg);
    into.op = OpCode::kListRpushl;
  } else if (is_set(into.op) && is_set(next.op)) {
    into.members.insert(into.members.end(), next.members.begin(), next.members.end());
    into.op = OpCode::kSetAddl;
  } else if (into.op != next.op) {
    return false;
  } else {
    switch (into.op) {
      case OpCode::kNumberIncr:
        into.number += next.number;
        break;
      case OpCode::kNumberMax:
        into.number = std::max(into.number, next.number);
        break;
      case OpCode::kNumberMin:
        into.number = std::min(into.number, next.number);
        break;
      case OpCode::kStringSet:
        if (!Wins(next.ts, next.source, next.text, into.ts, into.source, into.text)) {
          into.offset = std::max(into.offset, next.offset);
          return true;
        }
        into.text = next.text;
        into.source = next.source;
        into.ts = next.ts;
        into.offset = std::max(into.offset, next.offset);
        return true;
      case OpCode::kNumberSet:
        if (!Wins(next.ts, next.source, next.number, into.ts, into.source, into.number)) {
          into.offset = std::max(into.offset, next.offset);
          return true;
        }
        into.number = next.number;
        into.source = next.source;
        into.ts = next.ts;
        into.offset = std::max(into.offset, next.offset);
        return true;
      case OpCode::kMapIncr: {
        for (const MapEntry& e : next.entries) {
          auto it = std::find_if(into.entries.begin(), into.entries.end(),
                                 [&](const MapEntry& x) { return x.key == e.key; });
          if (it == into.entries.end()) into.entries.push_back(e);
          else it->number += e.number;
        }
        break;
      }
      default:
        return false;
    }
  }
  into.ts = std::max(into.ts, next.ts);
  into.offset = std::max(into.offset, next.offset);
  into.id.clear();
  return true;
}

Result<ListItem> MakeListItem(std::span<const std::pair<std::string, std::string>> fields,
                              const TagConfig& cfg, TimestampMs ts, Source source) {
  ListItem item;
  item.ts = ts;
  item.source = source;
  JsonWriter w(&item.json);
  w.BeginObject();
  for (const auto& [name, raw] : fields) w.Key(name).Raw(raw);
  w.EndObject();
  auto find = [&](std::string_view name) -> const std::string* {
    for (const auto& [n, raw] : fields) {
      if (n == name) return &raw;
    }
    return nullptr;
  };
  if (cfg.sort_by.empty()) {
    item.sort = static_cast<double>(ts);
  } else {
    const std::string* raw = find(cfg.sort_by);
    if (!raw) return Status::InvalidArgument("tag \"" + cfg.name + "\": item has no sort_by field \"" + cfg.sort_by + "\"");
    auto [p, ec] = std::from_chars(raw->data(), raw->data() + raw->size(), item.sort);
    if (ec != std::errc() || p != raw->data() + raw->size()) {
      return Status::InvalidArgument("tag \"" + cfg.name + "\": item field \"" + cfg.sort_by +
                                     "\" must be a number, got " + *raw);
    }
  }
  if (cfg.dedup_by.empty()) {
    item.key = item.json;
  } else {
    for (size_t i = 0; i < cfg.dedup_by.size(); ++i) {
      if (i) item.key.push_back('\x1f');
      const std::string* raw = find(cfg.dedup_by[i]);
      item.key += raw ? *raw : "null";
    }
  }
  return item;
}

bool IsLive(const TagState& s, const TagConfig& cfg, TimestampMs now) {
  if (!s.present) return false;
  return cfg.ttl_ms <= 0 || s.updated_at + cfg.ttl_ms > now;
}

void RenderValue(const TagState& s, const TagConfig& cfg, TimestampMs now, std::string* out) {
  JsonWriter w(out);
  switch (s.type) {
    case TagType::kString:
      w.String(s.text);
      break;
    case TagType::kNumber:
      w.Number(s.number);
      break;
    case TagType::kMap:
      w.BeginObject();
      for (const auto& [k, v] : s.map) w.Key(k).Raw(v.json);
      w.EndObject();
      break;
    case TagType::kSet:
      w.BeginArray();
      for (const auto& m : s.members) w.Raw(m);
      w.EndArray();
      break;
    case TagType::kList: {
      double oldest = cfg.max_age_ms > 0 ? static_cast<double>(now - cfg.max_age_ms) : -1e300;
      w.BeginArray();
      if (cfg.descending) {
        for (auto it = s.items.rbegin(); it != s.items.rend(); ++it) {
          if (it->sort >= oldest) w.Raw(it->json);
        }
      } else {
        for (const auto& item : s.items) {
          if (item.sort >= oldest) w.Raw(item.json);
        }
      }
      w.EndArray();
      break;
    }
  }
}

namespace {
constexpr uint8_t kStateFormat = 1;
constexpr uint8_t kActionFormat = 1;
constexpr uint8_t kActionFormatWritten = 2;  // with the write time (ttl'd tags)

void EncodeItem(Writer& w, const ListItem& it) {
  w.Double(it.sort);
  w.Bytes(it.key);
  w.Bytes(it.json);
  w.SignedVarint(it.ts);
  w.U8(static_cast<uint8_t>(it.source));
}

bool DecodeItem(Reader& r, ListItem* it) {
  it->sort = r.Double();
  it->key = r.Bytes();
  it->json = r.Bytes();
  it->ts = r.SignedVarint();
  uint8_t src = r.U8();
  if (src > static_cast<uint8_t>(Source::kRealtime)) return false;
  it->source = static_cast<Source>(src);
  return r.ok();
}

bool ValidSource(uint8_t s) { return s <= static_cast<uint8_t>(Source::kRealtime); }
}  // namespace

void EncodeState(const TagState& s, std::string* out) {
  Writer w(out);
  w.U8(kStateFormat);
  w.U8(static_cast<uint8_t>(s.type));
  w.U8((s.present ? 1 : 0) | (s.number_was_set ? 2 : 0));
  w.SignedVarint(s.updated_at);
  w.SignedVarint(s.set_ts);
  w.U8(static_cast<uint8_t>(s.set_source));
  switch (s.type) {
    case TagType::kString:
      w.Bytes(s.text);
      break;
    case TagType::kNumber:
      w.Double(s.number);
      break;
    case TagType::kMap:
      w.Varint(s.map.size());
      for (const auto& [k, v] : s.map) {
        w.Bytes(k);
        w.Bytes(v.json);
        w.Double(v.number);
        w.U8(v.is_number ? 1 : 0);
        w.SignedVarint(v.ts);
        w.U8(static_cast<uint8_t>(v.source));
      }
      break;
    case TagType::kSet:
      w.Varint(s.members.size());
      for (const auto& m : s.members) w.Bytes(m);
      break;
    case TagType::kList:
      w.Varint(s.items.size());
      for (const auto& it : s.items) EncodeItem(w, it);
      break;
  }
}

Status DecodeState(std::string_view in, TagState* s) {
  Reader r(in);
  *s = TagState();
  if (r.U8() != kStateFormat) return Status::Corruption("tag state: unknown format");
  uint8_t type = r.U8();
  if (type < 1 || type > static_cast<uint8_t>(TagType::kList)) return Status::Corruption("tag state: bad type");
  s->type = static_cast<TagType>(type);
  uint8_t flags = r.U8();
  s->present = flags & 1;
  s->number_was_set = flags & 2;
  s->updated_at = r.SignedVarint();
  s->set_ts = r.SignedVarint();
  uint8_t src = r.U8();
  if (!ValidSource(src)) return Status::Corruption("tag state: bad source");
  s->set_source = static_cast<Source>(src);
  switch (s->type) {
    case TagType::kString:
      s->text = r.Bytes();
      break;
    case TagType::kNumber:
      s->number = r.Double();
      break;
    case TagType::kMap: {
      uint64_t n = r.Varint();
      for (uint64_t i = 0; i < n && r.ok(); ++i) {
        std::string k(r.Bytes());
        MapValue v;
        v.json = r.Bytes();
        v.number = r.Double();
        v.is_number = r.U8() != 0;
        v.ts = r.SignedVarint();
        uint8_t vs = r.U8();
        if (!ValidSource(vs)) return Status::Corruption("tag state: bad map source");
        v.source = static_cast<Source>(vs);
        s->map.emplace(std::move(k), std::move(v));
      }
      break;
    }
    case TagType::kSet: {
      uint64_t n = r.Varint();
      for (uint64_t i = 0; i < n && r.ok(); ++i) s->members.emplace(r.Bytes());
      break;
    }
    case TagType::kList: {
      uint64_t n = r.Varint();
      if (n > in.size()) return Status::Corruption("tag state: bad item count");
      s->items.resize(n);
      for (uint64_t i = 0; i < n; ++i) {
        if (!DecodeItem(r, &s->items[i])) return Status::Corruption("tag state: bad list item");
      }
      break;
    }
  }
  if (!r.ok() || !r.done()) return Status::Corruption("tag state: truncated or trailing bytes");
  return Status::Ok();
}

void EncodeAction(const Action& a, std::string* out, TimestampMs written_ms) {
  Writer w(out);
  if (written_ms == 0) written_ms = a.written_ms;
  w.U8(written_ms ? kActionFormatWritten : kActionFormat);
  w.U8(static_cast<uint8_t>(a.op));
  w.SignedVarint(a.ts);
  if (written_ms) w.SignedVarint(written_ms);
  w.U8(static_cast<uint8_t>(a.source));
  w.Bytes(a.id);
  switch (a.op) {
    case OpCode::kStringSet:
      w.Bytes(a.text);
      break;
    case OpCode::kNumberSet:
    case OpCode::kNumberIncr:
    case OpCode::kNumberMax:
    case OpCode::kNumberMin:
      w.Double(a.number);
      break;
    case OpCode::kMapPut:
    case OpCode::kMapIncr:
    case OpCode::kMapMerge:
    case OpCode::kMapDel:
      w.Varint(a.entries.size());
      for (const auto& e : a.entries) {
        w.Bytes(e.key);
        w.Bytes(e.json);
        w.Double(e.number);
      }
      break;
    case OpCode::kSetAdd:
    case OpCode::kSetAddl:
      w.Varint(a.members.size());
      for (const auto& m : a.members) w.Bytes(m);
      break;
    case OpCode::kListRpush:
    case OpCode::kListRpushl:
      w.Varint(a.items.size());
      for (const auto& it : a.items) EncodeItem(w, it);
      break;
    case OpCode::kTagDel:
      break;
  }
}

Status DecodeAction(std::string_view in, Action* a) {
  Reader r(in);
  const uint8_t format = r.U8();
  if (format != kActionFormat && format != kActionFormatWritten) return Status::Corruption("action: unknown format");
  uint8_t op = r.U8();
  if (op < 1 || op > static_cast<uint8_t>(kLastOp)) return Status::Corruption("action: bad operator");
  a->op = static_cast<OpCode>(op);
  a->ts = r.SignedVarint();
  a->written_ms = format == kActionFormatWritten ? r.SignedVarint() : 0;
  uint8_t src = r.U8();
  if (!ValidSource(src)) return Status::Corruption("action: bad source");
  a->source = static_cast<Source>(src);
  a->id = r.Bytes();
  switch (a->op) {
    case OpCode::kStringSet:
      a->text = r.Bytes();
      break;
    case OpCode::kNumberSet:
    case OpCode::kNumberIncr:
    case OpCode::kNumberMax:
    case OpCode::kNumberMin:
      a->number = r.Double();
      break;
    case OpCode::kMapPut:
    case OpCode::kMapIncr:
    case OpCode::kMapMerge:
    case OpCode::kMapDel: {
      uint64_t n = r.Varint();
      if (n > in.size()) return Status::Corruption("action: bad entry count");
      a->entries.resize(n);
      for (auto& e : a->entries) {
        e.key = r.Bytes();
        e.json = r.Bytes();
        e.number = r.Double();
      }
      break;
    }
    case OpCode::kSetAdd:
    case OpCode::kSetAddl: {
      uint64_t n = r.Varint();
      if (n > in.size()) return Status::Corruption("action: bad member count");
      a->members.resize(n);
      for (auto& m : a->members) m = r.Bytes();
      break;
    }
    case OpCode::kListRpush:
    case OpCode::kListRpushl: {
      uint64_t n = r.Varint();
      if (n > in.size()) return Status::Corruption("action: bad item count");
      a->items.resize(n);
      for (auto& it : a->items) {
        if (!DecodeItem(r, &it)) return Status::Corruption("action: bad list item");
      }
      break;
    }
    case OpCode::kTagDel:
      break;
  }
  if (!r.ok() || !r.done()) return Status::Corruption("action: truncated or trailing bytes");
  return Status::Ok();
}

}  // namespace portrait::fusion
