#include "store/redis/redis_store.h"

#include <charconv>
#include <chrono>
#include <map>
#include <mutex>

#include "core/json.h"
#include "store/redis/redis_backend.h"
#include "store/redis/redis_client.h"

namespace portrait {

extern const char* const kPortraitLua;  // generated from portrait.lua

const std::string& RedisFunctionLibrary() {
  static const std::string lib(kPortraitLua);
  return lib;
}

namespace {

constexpr const char* kCheckpointKey = "portrait:checkpoints";

std::string Num(double d) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

double ToDouble(const std::string& s) {
  double d = 0;
  std::from_chars(s.data(), s.data() + s.size(), d);
  return d;
}

// Every key a function call may touch is declared, so that Redis Cluster answers
// TRYAGAIN / ASK instead of running on a user whose keys are half migrated.
std::vector<std::string> UserKeys(const std::string& p, const std::vector<std::string_view>& tags) {
  std::vector<std::string> keys = {p + "m", p + "o", p + "ids", p + "k", p + "h"};
  for (std::string_view t : tags) {
    keys.push_back(p + "t:" + std::string(t));
    keys.push_back(p + "mw:" + std::string(t));
    keys.push_back(p + "li:" + std::string(t));
  }
  return keys;
}

RedisCommand FunctionCall(const char* fn, const std::vector<std::string>& keys) {
  return RedisFunctionCall(std::string("portrait_") + fn, keys, fn[0] == 'g');
}

std::string Prefix(std::string_view uid) { return RedisTagged("p:", uid, ":"); }

void SplitRegister(const std::string& s, TimestampMs* ts, Source* src, std::string* rest) {
  size_t a = s.find('|');
  size_t b = a == std::string::npos ? std::string::npos : s.find('|', a + 1);
  *ts = static_cast<TimestampMs>(ToDouble(s.substr(0, a)));
  int v = a == std::string::npos ? 0 : static_cast<int>(ToDouble(s.substr(a + 1, b == std::string::npos ? b : b - a - 1)));
  *src = static_cast<Source>(std::clamp(v, 0, 2));
  if (rest) *rest = b == std::string::npos ? "" : s.substr(b + 1);
}

void EncodeOperand(const Action& a, const TagConfig& cfg, std::vector<std::string>* out) {
  std::vector<std::string> f = {a.tag, std::to_string(static_cast<int>(cfg.type)), std::to_string(cfg.size_limit),
                                std::to_string(cfg.ttl_ms), std::to_string(a.written_ms)};
  std::vector<std::string> operand;
  size_t n = 0;
  switch (a.op) {
    case OpCode::kStringSet: operand = {a.text}; n = 1; break;
    case OpCode::kNumberSet:
    case OpCode::kNumberIncr:
    case OpCode::kNumberMax:
    case OpCode::kNumberMin: operand = {Num(a.number)}; n = 1; break;
    case OpCode::kMapPut:
    case OpCode::kMapMerge:
    case OpCode::kMapDel:
      for (const auto& e : a.entries) {
        operand.push_back(e.key);
        operand.push_back(e.json);
      }
      n = a.entries.size();
      break;
    case OpCode::kMapIncr:
      for (const auto& e : a.entries) {
        operand.push_back(e.key);
        operand.push_back(Num(e.number));
      }
      n = a.entries.size();
      break;
    case OpCode::kSetAdd:
    case OpCode::kSetAddl: operand = a.members; n = a.members.size(); break;
    case OpCode::kListRpush:
    case OpCode::kListRpushl:
      for (const auto& it : a.items) {
        operand.push_back(Num(it.sort));
        operand.push_back(it.key);
        operand.push_back(it.json);
        operand.push_back(std::to_string(it.ts));
        operand.push_back(std::to_string(static_cast<int>(it.source)));
      }
      n = a.items.size();
      break;
    case OpCode::kTagDel: break;
  }
  f.push_back(std::to_string(n));
  f.insert(f.end(), operand.begin(), operand.end());
  out->push_back(std::to_string(a.offset.value));
  out->push_back(a.id);
  out->push_back(std::to_string(static_cast<int>(a.op)));
  out->push_back(std::to_string(a.ts));
  out->push_back(std::to_string(static_cast<int>(a.source)));
  out->push_back(std::to_string(f.size()));
  out->insert(out->end(), f.begin(), f.end());
}

// A snapshot-loaded mark travels as operator 0 with the mark as its one field.
void EncodeMark(const Action& a, std::vector<std::string>* out) {
  out->push_back(std::to_string(a.offset.value));
  out->push_back("");
  out->push_back("0");
  out->push_back(std::to_string(a.ts));
  out->push_back(std::to_string(static_cast<int>(a.source)));
  out->push_back("1");
  out->push_back(a.text);
}

// Builds a TagState from one entry of portrait_get's answer.
bool DecodeTag(const RedisReply& e, const TagConfig& cfg, fusion::TagState* s) {
  if (e.elements.size() < 6) return false;
  s->type = static_cast<TagType>(std::atoi(e.elements[1].str.c_str()));
  if (s->type != cfg.type) return false;
  s->present = true;
  s->updated_at = static_cast<TimestampMs>(ToDouble(e.elements[2].str));
  if (!e.elements[3].str.empty()) SplitRegister(e.elements[3].str + "|", &s->set_ts, &s->set_source, nullptr);
  s->number_was_set = !e.elements[4].str.empty();
  const RedisReply& v = e.elements[5];
  switch (s->type) {
    case TagType::kString: s->text = v.str; break;
    case TagType::kNumber: s->number = ToDouble(v.str); break;
    case TagType::kMap: {
      if (e.elements.size() < 7) return false;
      std::map<std::string, std::string> meta;
      const auto& mw = e.elements[6].elements;
      for (size_t i = 0; i + 1 < mw.size(); i += 2) meta[mw[i].str] = mw[i + 1].str;
      for (size_t i = 0; i + 1 < v.elements.size(); i += 2) {
        fusion::MapValue mv;
        mv.json = v.elements[i + 1].str;
        std::string flag;
        if (auto it = meta.find(v.elements[i].str); it != meta.end()) SplitRegister(it->second, &mv.ts, &mv.source, &flag);
        double d = 0;
        auto [p, ec] = std::from_chars(mv.json.data(), mv.json.data() + mv.json.size(), d);
        mv.is_number = ec == std::errc() && p == mv.json.data() + mv.json.size();
        mv.number = mv.is_number ? d : 0;
        if (flag == "n") {  // made by incr: render as the fusion code does
          mv.json.clear();
          AppendJsonNumber(&mv.json, d);
        }
        s->map.emplace(v.elements[i].str, std::move(mv));
      }
      break;
    }
    case TagType::kSet:
      for (const auto& m : v.elements) s->members.insert(m.str);
      break;
    case TagType::kList: {
      if (e.elements.size() < 7) return false;
      const auto& items = e.elements[6].elements;
      for (size_t i = 0, j = 0; i + 1 < v.elements.size(); i += 2, ++j) {
        ListItem it;
        it.key = v.elements[i].str;
        it.sort = ToDouble(v.elements[i + 1].str);
        if (j < items.size()) SplitRegister(items[j].str, &it.ts, &it.source, &it.json);
        s->items.push_back(std::move(it));
      }
      break;
    }
  }
  return true;
}

class RedisStore : public ProfileStore, public RedisBackend {
 public:
  RedisStore(RedisStoreOptions o, const TagRegistry* tags, MetricsRegistry* m) : options_(std::move(o)), tags_(tags) {
    applied_ = m->GetCounter("portrait_store_actions_applied_total", "Actions written to the store", "backend=\"redis\"");
    write_seconds_ = m->GetHistogram("portrait_store_write_seconds", "Time of one store write", "backend=\"redis\"");
    moved_ = m->GetCounter("portrait_redis_redirections_total", "Cluster redirections followed", "kind=\"moved\"");
    ask_ = m->GetCounter("portrait_redis_redirections_total", "Cluster redirections followed", "kind=\"ask\"");
    retried_ = m->GetCounter("portrait_redis_retried_commands_total", "Redis commands sent again after a failure");
  }

