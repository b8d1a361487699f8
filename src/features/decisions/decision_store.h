// DecisionStore: what real-time decisions keep beside the profiles, in the same database.
//
// - Rule state, one opaque blob per user (pipeline/decisions.h encodes it): the recent
//   events the decision rules may still match and the decisions still cooling down. Only
//   the worker that owns the user's partition reads and writes it. A state not written
//   for `ttl_ms` (wall clock) is dropped by the store, so users who leave leave nothing.
// - Recent decisions per user for GET /v1/decisions/{uid}: the newest
//   [decisions] keep_per_user, for [decisions] keep. Writing a decision again (same id)
//   changes nothing.
// Neither is touched by EraseAll(): a replay of the log rebuilds profiles, while the rule
// state remembers which events it has seen, so nothing is decided twice.
#pragma once

#include <memory>

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "core/types.h"
#include "features/decisions/decisions_config.h"

namespace rocksdb {
class DB;
}

namespace portrait {

class ProfileStore;
class RedisBackend;


struct RuleStateWrite {
  std::string uid;
  std::string state;  // empty: the user has no state left (deleted)
};

struct StoredDecision {
  std::string uid;
  std::string id;
  TimestampMs at = 0;  // event time the decision was made for (its window's end)
  std::string json;
};

class DecisionStore {
 public:
  virtual ~DecisionStore() = default;
  // The state of each user, in order ("" when none).
  virtual Status ReadRuleStates(std::span<const std::string> uids, std::vector<std::string>* states) = 0;
  // Writes the states and records the decisions.
  virtual Status WriteRuleStates(std::span<const RuleStateWrite> states, int64_t ttl_ms,
                                 std::span<const StoredDecision> decisions, const DecisionsConfig& cfg) = 0;
  // The user's newest decisions (JSON), newest first.
  virtual Result<std::vector<std::string>> RecentDecisions(std::string_view uid, size_t limit) = 0;
  // Forgets the user's rule state and recent decisions (an erasure).
  virtual Status EraseUser(std::string_view uid) = 0;
};

// The decisions state beside the profiles of `store`, on its backend (rocksdb_decisions.cc,
// redis_decisions.cc with its own function library); null when the backend keeps none.
Result<std::unique_ptr<DecisionStore>> OpenDecisionStore(ProfileStore* store);
std::unique_ptr<DecisionStore> OpenRocksDbDecisions(rocksdb::DB* db);
Result<std::unique_ptr<DecisionStore>> OpenRedisDecisions(RedisBackend* redis);

}  // namespace portrait
