// The offline side of profiles inside the pipeline: turning snapshot rows into Actions, and
// the lazy loader that does it per user when the user opens the app.
//
// A snapshot row is the user's offline tags as one JSON object, each value in the form the
// profile API renders it ({"clicks": [{...}, ...], "last_buy_at": "...", ...}). Each value
// becomes one Action with its tag's load operator (list.rpushl, map.merge, set.addl,
// string.set, number.set|max|min), source offline, stamped with the snapshot's as-of time
// (the last millisecond of its date): so a real-time write after that date wins over the
// offline value and one before it loses, whatever the order they arrive in.
#pragma once

#include <simdjson.h>

#include <algorithm>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/action.h"
#include "core/config.h"
#include "core/erasure_list.h"
#include "core/metrics.h"
#include "store/profile_store.h"
#include "store/snapshot.h"

namespace portrait {

// Appends to `out` the Actions loading `row` (a JSON object tag -> value) for `uid`. A tag
// the config does not declare is an error when `strict`, else skipped and counted in
// `*unknown`. On error nothing is appended and `problem` names the tag and what is wrong.
bool OfflineRowToActions(simdjson::dom::element row, const TagRegistry& tags, const std::string& uid,
                         TimestampMs as_of, bool strict, std::vector<Action>* out, size_t* unknown,
                         std::string* problem);

// A trigger event seen by the processor.
struct LoadTrigger {
  std::string uid;
  TimestampMs ts = 0;  // its event time decides its day
  PartitionId partition{-1};
  Offset offset{-1};
};

// Per user, on a trigger event of day T: S = the newest complete snapshot dated before T.
// If the user's profile records S or a newer snapshot (ProfileMeta::snapshot; a late
// trigger of an earlier day would pick an older one) nothing happens; otherwise the
// user's row of S becomes Actions plus a mark recording S, so a user loads at most once
// per snapshot version, picks up a newer date or version at the next trigger after it
// completes, and a user absent from S is marked too. Used by one processor worker at a
// time (each worker has its own).
class LazyLoader {
 public:
  // `erasures` (may be null): a user erased after a snapshot completed loads nothing of it.
  LazyLoader(const Config& config, ProfileStore* store, SnapshotCatalog* catalog, ErasureList* erasures,
             MetricsRegistry* metrics);

  // Called for every event the processor reads: a scan of a few names, no allocation.
  bool IsTrigger(std::string_view event_type) const {
    return std::find(triggers_.begin(), triggers_.end(), event_type) != triggers_.end();
  }

  // Appends the loading Actions for `triggers` to `out` (each stamped with its trigger's
  // partition and offset). Fails only when the store cannot be read (the caller retries);
  // a snapshot that cannot be read is logged and counted, and its users are tried again
  // at their next trigger.
  Status Load(std::span<const LoadTrigger> triggers, std::vector<Action>* out);

 private:
  const Config& config_;
  ProfileStore* store_;
  SnapshotCatalog* catalog_;
  ErasureList* erasures_;
  Counter* erased_;
  std::vector<std::string> triggers_;
  simdjson::dom::parser parser_;
  Counter* loaded_;
  Counter* absent_;
  Counter* current_;
  Counter* errors_;
  Counter* unknown_tags_;
  Histogram* seconds_;
};

}  // namespace portrait
