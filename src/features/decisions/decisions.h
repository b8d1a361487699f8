// Real-time decisions: [[decisions.rules]] evaluated per event against the user's recent
// behaviour in event time.
//
// State. Per user, one RuleState (kept in the store's DecisionStore): for each (rule,
// key) the recent events the rule reads (event time, id hash) and the decisions still
// cooling down. Everything older than the rule's `within` (events) or `within + cooldown`
// (decisions) behind the user's newest event is dropped, so the state never holds what can
// no longer match; [decisions] max_entries_per_user caps it; a user who goes quiet loses
// the whole state after the longest horizon (wall clock, the store's TTL).
//
// Order. An event that arrives late (by event time) is placed where it belongs: a count
// rule decides at the time of each event that has `at_least - 1` earlier events within
// `within` before it; a sequence rule at each `on` event that an `after` event precedes by
// at most `within`, whichever of the two arrives first. A decision is stamped with that
// closing event (its time, id and the payload rendered from it), not with the event whose
// arrival completed it, so the same events give the same decisions in any arrival order
// within the window. With a `cooldown`, decisions closer than it to one made before are
// suppressed; there a late event can reveal an earlier match than one already decided
// (and sent), which then stays the one decided: a decision is never taken back. The state
// keeps events back to 2 x `within` behind the newest, so a late event finds its partners.
// An event already in the state (same id: a repeat or a replay) or older than `within`
// behind the user's newest event changes nothing (counted as late).
//
// Ids. A decision's id hashes (rule, user, key, at) where `at` is the event time that
// closed its window, so the same events give the same id however often they are
// processed. The DecisionOutbox appends a decision to the `decisions` topic only if its
// id is not there yet, and the rule state remembers the events it has seen: a replay, a
// retried batch or a crash between the two never sends a decision twice.
//
// Per batch the processor calls DecisionEngine::Add for each event, then Evaluate (reads
// the states, decides), hands the decisions to the outbox, then Commit (writes the
// states), all before the batch's profile write and checkpoints.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "delivery/topic_feed.h"
#include "core/config.h"
#include "core/event.h"
#include "core/metrics.h"
#include "log/log.h"
#include "ingest/recent_ids.h"
#include "features/decisions/decision_store.h"
#include "store/profile_store.h"
#include "features/decisions/decisions_config.h"

namespace portrait {

struct Decision {
  std::string id;
  std::string rule;
  std::string action;
  std::string uid;
  std::string key;             // the key prop's value as text; "" for rules without a key
  TimestampMs at = 0;          // event time that closed the window
  TimestampMs decided_ms = 0;  // wall clock
  std::string event_id;        // the event whose arrival decided it
  std::string payload;         // JSON object
  std::string json;            // ToJson(), rendered once when the decision is made
  std::string ToJson() const;
};

// "d-" + 32 hex digits of XXH3-128 over (rule, uid, key, at).
std::string DecisionId(std::string_view rule, std::string_view uid, std::string_view key, TimestampMs at);
// The "id" of a decision's JSON (as ToJson writes it); empty if it has none.
std::string_view DecisionIdOf(std::string_view json);

// The rules in force: compiled once, immutable, replaced as a whole on reload.
class DecisionRules {
 public:
  // Checks `specs` against the running config's event types and tags (a reload may not
  // bring new ones; they need a restart) and compiles them.
  static Result<std::shared_ptr<const DecisionRules>> Compile(const std::vector<DecisionRuleSpec>& specs,
                                                              const Config& running);
  const std::vector<DecisionRuleSpec>& specs() const { return specs_; }
  // Indexes of the rules that read events of `type`.
  const std::vector<size_t>* ForType(std::string_view type) const;
  const DecisionRuleSpec* Find(std::string_view name) const;
  // How long (wall clock) a user's state is kept after its last write.
  int64_t StateTtlMs() const { return ttl_ms_; }
  bool empty() const { return specs_.empty(); }

