// Rule state and recent decisions in Redis (decisions.lua).
#include <map>

#include "features/decisions/decision_store.h"
#include "store/redis/redis_backend.h"
#include "features/decisions/decisions_config.h"

namespace portrait {

extern const char* const kDecisionsLua;  // generated from decisions.lua

namespace {

std::string RuleKey(std::string_view uid) { return RedisTagged("r:", uid, ""); }

// "ts|src|rest"
class RedisDecisions : public DecisionStore {
 public:
  explicit RedisDecisions(RedisBackend* redis) : redis_(redis) {}

  // Rule state: "r:{uid}" (outside "p:{", so a replay's EraseAll keeps it), recent
  // decisions "r:{uid}:d" (ids by event time) and "r:{uid}:dj" (id -> json).
  Status ReadRuleStates(std::span<const std::string> uids, std::vector<std::string>* states) override {
    std::vector<RedisCommand> cmds;
    cmds.reserve(uids.size());
    for (const std::string& uid : uids) {
      std::string k = RuleKey(uid);
      cmds.push_back({{"GET", k}, k});
    }
    std::vector<RedisReply> replies;
    RETURN_IF_ERROR(redis_->Run(cmds, &replies));
    states->assign(uids.size(), std::string());
    for (size_t i = 0; i < replies.size() && i < uids.size(); ++i) {
      if (replies[i].type == RedisReply::Type::kString) (*states)[i] = std::move(replies[i].str);
    }
    return Status::Ok();
  }

  Status WriteRuleStates(std::span<const RuleStateWrite> states, int64_t ttl_ms,
                         std::span<const StoredDecision> decisions, const DecisionsConfig& cfg) override {
    // The decisions before the states (one pipeline, applied in order, not atomically): a
    // crash between the two leaves states that have not seen the batch, so the batch is
    // decided again (the same ids, recorded once), never states that remember a decision
    // whose record is missing.
    std::vector<RedisCommand> cmds;
    std::map<std::string_view, RedisCommand> calls;  // one call per user
    for (const StoredDecision& d : decisions) {
      auto [it, fresh] = calls.try_emplace(d.uid);
      if (fresh) {
        std::string k = RuleKey(d.uid);
        it->second = RedisFunctionCall("portrait_decide", {k + ":d", k + ":dj"});
        it->second.args.push_back(std::to_string(cfg.keep_per_user));
        it->second.args.push_back(std::to_string(std::max<int64_t>(1, cfg.keep_ms)));
      }
      it->second.args.insert(it->second.args.end(), {std::to_string(d.at), d.id, d.json});
    }
    for (auto& [_, c] : calls) cmds.push_back(std::move(c));
    for (const RuleStateWrite& s : states) {
      std::string k = RuleKey(s.uid);
      if (s.state.empty()) cmds.push_back({{"DEL", k}, k});
      else cmds.push_back({{"SET", k, s.state, "PX", std::to_string(std::max<int64_t>(1, ttl_ms))}, k});
    }
    return redis_->Run(cmds);
  }

  Status EraseUser(std::string_view uid) override {
    std::string k = RuleKey(uid);
    return redis_->Run({RedisCommand{{"DEL", k, k + ":d", k + ":dj"}, k}});
  }

  Result<std::vector<std::string>> RecentDecisions(std::string_view uid, size_t limit) override {
    std::string k = RuleKey(uid);
    RedisCommand c = RedisFunctionCall("portrait_get_decisions", {k + ":d", k + ":dj"}, true);
    c.args.push_back(std::to_string(std::max<size_t>(1, limit)));
    std::vector<RedisReply> replies;
    RETURN_IF_ERROR(redis_->Run({c}, &replies));
    std::vector<std::string> out;
    for (auto& e : replies[0].elements) {
      if (e.type == RedisReply::Type::kString) out.push_back(std::move(e.str));
    }
    return out;
  }

 private:
  RedisBackend* redis_;
};

}  // namespace

Result<std::unique_ptr<DecisionStore>> OpenRedisDecisions(RedisBackend* redis) {
  RETURN_IF_ERROR(redis->AddFunctionLibrary(kDecisionsLua));
  return std::unique_ptr<DecisionStore>(new RedisDecisions(redis));
}

}  // namespace portrait