  Status Open() {
    ASSIGN_OR_RETURN(auto c, NewClient());
    Release(std::move(c));
    return Status::Ok();
  }

  bool AppliesBatchesAtomically() const override { return false; }

  StoreHandles handles() override { return {nullptr, this}; }

  Status AddFunctionLibrary(std::string code) override {
    {
      std::lock_guard lk(mu_);
      libraries_.push_back(std::move(code));
      idle_.clear();  // clients made from now on load every library
    }
    ASSIGN_OR_RETURN(auto c, NewClient());  // loads it on every master now
    Release(std::move(c));
    return Status::Ok();
  }

  Status Apply(std::span<const Action> actions, std::span<const Checkpoint> checkpoints) override {
    auto start = std::chrono::steady_clock::now();
    std::vector<size_t> order(actions.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return actions[x].uid < actions[y].uid; });
    std::vector<RedisCommand> cmds;
    for (size_t i = 0; i < order.size();) {
      size_t j = i;
      const std::string& uid = actions[order[i]].uid;
      int32_t partition = actions[order[i]].partition.value;
      while (j < order.size() && actions[order[j]].uid == uid) {
        if (actions[order[j]].partition.value != partition) partition = -1;  // mixed: no offset guard
        ++j;
      }
      std::string p = Prefix(uid);
      std::vector<std::string_view> call_tags;
      for (size_t k = i; k < j; ++k) {
        std::string_view t = actions[order[k]].tag;
        if (t.empty()) continue;  // a snapshot mark: only the meta hash
        if (std::find(call_tags.begin(), call_tags.end(), t) == call_tags.end()) call_tags.push_back(t);
      }
      RedisCommand c = FunctionCall("apply", UserKeys(p, call_tags));
      size_t count_at = c.args.size() + 2;
      c.args.push_back(p);
      c.args.push_back(std::to_string(partition));
      c.args.push_back("0");
      size_t count = 0;
      for (size_t k = i; k < j; ++k) {
        const Action& a = actions[order[k]];
        if (IsSnapshotMark(a)) {
          EncodeMark(a, &c.args);
          ++count;
          continue;
        }
        const TagConfig* cfg = tags_->Find(a.tag);
        if (!cfg || !cfg->Allows(a.op)) continue;
        EncodeOperand(a, *cfg, &c.args);
        ++count;
      }
      c.args[count_at] = std::to_string(count);
      if (count > 0) cmds.push_back(std::move(c));
      i = j;
    }
    RETURN_IF_ERROR(Run(cmds));
    RETURN_IF_ERROR(WriteCheckpoints(checkpoints));
    applied_->Inc(actions.size());
    write_seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return Status::Ok();
  }

