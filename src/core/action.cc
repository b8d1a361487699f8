#include "core/action.h"

#include <charconv>

#include <array>

namespace portrait {

namespace {
struct OpInfo {
  OpCode op;
  std::string_view name;
  std::optional<TagType> type;
};
constexpr std::array<OpInfo, 14> kOps = {{
    {OpCode::kStringSet, "string.set", TagType::kString},
    {OpCode::kNumberSet, "number.set", TagType::kNumber},
    {OpCode::kNumberIncr, "number.incr", TagType::kNumber},
    {OpCode::kNumberMax, "number.max", TagType::kNumber},
    {OpCode::kNumberMin, "number.min", TagType::kNumber},
    {OpCode::kMapPut, "map.put", TagType::kMap},
    {OpCode::kMapIncr, "map.incr", TagType::kMap},
    {OpCode::kMapMerge, "map.merge", TagType::kMap},
    {OpCode::kMapDel, "map.del", TagType::kMap},
    {OpCode::kSetAdd, "set.add", TagType::kSet},
    {OpCode::kSetAddl, "set.addl", TagType::kSet},
    {OpCode::kListRpush, "list.rpush", TagType::kList},
    {OpCode::kListRpushl, "list.rpushl", TagType::kList},
    {OpCode::kTagDel, "tag.del", std::nullopt},
}};
}  // namespace

std::string_view TagTypeName(TagType t) {
  switch (t) {
    case TagType::kString: return "string";
    case TagType::kNumber: return "number";
    case TagType::kMap: return "map";
    case TagType::kSet: return "set";
    case TagType::kList: return "list";
  }
  return "?";
}

std::optional<TagType> ParseTagType(std::string_view name) {
  for (TagType t : {TagType::kString, TagType::kNumber, TagType::kMap, TagType::kSet, TagType::kList}) {
    if (TagTypeName(t) == name) return t;
  }
  return std::nullopt;
}

std::string_view OpName(OpCode op) {
  for (const auto& i : kOps) {
    if (i.op == op) return i.name;
  }
  return "?";
}

std::optional<OpCode> ParseOp(std::string_view name) {
  for (const auto& i : kOps) {
    if (i.name == name) return i.op;
  }
  return std::nullopt;
}

std::optional<TagType> TagTypeOfOp(OpCode op) {
  for (const auto& i : kOps) {
    if (i.op == op) return i.type;
  }
  return std::nullopt;
}

std::string_view SourceName(Source s) {
  switch (s) {
    case Source::kOffline: return "offline";
    case Source::kExternal: return "external";
    case Source::kRealtime: return "realtime";
  }
  return "?";
}

Action SnapshotLoadedMark(std::string uid, std::string mark, TimestampMs ts) {
  Action a;
  a.uid = std::move(uid);
  a.op = OpCode::kStringSet;
  a.text = std::move(mark);
  a.ts = ts;
  a.source = Source::kOffline;
  return a;
}

std::string SnapshotMark(std::string_view date, int version) {
  return std::string(date) + "/" + std::to_string(version);
}

bool ParseSnapshotMark(std::string_view mark, std::string* date, int* version) {
  size_t slash = mark.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view v = mark.substr(slash + 1);
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), *version);
  if (ec != std::errc() || p != v.data() + v.size()) return false;
  *date = mark.substr(0, slash);
  return true;
}

bool SnapshotMarkLess(std::string_view a, std::string_view b) {
  std::string da, db;
  int va = 0, vb = 0;
  bool pa = ParseSnapshotMark(a, &da, &va), pb = ParseSnapshotMark(b, &db, &vb);
  if (!pb) return false;
  if (!pa) return true;
  return da != db ? da < db : va < vb;
}

}  // namespace portrait
