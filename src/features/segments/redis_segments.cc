// Segment membership in Redis: "g:{uid}" hash segment -> "since|recheck_at" (the user's
// slot), "G:{segment}" sorted set of members (score 0, read in uid order), "w:{segment}"
// sorted set of members by re-check time. Plain commands, each idempotent, so a retried
// write is harmless; a segment's sets live on its slot's node.
#include <cstdlib>

#include "features/segments/segment_store.h"
#include "store/redis/redis_backend.h"

namespace portrait {
namespace {

std::string UserKey(std::string_view uid) { return RedisTagged("g:", uid, ""); }
std::string MembersKey(std::string_view segment) { return RedisTagged("G:", segment, ""); }
std::string DueKey(std::string_view segment) { return RedisTagged("w:", segment, ""); }

class RedisSegments : public SegmentStore {
 public:
  explicit RedisSegments(RedisBackend* redis) : redis_(redis) {}

  Result<std::vector<std::map<std::string, SegmentEntry>>> Get(std::span<const std::string> uids) override {
    std::vector<RedisCommand> cmds;
    for (const std::string& uid : uids) {
      std::string k = UserKey(uid);
      cmds.push_back({{"HGETALL", k}, k});
    }
    std::vector<RedisReply> replies;
    RETURN_IF_ERROR(redis_->Run(cmds, &replies));
    std::vector<std::map<std::string, SegmentEntry>> out(uids.size());
    for (size_t i = 0; i < replies.size() && i < uids.size(); ++i) {
      const auto& el = replies[i].elements;
      for (size_t j = 0; j + 1 < el.size(); j += 2) {
        SegmentEntry e;
        const std::string& v = el[j + 1].str;
        e.since = std::atoll(v.c_str());
        if (size_t bar = v.find('|'); bar != std::string::npos) e.recheck_at = std::atoll(v.c_str() + bar + 1);
        out[i].emplace(el[j].str, e);
      }
    }
    return out;
  }

  Status Write(std::span<const SegmentWrite> writes) override {
    // The per-segment sets first: a crash before the user's hash leaves the change to be
    // made again (the batch is replayed), never a user who lists a segment missing it.
    std::vector<RedisCommand> sets, users;
    for (const SegmentWrite& w : writes) {
      const std::string mk = MembersKey(w.segment), dk = DueKey(w.segment), uk = UserKey(w.uid);
      if (!w.member) {
        sets.push_back({{"ZREM", mk, w.uid}, mk});
        sets.push_back({{"ZREM", dk, w.uid}, dk});
        users.push_back({{"HDEL", uk, w.segment}, uk});
        continue;
      }
      sets.push_back({{"ZADD", mk, "0", w.uid}, mk});
      if (w.entry.recheck_at > 0) sets.push_back({{"ZADD", dk, std::to_string(w.entry.recheck_at), w.uid}, dk});
      else sets.push_back({{"ZREM", dk, w.uid}, dk});
      users.push_back({{"HSET", uk, w.segment, std::to_string(w.entry.since) + "|" + std::to_string(w.entry.recheck_at)}, uk});
    }
    if (!sets.empty()) RETURN_IF_ERROR(redis_->Run(sets));
    if (!users.empty()) RETURN_IF_ERROR(redis_->Run(users));
    return Status::Ok();
  }

  Result<std::vector<std::string>> Members(std::string_view segment, std::string_view after, size_t limit) override {
    std::string k = MembersKey(segment);
    std::string from = after.empty() ? "-" : "(" + std::string(after);
    std::vector<RedisReply> replies;
    RETURN_IF_ERROR(redis_->Run({RedisCommand{{"ZRANGEBYLEX", k, from, "+", "LIMIT", "0", std::to_string(limit)}, k}},
                                &replies));
    std::vector<std::string> out;
    for (auto& e : replies[0].elements) out.push_back(std::move(e.str));
    return out;
  }

  Result<uint64_t> Count(std::string_view segment) override {
    std::string k = MembersKey(segment);
    std::vector<RedisReply> replies;
    RETURN_IF_ERROR(redis_->Run({RedisCommand{{"ZCARD", k}, k}}, &replies));
    return static_cast<uint64_t>(replies[0].integer);
  }

  Result<std::vector<std::string>> Due(std::string_view segment, TimestampMs now, size_t limit) override {
    std::string k = DueKey(segment);
    std::vector<RedisReply> replies;
    RETURN_IF_ERROR(redis_->Run(
        {RedisCommand{{"ZRANGEBYSCORE", k, "-inf", std::to_string(now), "LIMIT", "0", std::to_string(limit)}, k}},
        &replies));
    std::vector<std::string> out;
    for (auto& e : replies[0].elements) out.push_back(std::move(e.str));
    return out;
  }

  Status EraseUser(std::string_view uid) override {
    RETURN_IF_ERROR(SegmentStore::EraseUser(uid));
    std::string k = UserKey(uid);
    return redis_->Run({RedisCommand{{"DEL", k}, k}});
  }

 private:
  RedisBackend* redis_;
};

}  // namespace

Result<std::unique_ptr<SegmentStore>> OpenRedisSegments(RedisBackend* redis) {
  return std::unique_ptr<SegmentStore>(new RedisSegments(redis));
}

}  // namespace portrait
