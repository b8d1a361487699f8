#include "store/rocksdb/rocksdb_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/coding.h"

namespace portrait {
namespace {

constexpr char kProfilePrefix = 'p';
constexpr char kCheckpointPrefix = 'o';

std::string UserPrefix(std::string_view uid) {
  std::string k(1, kProfilePrefix);
  Writer(&k).Bytes(uid);
  return k;
}

std::string TagKey(std::string_view uid, std::string_view tag) { return UserPrefix(uid).append(tag); }

// Splits a profile key into (uid, tag); false if it is not one.
bool ParseTagKey(std::string_view key, std::string_view* uid, std::string_view* tag) {
  if (key.empty() || key[0] != kProfilePrefix) return false;
  Reader r(key.substr(1));
  *uid = r.Bytes();
  if (!r.ok()) return false;
  // Bytes() returned a view into key: the tag is everything after it.
  *tag = key.substr(static_cast<size_t>(uid->data() - key.data()) + uid->size());
  return true;
}

std::string CheckpointKey(std::string_view consumer, PartitionId p) {
  std::string k(1, kCheckpointPrefix);
  Writer w(&k);
  w.Bytes(consumer);
  w.Varint(static_cast<uint64_t>(p.value));
  return k;
}

// Runs the fusion operators inside RocksDB: FullMergeV2 folds operands into the stored
// state; PartialMerge pre-combines operands that fusion can combine. Never fails: an
// operand it cannot decode is skipped (and would have been rejected before writing).
class FusionMergeOperator : public rocksdb::MergeOperator {
 public:
  explicit FusionMergeOperator(const TagRegistry* tags) : tags_(tags) {}

  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    std::string_view uid, tag;
    if (!ParseTagKey(std::string_view(in.key.data(), in.key.size()), &uid, &tag)) return false;
    const TagConfig* cfg = tags_->Find(tag);
    out->new_value.clear();  // RocksDB may hand over a reused buffer
    fusion::TagState state;
    bool have_base = false;
    if (in.existing_value) {
      have_base = fusion::DecodeState(std::string_view(in.existing_value->data(), in.existing_value->size()), &state).ok();
    }
    if (!cfg) {
      // The tag left the config: keep what is stored, drop the operands.
      if (in.existing_value) {
        out->new_value.assign(in.existing_value->data(), in.existing_value->size());
      } else {
        fusion::EncodeState(state, &out->new_value);
      }
      return true;
    }
    if (!have_base) state.type = cfg->type;
    Action a;
    for (const auto& op : in.operand_list) {
      a = Action();
      if (!fusion::DecodeAction(std::string_view(op.data(), op.size()), &a).ok()) continue;
      fusion::Apply(state, a, *cfg);
    }
    fusion::EncodeState(state, &out->new_value);
    return true;
  }

  bool PartialMerge(const rocksdb::Slice& key, const rocksdb::Slice& left, const rocksdb::Slice& right,
                    std::string* new_value, rocksdb::Logger*) const override {
    std::string_view uid, tag;
    if (!ParseTagKey(std::string_view(key.data(), key.size()), &uid, &tag)) return false;
    const TagConfig* cfg = tags_->Find(tag);
    if (!cfg) return false;
    Action l, r;
    if (!fusion::DecodeAction(std::string_view(left.data(), left.size()), &l).ok()) return false;
    if (!fusion::DecodeAction(std::string_view(right.data(), right.size()), &r).ok()) return false;
    if (!fusion::TryCombine(l, r, *cfg)) return false;
    new_value->clear();
    fusion::EncodeAction(l, new_value);
    return true;
  }

  const char* Name() const override { return "portrait.fusion"; }

 private:
  const TagRegistry* tags_;
};

class RocksDbStore : public ProfileStore {
 public:
  RocksDbStore(const TagRegistry* tags, MetricsRegistry* m) : tags_(tags) {
    applied_ = m->GetCounter("portrait_store_actions_applied_total", "Actions written to the store", "backend=\"rocksdb\"");
    write_seconds_ = m->GetHistogram("portrait_store_write_seconds", "Time of one atomic store write", "backend=\"rocksdb\"");
  }

  Status Open(const RocksDbStoreOptions& o) {
    rocksdb::Options opts;
    opts.create_if_missing = true;
    opts.IncreaseParallelism(2);
    opts.max_background_jobs = 2;
    opts.write_buffer_size = 64 << 20;
    opts.compression = rocksdb::kLZ4Compression;
    opts.merge_operator = std::make_shared<FusionMergeOperator>(tags_);
    opts.max_successive_merges = 0;
    rocksdb::BlockBasedTableOptions t;
    t.block_cache = rocksdb::NewLRUCache(o.block_cache_mb << 20);
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
    std::error_code ec;
    std::filesystem::create_directories(o.path, ec);
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(opts, o.path, &db);
    if (!s.ok()) return Status::IOError("rocksdb open " + o.path + ": " + s.ToString());
    db_.reset(db);
    return Status::Ok();
  }

