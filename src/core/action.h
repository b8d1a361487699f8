// Action: the unit of profile change, and the vocabulary of tag types and operators.
//
// An Action names a user, a tag and an operator with its operand. Rules build Actions
// from events; other systems will send them directly. Actions are plain values.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace portrait {

enum class TagType : uint8_t { kString = 1, kNumber, kMap, kSet, kList };

enum class OpCode : uint8_t {
  kStringSet = 1,
  kNumberSet,
  kNumberIncr,
  kNumberMax,
  kNumberMin,
  kMapPut,
  kMapIncr,
  kMapMerge,
  kMapDel,
  kSetAdd,
  kSetAddl,
  kListRpush,
  kListRpushl,
  kTagDel,
};
inline constexpr OpCode kLastOp = OpCode::kTagDel;

// Tie-break order when two writes collide: realtime beats external beats offline.
enum class Source : uint8_t { kOffline = 0, kExternal = 1, kRealtime = 2 };

std::string_view TagTypeName(TagType t);
std::optional<TagType> ParseTagType(std::string_view name);
std::string_view OpName(OpCode op);
std::optional<OpCode> ParseOp(std::string_view name);
// The tag type an operator works on; tag.del works on every type (returns nullopt).
std::optional<TagType> TagTypeOfOp(OpCode op);
std::string_view SourceName(Source s);

// One element of a list tag. `sort` and `key` are derived from the item by the tag's
// sort_by / dedup_by when the item is made (fusion::MakeListItem).
struct ListItem {
  double sort = 0;
  std::string key;   // dedup identity
  std::string json;  // the item, compact JSON
  TimestampMs ts = 0;
  Source source = Source::kRealtime;

  bool operator==(const ListItem&) const = default;
};

// A keyed map update: `json` is the value for put/merge, `number` the amount for incr.
struct MapEntry {
  std::string key;
  std::string json;
  double number = 0;
  bool operator==(const MapEntry&) const = default;
};

struct Action {
  std::string uid;
  std::string tag;
  std::string id;  // optional; identifies the action for exactly-once application
  OpCode op = OpCode::kStringSet;
  TimestampMs ts = 0;
  Source source = Source::kRealtime;
  // The log record that carried it (set by the processor; -1 otherwise). Stores that
  // cannot commit a batch atomically use it to skip what they already applied.
  PartitionId partition{-1};
  Offset offset{-1};

  // Operand, by operator:
  std::string text;                  // string.set
  double number = 0;                 // number.set|incr|max|min
  std::vector<MapEntry> entries;     // map.put|merge (json), map.incr (number), map.del (key)
  std::vector<std::string> members;  // set.add|addl: raw JSON scalars
  std::vector<ListItem> items;       // list.rpush|rpushl
  // When the store took the action (wall clock). A tag with a ttl judges expiry at that
  // time (fusion::Apply): the same on every backend, in any arrival order. 0: the store
  // stamps its own clock (a caller with a clock of its own, e.g. a test, sets it).
  TimestampMs written_ms = 0;
};

// An Action with an empty tag changes no tag: it records that the user's offline profile
// from snapshot `text` ("DATE/VERSION", see SnapshotMark) was loaded (ProfileMeta::snapshot).
Action SnapshotLoadedMark(std::string uid, std::string mark, TimestampMs ts);
inline bool IsSnapshotMark(const Action& a) { return a.tag.empty(); }
// "2026-11-20/2"; and its parts.
std::string SnapshotMark(std::string_view date, int version);
bool ParseSnapshotMark(std::string_view mark, std::string* date, int* version);
// Orders marks by (date, version); an empty mark is before every other.
bool SnapshotMarkLess(std::string_view a, std::string_view b);

}  // namespace portrait