  Result<Profile> Get(std::string_view uid, std::span<const std::string> only, TimestampMs now) override {
    std::string u(uid);
    ASSIGN_OR_RETURN(auto profiles, GetMany({&u, 1}, only, now));
    return std::move(profiles[0]);
  }

  // One FCALL_RO portrait_get per user, all pipelined (per node in a cluster).
  Result<std::vector<Profile>> GetMany(std::span<const std::string> uids, std::span<const std::string> only,
                                       TimestampMs now) override {
    std::vector<const TagConfig*> wanted;
    if (only.empty()) {
      for (const auto& [_, cfg] : tags_->all()) wanted.push_back(&cfg);
    } else {
      for (const auto& name : only) {
        if (const TagConfig* cfg = tags_->Find(name)) wanted.push_back(cfg);
      }
    }
    std::vector<std::string_view> names;
    for (const TagConfig* cfg : wanted) names.push_back(cfg->name);
    std::vector<RedisCommand> cmds;
    for (const auto& uid : uids) {
      std::string p = Prefix(uid);
      RedisCommand c = FunctionCall("get", UserKeys(p, names));
      c.args.push_back(p);
      for (const TagConfig* cfg : wanted) {
        c.args.push_back(cfg->name);
        c.args.push_back(std::to_string(cfg->ttl_ms));
      }
      cmds.push_back(std::move(c));
    }
    std::vector<RedisReply> replies;
    RETURN_IF_ERROR(Run(cmds, &replies));
    std::vector<Profile> out(uids.size());
    for (size_t u = 0; u < uids.size(); ++u) {
      Profile& profile = out[u];
      profile.uid = uids[u];
      const RedisReply& r = replies[u];
      if (r.elements.size() < 2) return Status::Corruption("redis: unexpected portrait_get answer for " + uids[u]);
      profile.meta.realtime_updated_at = static_cast<TimestampMs>(ToDouble(r.elements[0].str));
      profile.meta.snapshot = r.elements[1].str;
      for (size_t i = 2; i < r.elements.size(); ++i) {
        const RedisReply& e = r.elements[i];
        if (e.elements.empty()) continue;
        const TagConfig* cfg = tags_->Find(e.elements[0].str);
        if (!cfg) continue;
        TagValue tv;
        tv.name = e.elements[0].str;
        if (!DecodeTag(e, *cfg, &tv.state) || !fusion::IsLive(tv.state, *cfg, now)) continue;
        profile.tags.push_back(std::move(tv));
      }
      std::sort(profile.tags.begin(), profile.tags.end(), [](auto& a, auto& b) { return a.name < b.name; });
    }
    return out;
  }