  Status Apply(std::span<const Action> actions, std::span<const Checkpoint> checkpoints) override {
    auto start = std::chrono::steady_clock::now();
    // Key order makes memtable inserts cheap; stable so one key's operands keep their order.
    std::vector<std::pair<std::string, size_t>> keys;
    keys.reserve(actions.size());
    for (size_t i = 0; i < actions.size(); ++i) keys.emplace_back(TagKey(actions[i].uid, actions[i].tag), i);
    std::stable_sort(keys.begin(), keys.end(), [](auto& a, auto& b) { return a.first < b.first; });
    rocksdb::WriteBatch batch;
    std::string operand;
    for (const auto& [key, i] : keys) {
      operand.clear();
      fusion::EncodeAction(actions[i], &operand);
      batch.Merge(key, operand);
    }
    for (const auto& c : checkpoints) {
      std::string v;
      Writer(&v).Varint(static_cast<uint64_t>(c.next.value));
      batch.Put(CheckpointKey(c.consumer, c.partition), v);
    }
    // No RocksDB WAL: the event log is the source of truth. Checkpoints share the memtable
    // with the changes they cover, so a crash loses both together and the processor
    // replays from the older checkpoint; close flushes the memtable.
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;
    rocksdb::Status s = db_->Write(wo, &batch);
    if (!s.ok()) return Status::IOError("rocksdb write: " + s.ToString());
    applied_->Inc(actions.size());
    write_seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return Status::Ok();
  }

  Result<Profile> Get(std::string_view uid, std::span<const std::string> only, TimestampMs now) override {
    Profile p;
    p.uid = uid;
    std::string prefix = UserPrefix(uid);
    // Upper bound: the prefix with its last byte incremented (unless that byte is 0xff,
    // where the starts_with check below ends the scan instead).
    std::string upper = prefix;
    upper.back() = static_cast<char>(upper.back() + 1);
    rocksdb::ReadOptions ro;
    rocksdb::Slice upper_slice(upper);
    bool bounded = static_cast<unsigned char>(prefix.back()) != 0xff;
    if (bounded) ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      std::string_view key(it->key().data(), it->key().size());
      if (!key.starts_with(prefix)) break;
      std::string_view tag = key.substr(prefix.size());
      if (!only.empty() && std::find(only.begin(), only.end(), tag) == only.end()) continue;
      const TagConfig* cfg = tags_->Find(tag);
      if (!cfg) continue;
      TagValue tv;
      tv.name = tag;
      Status st = fusion::DecodeState(std::string_view(it->value().data(), it->value().size()), &tv.state);
      if (!st.ok()) return st.WithContext("profile " + std::string(uid) + " tag " + tv.name);
      if (tv.state.type != cfg->type || !fusion::IsLive(tv.state, *cfg, now)) continue;
      p.tags.push_back(std::move(tv));
    }
    if (!it->status().ok()) return Status::IOError("rocksdb read: " + it->status().ToString());
    return p;
  }

  Result<std::optional<Offset>> GetCheckpoint(std::string_view consumer, PartitionId p) override {
    std::string v;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), CheckpointKey(consumer, p), &v);
    if (s.IsNotFound()) return std::optional<Offset>();
    if (!s.ok()) return Status::IOError("rocksdb read checkpoint: " + s.ToString());
    Reader r(v);
    uint64_t off = r.Varint();
    if (!r.ok()) return Status::Corruption("checkpoint for " + std::string(consumer) + " is unreadable");
    return std::optional<Offset>(Offset(static_cast<int64_t>(off)));
  }

 private:
  const TagRegistry* tags_;
  std::unique_ptr<rocksdb::DB> db_;
  Counter* applied_;
  Histogram* write_seconds_;
};

}  // namespace

Result<std::unique_ptr<ProfileStore>> OpenRocksDbStore(const RocksDbStoreOptions& options, const TagRegistry* tags,
                                                       MetricsRegistry* metrics) {
  auto store = std::make_unique<RocksDbStore>(tags, metrics);
  RETURN_IF_ERROR(store->Open(options));
  return std::unique_ptr<ProfileStore>(std::move(store));
}

}  // namespace portrait
