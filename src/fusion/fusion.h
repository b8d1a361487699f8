// Fusion: the tag operators, as pure functions of (state, actions, tag config).
//
// No I/O and no exceptions: every store backend, the batch job and the tests share this
// one implementation. The semantics users rely on:
//   * list tags hold every item ever merged, de-duplicated on dedup_by, sorted ascending
//     on sort_by (ties by dedup key), cut to the newest size_limit. Among items with the
//     same key the winner is the greatest by (sort value, action ts, source, JSON), so
//     the value depends on neither arrival order nor repetition, even after items were
//     cut (a cut key's best item is below every kept item, and stays so);
//   * string.set, number.set and map.put are last-writer-wins by (ts, source, value);
//   * number.incr, map.incr, number.max/min and set.add are commutative;
//   * mixing a replacing operator with an incrementing one on the same tag (number.set
//     and number.incr) follows arrival order, as there is no order-free meaning for it.
// `updated_at` is the greatest action ts applied, so it too is order-independent.
#pragma once

#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/action.h"
#include "core/config.h"
#include "core/status.h"

namespace portrait::fusion {

struct MapValue {
  std::string json;  // the value as JSON text (for incr'd entries, the number)
  double number = 0;
  bool is_number = false;
  TimestampMs ts = 0;
  Source source = Source::kRealtime;
  bool operator==(const MapValue&) const = default;
};

struct TagState {
  TagType type = TagType::kString;
  bool present = false;     // false after tag.del, or before any write
  TimestampMs updated_at = 0;
  // string and number registers: value plus the (ts, source) of the write that set it
  std::string text;
  double number = 0;
  TimestampMs set_ts = 0;
  Source set_source = Source::kOffline;
  bool number_was_set = false;  // number.set seen (else the number is a pure counter)
  std::map<std::string, MapValue> map;
  std::set<std::string> members;  // raw JSON scalars
  std::vector<ListItem> items;    // ascending by (sort, key)

  bool operator==(const TagState&) const = default;
};

// Applies one action. The caller checked that `cfg` allows the operator; an action of
// another type than the state resets the state (the tag's type changed in config).
void Apply(TagState& state, const Action& action, const TagConfig& cfg);

// Folds `next` into `into` when the two can travel as one action (same effect as applying
// them in turn); returns false and leaves `into` unchanged otherwise. Used to pre-combine
// a batch and as the store's partial merge.
bool TryCombine(Action& into, const Action& next, const TagConfig& cfg);

// Merges `add` into the sorted, de-duplicated, bounded `items`.
void MergeListItems(std::vector<ListItem>& items, std::vector<ListItem> add, const TagConfig& cfg);

// Builds a list item from its fields (name -> raw JSON), deriving sort value and dedup key.
Result<ListItem> MakeListItem(std::span<const std::pair<std::string, std::string>> fields,
                              const TagConfig& cfg, TimestampMs ts, Source source);

// Whether the state is visible at `now` (present, and not expired by ttl).
bool IsLive(const TagState& state, const TagConfig& cfg, TimestampMs now);

// The tag's value as JSON (lists in the tag's order, items past max_age left out).
void RenderValue(const TagState& state, const TagConfig& cfg, TimestampMs now, std::string* out);

// Binary codecs for stored states and merge operands (uid and tag travel in the key).
void EncodeState(const TagState& state, std::string* out);
Status DecodeState(std::string_view in, TagState* state);
void EncodeAction(const Action& action, std::string* out);
Status DecodeAction(std::string_view in, Action* action);

}  // namespace portrait::fusion
