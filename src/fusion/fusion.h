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
//
// Expiry (a tag with `ttl`): a tag is visible while now < updated_at + ttl (IsLive). An
// action written (`written_ms`) when it had expired already (ts + ttl <= written_ms) is
// dropped, and a state that had expired when an action is written is dropped before the
// action applies, so an expired tag written again starts afresh. Both are judged at the
// write's time, not the reader's, so two actions give the same state in either arrival
// order and on every backend (the Redis functions do the same with the server's clock).
void Apply(TagState& state, const Action& action, const TagConfig& cfg);
// True for an action of a ttl'd tag that had expired when it was written: Apply drops it,
// and a store must not let it count elsewhere (freshness, ids).
inline bool ExpiredWhenWritten(const Action& a, const TagConfig& cfg) {
  return cfg.ttl_ms > 0 && a.written_ms > 0 && a.ts + cfg.ttl_ms <= a.written_ms;
}

// Operators whose repetition changes the value; they are applied at most once per
// action id (see AppliedIds).
bool NeedsExactlyOnce(OpCode op);

// Ids of exactly-once actions already applied to one user, with their ts. Bounded: past
// kMaxAppliedIds entries, ids older than kAppliedIdWindowMs behind the newest and then the
// oldest are forgotten, so a retry must come within the window to be recognised.
struct AppliedIds {
  static constexpr int64_t kAppliedIdWindowMs = 7LL * 24 * 3600 * 1000;
  static constexpr size_t kMaxAppliedIds = 100000;
  std::map<std::string, TimestampMs> ids;
  // True if `id` is new (and records it); false if it was applied before.
  bool Record(const std::string& id, TimestampMs ts);
  void Encode(std::string* out) const;
  bool Decode(std::string_view in);
};

// Per-user facts that are not tags: when the stream last changed the profile, and which
// offline snapshot it includes.
struct ProfileMeta {
  TimestampMs realtime_updated_at = 0;  // greatest ts of a realtime action applied
  std::string snapshot;                  // "date/version" of the offline snapshot, or empty
  // Takes the action's realtime ts, or the newer mark of a snapshot-loaded action.
  void Observe(const Action& a);
  void Encode(std::string* out) const;
  bool Decode(std::string_view in);
  bool operator==(const ProfileMeta&) const = default;
};

// Folds `next` into `into` when the two can travel as one action (same effect as applying
// them in turn); returns false and leaves `into` unchanged otherwise. Used to pre-combine
// a batch and as the store's partial merge.
bool TryCombine(Action& into, const Action& next, const TagConfig& cfg);

// Merges `add` into the sorted, de-duplicated, bounded `items`.
void MergeListItems(std::vector<ListItem>& items, std::vector<ListItem> add, const TagConfig& cfg);

// Builds a list item from its fields (name -> raw JSON), deriving sort value and dedup key.
Result<ListItem> MakeListItem(std::span<const std::pair<std::string, std::string>> fields,
                              const TagConfig& cfg, TimestampMs ts, Source source);

// Merges `from` into `into`: the state of two disjoint sets of actions (two ids of one
// person, e.g. a device before login and its user), as if all had been applied to one.
// Exact for the commutative operators (number.incr sums, map.incr sums per key, set.add
// unions, lists merge as MergeListItems), number.max/min, and the last-writer-wins
// registers (string.set, number.set by (ts, source, value)). Where the state cannot say
// which operator wrote it, the tag's declared `ops` decide: a map entry that is a number on
// both sides is a count (summed) unless the tag allows map.put or map.merge (then the
// newest wins), and a number written by number.max or number.min keeps the greater unless
// the tag declares only number.min. Commutative and associative, so the merged person does
// not depend on the order its ids are read in.
void MergeState(TagState& into, const TagState& from, const TagConfig& cfg);

// Whether the state is visible at `now` (present, and not expired by ttl).
bool IsLive(const TagState& state, const TagConfig& cfg, TimestampMs now);

// The tag's value as JSON (lists in the tag's order, items past max_age left out).
void RenderValue(const TagState& state, const TagConfig& cfg, TimestampMs now, std::string* out);

// Binary codecs for stored states and merge operands (uid and tag travel in the key).
void EncodeState(const TagState& state, std::string* out);
Status DecodeState(std::string_view in, TagState* state);
// `written_ms` (when not 0) is stored as the action's write time (Action::written_ms).
void EncodeAction(const Action& action, std::string* out, TimestampMs written_ms = 0);
Status DecodeAction(std::string_view in, Action* action);

}  // namespace portrait::fusion