  Status RecordHistory(std::span<const HistoryEntry> entries, const HistoryConfig& cfg) override {
    std::map<std::string_view, std::vector<const HistoryEntry*>> by_user;
    const TimestampMs now = NowMs();
    for (const auto& e : entries) {
      if (cfg.retention_ms <= 0 || e.ts >= now - cfg.retention_ms) by_user[e.uid].push_back(&e);
    }
    std::vector<RedisCommand> cmds;
    for (const auto& [uid, list] : by_user) {
      std::string p = Prefix(uid);
      std::string key = p + "h";
      RedisCommand add{{"ZADD", key}, key};
      for (const HistoryEntry* e : list) {
        add.args.push_back(std::to_string(e->ts));
        add.args.push_back(e->id + '\x1f' + e->type + '\x1f' + e->event);  // binary-safe
      }
      cmds.push_back(std::move(add));
      if (cfg.retention_ms > 0) {
        cmds.push_back({{"ZREMRANGEBYSCORE", key, "-inf", "(" + std::to_string(now - cfg.retention_ms)}, key});
        cmds.push_back({{"PEXPIRE", key, std::to_string(cfg.retention_ms)}, key});
      }
      cmds.push_back({{"ZREMRANGEBYRANK", key, "0", std::to_string(-static_cast<int64_t>(cfg.max_per_user) - 1)}, key});
      cmds.push_back({{"SADD", p + "k", key}, key});  // erased with the profile
    }
    return Run(cmds);
  }

  Result<std::vector<HistoryEntry>> ReadHistory(std::string_view uid, const HistoryQuery& q, const HistoryConfig& cfg,
                                                TimestampMs now) override {
    std::vector<HistoryEntry> out;
    std::string key = Prefix(uid) + "h";
    TimestampMs from = std::max(q.from, cfg.retention_ms > 0 ? now - cfg.retention_ms : q.from);
    std::string max = q.to == INT64_MAX ? "+inf" : std::to_string(q.to);
    size_t limit = q.limit;  // writes keep only the newest max_per_user
    for (size_t offset = 0;; offset += 500) {
      RedisCommand c{{"ZREVRANGEBYSCORE", key, max, std::to_string(from), "WITHSCORES", "LIMIT",
                      std::to_string(offset), "500"},
                     key};
      std::vector<RedisReply> replies;
      RETURN_IF_ERROR(Run({c}, &replies));
      const auto& el = replies[0].elements;
      for (size_t i = 0; i + 1 < el.size() && out.size() < limit; i += 2) {
        const std::string& m = el[i].str;
        size_t a = m.find('\x1f'), b = a == std::string::npos ? a : m.find('\x1f', a + 1);
        if (b == std::string::npos) return Status::Corruption("history of " + std::string(uid) + " is unreadable");
        HistoryEntry e{std::string(uid), static_cast<TimestampMs>(ToDouble(el[i + 1].str)), m.substr(0, a),
                       m.substr(a + 1, b - a - 1), m.substr(b + 1)};
        if (!q.type.empty() && e.type != q.type) continue;
        out.push_back(std::move(e));
      }
      if (out.size() >= limit || el.size() < 1000) break;
    }
    return out;
  }

  Status EraseAll() override {
    // Every key portrait writes starts with "p:{" (users) or is the checkpoint hash.
    ASSIGN_OR_RETURN(auto client, NewClient());
    RETURN_IF_ERROR(client->OnEveryMaster({{"EVAL",
                                             "local c = '0' repeat local r = redis.call('SCAN', c, 'MATCH', 'p:{*', "
                                             "'COUNT', 1000) c = r[1] for _, k in ipairs(r[2]) do redis.call('UNLINK', k) "
                                             "end until c == '0' return 1",
                                             "0"},
                                            ""}));
    return Run({{{"DEL", kCheckpointKey}, kCheckpointKey}});
  }

