// Rule state and recent decisions in the profile store's RocksDB database (key bytes in
// store/rocksdb/key_space.h; both namespaces expire by value).
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <atomic>

#include "core/coding.h"
#include "features/decisions/decision_store.h"
#include "store/rocksdb/key_space.h"
#include "features/decisions/decisions_config.h"

namespace portrait {
namespace {

// Rule state and recent decisions. Expired values are skipped on read and dropped by the
// compaction filter.
class RocksDbDecisions : public DecisionStore {
 public:
  explicit RocksDbDecisions(rocksdb::DB* db) : db_(db) {}

  Status ReadRuleStates(std::span<const std::string> uids, std::vector<std::string>* states) override {
    std::vector<std::string> keys;
    keys.reserve(uids.size());
    for (const std::string& uid : uids) keys.push_back(StateKey(uid));
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> st(keys.size());
    db_->MultiGet(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), keys.size(), slices.data(), values.data(),
                  st.data());
    states->assign(uids.size(), std::string());
    const TimestampMs now = NowMs();
    for (size_t i = 0; i < keys.size(); ++i) {
      if (st[i].IsNotFound()) continue;
      if (!st[i].ok()) return Status::IOError("rocksdb read rule state: " + st[i].ToString());
      Reader r(std::string_view(values[i].data(), values[i].size()));
      TimestampMs expires = static_cast<TimestampMs>(r.Fixed64());
      if (!r.ok()) return Status::Corruption("rule state of " + uids[i] + " is unreadable");
      if (expires >= now) (*states)[i].assign(values[i].data() + 8, values[i].size() - 8);
    }
    return Status::Ok();
  }

  Status WriteRuleStates(std::span<const RuleStateWrite> states, int64_t ttl_ms,
                         std::span<const StoredDecision> decisions, const DecisionsConfig& cfg) override {
    keep_.store(cfg.keep_per_user);
    rocksdb::WriteBatch batch;
    const TimestampMs now = NowMs();
    std::string v;
    for (const RuleStateWrite& s : states) {
      if (s.state.empty()) {
        batch.Delete(StateKey(s.uid));
        continue;
      }
      v.clear();
      Writer(&v).Fixed64(static_cast<uint64_t>(now + ttl_ms));
      v += s.state;
      batch.Put(StateKey(s.uid), v);
    }
    for (const StoredDecision& d : decisions) {
      std::string key = DecisionUserPrefix(d.uid);
      AppendBigEndian(static_cast<uint64_t>(d.at) ^ (1ULL << 63), &key);
      key += d.id;
      v.clear();
      Writer(&v).Fixed64(static_cast<uint64_t>(now + cfg.keep_ms));
      v += d.json;
      batch.Put(key, v);
    }
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;  // like the profiles: flushed before the log is trimmed
    rocksdb::Status s = db_->Write(wo, &batch);
    if (!s.ok()) return Status::IOError("rocksdb write rule state: " + s.ToString());
    return Status::Ok();
  }

  Result<std::vector<std::string>> RecentDecisions(std::string_view uid, size_t limit) override {
    const std::string prefix = DecisionUserPrefix(uid);
    std::string upper = prefix;
    upper.push_back('\xff');  // above every (at, id) suffix: at is 8 bytes, ids are ASCII
    upper.append(8, '\xff');
    rocksdb::ReadOptions ro;
    rocksdb::Slice lower_bound(prefix);
    ro.iterate_lower_bound = &lower_bound;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    std::vector<std::string> out;
    const TimestampMs now = NowMs();
    limit = std::min(limit, keep_.load());  // older ones wait for `keep` to pass, unserved
    for (it->SeekForPrev(upper); it->Valid() && out.size() < limit; it->Prev()) {
      if (!it->key().starts_with(prefix)) break;
      Reader r(std::string_view(it->value().data(), it->value().size()));
      TimestampMs expires = static_cast<TimestampMs>(r.Fixed64());
      if (!r.ok() || expires < now) continue;
      out.emplace_back(it->value().data() + 8, it->value().size() - 8);
    }
    if (!it->status().ok()) return Status::IOError("rocksdb read decisions: " + it->status().ToString());
    return out;
  }

  Status EraseUser(std::string_view uid) override {
    rocksdb::WriteBatch batch;
    batch.Delete(StateKey(uid));
    std::string from = DecisionUserPrefix(uid), to = from;
    to.push_back('\xff');  // above every (at, id) suffix
    to.append(9, '\xff');
    batch.DeleteRange(from, to);
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;
    rocksdb::Status s = db_->Write(wo, &batch);
    if (!s.ok()) return Status::IOError("rocksdb erase decisions: " + s.ToString());
    return Status::Ok();
  }

 private:
  static std::string StateKey(std::string_view uid) {
    std::string k(1, rocksdb_keys::kRuleState);
    k.append(uid);
    return k;
  }
  static std::string DecisionUserPrefix(std::string_view uid) {
    std::string k(1, rocksdb_keys::kDecision);
    Writer(&k).Bytes(uid);
    return k;
  }
  static void AppendBigEndian(uint64_t v, std::string* out) {
    for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
  }

  rocksdb::DB* db_;
  std::atomic<size_t> keep_{DecisionsConfig().keep_per_user};
};


}  // namespace

std::unique_ptr<DecisionStore> OpenRocksDbDecisions(rocksdb::DB* db) { return std::make_unique<RocksDbDecisions>(db); }

}  // namespace portrait