 private:
  struct TypeHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::vector<DecisionRuleSpec> specs_;
  // Looked up per event by string_view, without building a string.
  std::unordered_map<std::string, std::vector<size_t>, TypeHash, std::equal_to<>> by_type_;
  int64_t ttl_ms_ = 0;
};

// Holds the rules in force; readers take a reference per batch, reload swaps them.
class DecisionRuleBook {
 public:
  explicit DecisionRuleBook(std::shared_ptr<const DecisionRules> rules) : rules_(std::move(rules)) {}
  std::shared_ptr<const DecisionRules> Get() const { return rules_.load(); }
  void Set(std::shared_ptr<const DecisionRules> rules) { rules_.store(std::move(rules)); }

 private:
  std::atomic<std::shared_ptr<const DecisionRules>> rules_;
};

// One user's rule state (decoded).
struct RuleState {
  struct Seen {
    TimestampMs ts = 0;
    uint32_t id = 0;     // hash of the event id (with ts, tells a repeat)
    bool first = false;  // an `after` event of a sequence rule
    // What a decision closed by this event carries, whenever it is decided: the event's
    // id and the rule's payload rendered from it.
    std::string event_id;
    std::string payload;
    bool operator<(const Seen& o) const { return ts != o.ts ? ts < o.ts : id < o.id; }
  };
  struct Group {
    std::string rule;
    std::string key;
    std::vector<Seen> seen;           // ascending
    std::vector<TimestampMs> fired;   // `at` of decisions made, ascending
  };
  TimestampMs newest = INT64_MIN;     // the newest event time seen
  std::vector<Group> groups;

  size_t entries() const;
};
void EncodeRuleState(const RuleState& s, std::string* out);
Status DecodeRuleState(std::string_view in, RuleState* s);

// Live decisions for GET /v1/decisions/stream (delivery/topic_feed.h).
using DecisionFeed = LiveFeed;

// The `decisions` topic (partitioned by uid), deduplicated by decision id.
class DecisionOutbox {
 public:
  DecisionOutbox(Log* topic, size_t dedup_window, DecisionFeed* feed, MetricsRegistry* metrics);
  // Remembers the ids of the newest records of each partition (at start).
  Status LoadRecentIds();
  // Appends the decisions whose ids are not in the topic yet (durably), then publishes
  // them to the feed; `fresh` gets how many were new.
  Status Publish(std::span<const Decision> decisions, size_t* fresh);
  // True when a decision of `uid` with this id is among the topic's newest records.
  bool Published(std::string_view uid, std::string_view id) const;
  Log* topic() const { return topic_; }

 private:
  Log* topic_;
  DecisionFeed* feed_;
  size_t window_;
  std::vector<std::unique_ptr<RecentIds>> recent_;
  Counter* published_;
  Counter* repeated_;
  Histogram* latency_;
};

// What a Processor needs to decide, opened from config: the rules in force, the
// `decisions` topic and its outbox (ids of its newest records loaded). All null when the
// store keeps no decision state.
struct DecisionWiring {
  std::unique_ptr<DecisionStore> store;  // beside the profiles
  std::unique_ptr<DecisionRuleBook> rules;
  std::unique_ptr<Log> topic;
  std::unique_ptr<DecisionOutbox> outbox;
};
Result<DecisionWiring> OpenDecisions(const Config& config, ProfileStore* store, DecisionFeed* feed,
                                     MetricsRegistry* metrics);

// One processor worker's decisions for a batch.
class DecisionEngine {
 public:
  // `cache_users`: states kept decoded between batches (0: read every batch). Only for a
  // worker that is the sole writer of its users' states (the embedded log's fixed
  // partitions), never across a consumer group's rebalances. `lazy` (with a cache): a
  // state changed by a batch is written only when Commit is told to save, not with every
  // batch (the caller checkpoints where the saved states end and recovers the rest).
  DecisionEngine(const Config& config, ProfileStore* profiles, DecisionStore* store, MetricsRegistry* metrics,
                 size_t cache_users = 0, bool lazy = false);

