// Comparing one tag of one user between real time (the profile store's state) and the
// batch (its snapshot row), and summing those comparisons per tag. Pure functions of the
// values and the tag's config: no I/O, no clock, so the tests and every store share them.
//
// Values are compared as JSON, both sides rendered the way the profile API renders them
// (fusion::RenderValue) and then put in one canonical form: object keys sorted, numbers by
// value, set members in sorted order, list items in the tag's order. An empty map, set or
// list counts as absent on either side (the batch writes no empty tag).
//
// "As of the end of day D" for real time: a list tag whose items are sorted by event time
// (TagWindow::time_sorted) leaves out its real-time items newer than D and older than the
// tag's offline window, so a run after D is fair; when either side's list is full
// (size_limit items) items older than its oldest one are left out of both, as the other
// side may have cut them. Other tags have no per-item time: a real-time value that differs
// and was last written (by event time) after D is counted as `later`, not `different`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/types.h"
#include "fusion/fusion.h"

namespace portrait {

enum class Outcome {
  kEqual,      // both sides hold the same value
  kMissing,    // in the snapshot, not in real time
  kExtra,      // in real time, not in the snapshot
  kDifferent,  // both, with different values
  kLater,      // both differ, and real time wrote the tag after D (not comparable)
};
inline constexpr Outcome kOutcomes[] = {Outcome::kEqual, Outcome::kMissing, Outcome::kExtra, Outcome::kDifferent,
                                        Outcome::kLater};
inline constexpr size_t kOutcomeCount = sizeof(kOutcomes) / sizeof(kOutcomes[0]);
std::string_view OutcomeName(Outcome o);

// What "as of the end of D" is for one tag.
struct TagWindow {
  TimestampMs as_of = 0;          // the last millisecond of D (what the snapshot is rendered at)
  TimestampMs from = INT64_MIN;   // the first millisecond of the tag's offline window
  bool time_sorted = false;       // a list sorted by event time: real-time items outside [from, as_of] drop out
};

// Whether a list tag is sorted by event time: no sort_by (items sort by their action's ts,
// the event time), or every rule of the tag fills the sort_by field from `$ts`.
bool SortedByEventTime(const Config& config, const TagConfig& tag);
// The window of `tag` for a snapshot as of `as_of`.
TagWindow WindowFor(const Config& config, const TagConfig& tag, TimestampMs as_of);
// Tags computed in both layers: declared with `offline`, with a rule of each layer.
std::vector<const TagConfig*> TagsInBothLayers(const Config& config);

struct TagComparison {
  bool absent = false;  // neither side has a value: not counted
  Outcome outcome = Outcome::kEqual;
  std::string realtime, offline;  // the values compared, as JSON ("" when absent)
  // Maps, sets and lists held by both sides: the Jaccard index of their keys (map keys, set
  // members, list items' dedup keys); lists also the rank distance of their common items
  // (normalised Spearman footrule: 0 same order, 1 reversed). -1 when not applicable.
  double overlap = -1, rank_distance = -1;
  double score = 0;  // how bad: 0 equal .. 1 nothing in common (orders the worst examples)
};

// `realtime`: the tag's state in the profile store (null when absent); `offline`: its value
// in the user's snapshot row (nullopt when absent). A value that is not JSON compares as
// different from everything.
TagComparison CompareTag(const TagConfig& tag, const TagWindow& window, const fusion::TagState* realtime,
                         std::optional<std::string_view> offline);

struct ConsistencyExample {
  std::string uid;
  TagComparison comparison;
};

// One tag's comparisons over all users compared.
struct TagTally {
  std::string tag;
  TagType type = TagType::kString;
  TagWindow window;
  uint64_t counts[kOutcomeCount] = {};
  double overlap_sum = 0, rank_sum = 0;
  uint64_t overlap_n = 0, rank_n = 0;
  std::vector<ConsistencyExample> worst;  // the worst mismatches, worst first (ties by uid)

  // Counts `c` (unless absent) and keeps it among the `max_examples` worst.
  void Add(std::string_view uid, TagComparison c, size_t max_examples);
  uint64_t users() const;  // users with a value on either side
  uint64_t count(Outcome o) const { return counts[static_cast<size_t>(o)]; }
  double ratio(Outcome o) const;  // of users(); 0 when none
  std::optional<double> mean_overlap() const;
  std::optional<double> mean_rank_distance() const;
};

}  // namespace portrait