  Result<std::optional<Offset>> GetCheckpoint(std::string_view consumer, PartitionId p) override {
    RedisCommand c{{"HGET", kCheckpointKey, CheckpointField(consumer, p)}, kCheckpointKey};
    std::vector<RedisReply> replies;
    RETURN_IF_ERROR(Run({c}, &replies));
    if (replies[0].type == RedisReply::Type::kNil) return std::optional<Offset>();
    return std::optional<Offset>(Offset(static_cast<int64_t>(ToDouble(replies[0].str))));
  }

  Status DeleteProfile(std::string_view uid, std::span<const Checkpoint> checkpoints) override {
    std::string p = Prefix(uid);
    // The deletion record sits just before the checkpoint that follows it.
    std::string partition = "-1", offset = "-1";
    if (!checkpoints.empty()) {
      partition = std::to_string(checkpoints[0].partition.value);
      offset = std::to_string(checkpoints[0].next.value - 1);
    }
    std::vector<std::string_view> names;
    for (const auto& [name, _] : tags_->all()) names.push_back(name);
    RedisCommand c = FunctionCall("delete", UserKeys(p, names));
    c.args.insert(c.args.end(), {p, partition, offset});
    RETURN_IF_ERROR(Run({c}));
    return WriteCheckpoints(checkpoints);
  }

 private:
  static std::string CheckpointField(std::string_view consumer, PartitionId p) {
    return std::string(consumer) + "/" + std::to_string(p.value);
  }

  Status WriteCheckpoints(std::span<const Checkpoint> checkpoints) {
    if (checkpoints.empty()) return Status::Ok();
    RedisCommand c{{"HSET", kCheckpointKey}, kCheckpointKey};
    for (const auto& cp : checkpoints) {
      c.args.push_back(CheckpointField(cp.consumer, cp.partition));
      c.args.push_back(std::to_string(cp.next.value));
    }
    return Run({c});
  }

  Status Run(const std::vector<RedisCommand>& cmds, std::vector<RedisReply>* out = nullptr) override {
    if (cmds.empty()) return Status::Ok();
    std::unique_ptr<RedisClient> client;
    {
      std::lock_guard lk(mu_);
      if (!idle_.empty()) {
        client = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    if (!client) {
      ASSIGN_OR_RETURN(client, NewClient());
    }
    std::vector<RedisReply> replies;
    Status st = client->Execute(cmds, &replies);
    Release(std::move(client));
    RETURN_IF_ERROR(st);
    for (const auto& r : replies) {
      if (r.is_error()) return Status::Internal("redis: " + r.str);
    }
    if (out) *out = std::move(replies);
    return Status::Ok();
  }

  Result<std::unique_ptr<RedisClient>> NewClient() {
    RedisOptions ro;
    ro.nodes = options_.nodes;
    ro.cluster = options_.cluster;
    ro.retry_deadline_ms = options_.retry_deadline_ms;
    {
      std::lock_guard lk(mu_);
      ro.function_libraries = libraries_;
    }
    ro.moved = moved_;
    ro.ask = ask_;
    ro.retried = retried_;
    return RedisClient::Connect(std::move(ro));
  }

  void Release(std::unique_ptr<RedisClient> c) {
    std::lock_guard lk(mu_);
    idle_.push_back(std::move(c));
  }

  RedisStoreOptions options_;
  const TagRegistry* tags_;
  std::mutex mu_;
  std::vector<std::unique_ptr<RedisClient>> idle_;
  std::vector<std::string> libraries_ = {RedisFunctionLibrary()};  // profiles', then the features'  
  Counter* applied_;
  Histogram* write_seconds_;
  Counter* moved_;
  Counter* ask_;
  Counter* retried_;
};

}  // namespace

Result<std::unique_ptr<ProfileStore>> OpenRedisStore(const RedisStoreOptions& options, const TagRegistry* tags,
                                                     MetricsRegistry* metrics) {
  auto store = std::make_unique<RedisStore>(options, tags, metrics);
  RETURN_IF_ERROR(store->Open());
  return std::unique_ptr<ProfileStore>(std::move(store));
}

}  // namespace portrait