  // Keeps `e` if a rule of `rules` reads its type.
  void Add(const DecisionRules& rules, const Event& e);
  bool empty() const { return events_.empty(); }
  // Reads the states of the batch's users, applies the kept events in order and appends
  // the decisions they make to `out`. Profile tests see the stored profile plus
  // `pending` (the batch's Actions, not yet written). Writes nothing. After an error (a
  // state or profile read), calling it again with the same `out` goes on where it
  // stopped: an event is applied to its state once, with every decision it makes.
  Status Evaluate(const DecisionRules& rules, std::span<const Action> pending, std::vector<Decision>* out);
  // Records the decisions of the last Evaluate and writes the states it changed; then
  // forgets the batch. Lazy, states are saved in rounds instead: kBegin takes every state
  // changed so far (this batch's included) into a round and writes a slice of it, kSome
  // writes the next slice (as many states as the batch changed, at least 256, or
  // kSaveSlice when it changed none: no batch stalls on a whole round), kAll the round and everything changed since; a round ends when saving() is 0.
  enum class SaveMode { kNone, kBegin, kSome, kAll };
  static constexpr size_t kSaveSlice = 2048;
  Status Commit(const DecisionRules& rules, std::span<const Decision> decided, SaveMode save = SaveMode::kNone);
  // Recovery (lazy): the kept events, whose batches were written and published before a
  // restart, applied to the states again. A match counts as decided only if the outbox
  // holds its decision (`published`); nothing is written but the states, at the next save.
  Status Recover(const DecisionRules& rules, const std::function<bool(const Decision&)>& published);
  // Lazy: states changed since the last save; true when the cache is over its bound (a
  // save must come before it is emptied).
  size_t unsaved() const { return unsaved_.size(); }
  size_t saving() const { return saving_.size(); }
  bool MustSave() const { return states_.size() > cache_users_; }
  void Clear();

  // Decides for one user's state without the store (for tests and the benchmark):
  // applies `e` to `state`; profile tests are taken as passed when `profile_ok` is null
  // (it is given the rule, the event and the decision in the making).
  using ProfileCheck = std::function<bool(const DecisionRuleSpec&, const Event&, const Decision&)>;
  void Apply(const DecisionRules& rules, const Event& e, RuleState* state, const ProfileCheck& profile_ok,
             std::vector<Decision>* out);
  // Drops what can no longer match and caps the state (Commit does this per user).
  void Prune(const DecisionRules& rules, RuleState* s) const;
  // Adds the counts of Apply calls to the metrics.
  void FlushCounts();
  // Drops what the engine keeps of `uid` between batches (an erasure).
  void Forget(std::string_view uid) {
    states_.erase(std::string(uid));
    unsaved_.erase(std::string(uid));
    saving_.erase(std::string(uid));
  }

 private:
  bool ProfileOk(const DecisionRuleSpec& rule, const Event& e, std::span<const Action> pending);
  // Reads the states of the kept events' users that are not in memory; lists them in touched_.
  Status LoadStates();
  // What Apply changed in a state, to take one event back when its evaluation failed.
  struct Undo {
    size_t groups = 0;
    TimestampMs newest = INT64_MIN;
    std::vector<std::pair<size_t, size_t>> seen;         // (group, index) inserted
    std::vector<std::pair<size_t, TimestampMs>> fired;   // (group, at) inserted
  };
  void TakeBack(const Undo& u, RuleState* s) const;
  void BeginSave();  // the changed states join the save round

  const Config& config_;
  ProfileStore* profiles_;
  DecisionStore* store_;
  std::vector<Event> events_;
  const size_t cache_users_;
  const bool lazy_;
  std::unordered_map<std::string, RuleState> states_;  // the batch's users (and cached ones)
  std::vector<std::string> touched_;                   // the batch's users, once each
  std::unordered_set<std::string> unsaved_;            // lazy: changed, not in the round
  std::unordered_set<std::string> saving_;             // lazy: the save round's, not written yet
  size_t next_ = 0;       // the next kept event Evaluate applies
  bool loaded_ = false;   // the batch's states are in memory
  Undo undo_;             // of the event being applied
  struct Tally {
    uint64_t evaluated = 0, skipped = 0, late = 0, repeats = 0, suppressed = 0, profile_failed = 0;
  } tally_;
  std::unordered_map<std::string, Profile> profile_cache_;
  std::unordered_multimap<std::string_view, size_t> pending_by_uid_;
  Status profile_error_ = Status::Ok();
  Counter* evaluated_;
  Counter* skipped_;
  Counter* late_;
  Counter* repeats_;
  Counter* suppressed_;
  Counter* profile_failed_;
  Gauge* state_entries_;
};

}  // namespace portrait
