#include "store/rocksdb/rocksdb_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <tuple>
#include <optional>

#include "core/coding.h"
#include "store/rocksdb/key_space.h"

namespace portrait {
namespace {

constexpr uint8_t kProfileFormat = 1;
constexpr uint8_t kOperandFormat = 1;
// Entries of a stored profile that are not tags (tag names cannot start with \x01).
constexpr std::string_view kIdsEntry = "\x01ids";
constexpr std::string_view kMetaEntry = "\x01meta";

// One key per user holds all of the user's tags, so a batch writes one merge operand per
// user (not one per tag) and a profile read is one bloom-filtered point lookup.
std::string ProfileKey(std::string_view uid) {
  std::string k(1, rocksdb_keys::kProfile);
  k.append(uid);
  return k;
}

std::string CheckpointKey(std::string_view consumer, PartitionId p) {
  std::string k(1, rocksdb_keys::kCheckpoint);
  Writer w(&k);
  w.Bytes(consumer);
  w.Varint(static_cast<uint64_t>(p.value));
  return k;
}

// A stored profile: tag name -> encoded TagState. Tags are decoded only when touched, so
// a merge that changes one tag does not pay for the others.
struct StoredTag {
  std::string raw;
  std::optional<fusion::TagState> state;
};
using StoredProfile = std::map<std::string, StoredTag, std::less<>>;

bool DecodeProfile(std::string_view in, StoredProfile* out) {
  Reader r(in);
  if (r.U8() != kProfileFormat) return false;
  uint64_t n = r.Varint();
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    std::string name(r.Bytes());
    std::string_view raw = r.Bytes();
    (*out)[std::move(name)].raw = raw;
  }
  return r.ok() && r.done();
}

void EncodeProfile(StoredProfile& p, std::string* out) {
  Writer w(out);
  w.U8(kProfileFormat);
  w.Varint(p.size());
  std::string buf;
  for (auto& [name, t] : p) {
    w.Bytes(name);
    if (t.state) {
      buf.clear();
      fusion::EncodeState(*t.state, &buf);
      w.Bytes(buf);
    } else {
      w.Bytes(t.raw);
    }
  }
}

// A merge operand: (tag, encoded Action) pairs in application order.
using OperandEntries = std::vector<std::pair<std::string_view, std::string_view>>;

bool DecodeOperand(std::string_view in, OperandEntries* out) {
  Reader r(in);
  if (r.U8() != kOperandFormat) return false;
  uint64_t n = r.Varint();
  if (!r.ok() || n > in.size()) return false;
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view tag = r.Bytes();
    std::string_view action = r.Bytes();
    out->emplace_back(tag, action);
  }
  return r.ok() && r.done();
}

// History key: 'h' varint(len(uid)) uid.
std::string HistoryPrefix(std::string_view uid) {
  std::string k(1, rocksdb_keys::kHistory);
  Writer(&k).Bytes(uid);
  return k;
}

// A user's history is one key ('h' + uid) whose value is a list of (ts, id, type, event),
// newest first; a batch adds the user's new events as one merge operand (a list too).
struct HistoryItem {
  TimestampMs ts;
  std::string_view id, type, event;
};

bool DecodeHistoryList(std::string_view in, std::vector<HistoryItem>* out) {
  Reader r(in);
  uint64_t n = r.Varint();
  if (!r.ok() || n > in.size()) return false;
  for (uint64_t i = 0; i < n; ++i) {
    HistoryItem h;
    h.ts = r.SignedVarint();
    h.id = r.Bytes();
    h.type = r.Bytes();
    h.event = r.Bytes();
    out->push_back(h);
  }
  return r.ok() && r.done();
}

void EncodeHistoryList(const std::vector<HistoryItem>& items, std::string* out) {
  Writer w(out);
  w.Varint(items.size());
  for (const auto& h : items) {
    w.SignedVarint(h.ts);
    w.Bytes(h.id);
    w.Bytes(h.type);
    w.Bytes(h.event);
  }
}

// Newest first, one per id, at most `max` items, none older than `oldest`.
void NormalizeHistory(std::vector<HistoryItem>* items, size_t max, TimestampMs oldest) {
  std::stable_sort(items->begin(), items->end(), [](const HistoryItem& a, const HistoryItem& b) {
    return std::tie(a.ts, a.id) > std::tie(b.ts, b.id);
  });
  std::vector<HistoryItem> out;
  for (const auto& h : *items) {
    if (h.ts < oldest || out.size() >= max) break;
    if (!out.empty() && out.back().ts == h.ts && out.back().id == h.id) continue;
    out.push_back(h);
  }
  *items = std::move(out);
}

struct HistoryLimits {
  std::atomic<int64_t> retention_ms{0};
  std::atomic<int64_t> max_per_user{INT64_MAX};
  TimestampMs Oldest() const {
    int64_t r = retention_ms.load();
    return r > 0 ? NowMs() - r : INT64_MIN;
  }
};

// Drops histories whose newest event is past the retention while RocksDB compacts.
class HistoryRetention : public rocksdb::CompactionFilter {
 public:
  explicit HistoryRetention(const HistoryLimits* limits) : limits_(limits) {}
  bool Filter(int, const rocksdb::Slice& key, const rocksdb::Slice& value, std::string*, bool*) const override {
    if (!key.empty() && rocksdb_keys::ExpiresByValue(key[0])) {
      Reader r(std::string_view(value.data(), value.size()));
      uint64_t expires = r.Fixed64();
      return r.ok() && static_cast<TimestampMs>(expires) < NowMs();
    }
    if (key.empty() || key[0] != rocksdb_keys::kHistory || limits_->retention_ms.load() <= 0) return false;
    Reader r(std::string_view(value.data(), value.size()));
    if (r.Varint() == 0 || !r.ok()) return true;
    return r.SignedVarint() < limits_->Oldest();
  }
  const char* Name() const override { return "portrait.history_retention"; }

 private:
  const HistoryLimits* limits_;
};

// Runs the fusion operators inside RocksDB: FullMergeV2 folds operands into the stored
// profile; PartialMerge joins operands, pre-combining actions fusion can combine. Never
// fails on content: an undecodable operand entry is skipped (writers only write valid
// ones), a tag no longer in the config keeps its stored state untouched.
class FusionMergeOperator : public rocksdb::MergeOperator {
 public:
  FusionMergeOperator(const TagRegistry* tags, const HistoryLimits* limits) : tags_(tags), limits_(limits) {}

  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    if (!in.key.empty() && in.key[0] == rocksdb_keys::kHistory) return MergeHistory(in, out);
    StoredProfile profile;
    if (in.existing_value) {
      if (!DecodeProfile(std::string_view(in.existing_value->data(), in.existing_value->size()), &profile)) {
        return false;  // surfaces as Corruption to the reader instead of silently dropping data
      }
    }
    OperandEntries entries;
    Action a;
    std::optional<fusion::AppliedIds> ids;
    std::optional<fusion::ProfileMeta> meta;
    for (const auto& op : in.operand_list) {
      entries.clear();
      if (!DecodeOperand(std::string_view(op.data(), op.size()), &entries)) continue;
      for (const auto& [tag, action] : entries) {
        const TagConfig* cfg = tags_->Find(tag);
        if (!cfg && !tag.empty()) continue;
        a = Action();
        if (!fusion::DecodeAction(action, &a).ok()) continue;
        a.tag = tag;
        if (!meta) {
          meta.emplace();
          auto it = profile.find(kMetaEntry);
          if (it != profile.end()) meta->Decode(it->second.raw);
        }
        if (!cfg) {  // a snapshot-loaded mark
          meta->Observe(a);
          continue;
        }
        if (fusion::ExpiredWhenWritten(a, *cfg)) continue;  // changes nothing, freshness neither
        if (!a.id.empty() && fusion::NeedsExactlyOnce(a.op)) {
          if (!ids) {
            ids.emplace();
            auto it = profile.find(kIdsEntry);
            if (it != profile.end()) ids->Decode(it->second.raw);
          }
          if (!ids->Record(a.id, a.ts)) continue;  // applied before: a retry
        }
        meta->Observe(a);
        StoredTag& t = profile[std::string(tag)];
        if (!t.state) {
          t.state.emplace();
          if (t.raw.empty() || !fusion::DecodeState(t.raw, &*t.state).ok()) {
            *t.state = fusion::TagState();
            t.state->type = cfg->type;
          }
        }
        fusion::Apply(*t.state, a, *cfg);
      }
    }
    if (ids) {
      StoredTag& t = profile[std::string(kIdsEntry)];
      t.raw.clear();
      ids->Encode(&t.raw);
    }
    if (meta) {
      StoredTag& t = profile[std::string(kMetaEntry)];
      t.raw.clear();
      meta->Encode(&t.raw);
    }
    out->new_value.clear();  // RocksDB may hand over a reused buffer
    EncodeProfile(profile, &out->new_value);
    return true;
  }

  bool PartialMerge(const rocksdb::Slice& key, const rocksdb::Slice& left, const rocksdb::Slice& right,
                    std::string* new_value, rocksdb::Logger*) const override {
    if (!key.empty() && key[0] == rocksdb_keys::kHistory) {
      std::vector<HistoryItem> items;
      if (!DecodeHistoryList(std::string_view(left.data(), left.size()), &items) ||
          !DecodeHistoryList(std::string_view(right.data(), right.size()), &items)) {
        return false;
      }
      new_value->clear();
      EncodeHistoryList(items, new_value);
      return true;
    }
    OperandEntries entries;
    if (!DecodeOperand(std::string_view(left.data(), left.size()), &entries)) return false;
    if (!DecodeOperand(std::string_view(right.data(), right.size()), &entries)) return false;
    std::vector<std::pair<std::string_view, Action>> merged;
    for (const auto& [tag, raw] : entries) {
      Action a;
      if (!fusion::DecodeAction(raw, &a).ok()) return false;
      const TagConfig* cfg = tags_->Find(tag);
      auto last = std::find_if(merged.rbegin(), merged.rend(), [&](auto& m) { return m.first == tag; });
      if (cfg && last != merged.rend() && fusion::TryCombine(last->second, a, *cfg)) continue;
      merged.emplace_back(tag, std::move(a));
    }
    new_value->clear();
    Writer w(new_value);
    w.U8(kOperandFormat);
    w.Varint(merged.size());
    std::string buf;
    for (const auto& [tag, a] : merged) {
      w.Bytes(tag);
      buf.clear();
      fusion::EncodeAction(a, &buf);
      w.Bytes(buf);
    }
    return true;
  }

  const char* Name() const override { return "portrait.fusion.profile"; }

 private:
  bool MergeHistory(const MergeOperationInput& in, MergeOperationOutput* out) const {
    std::vector<HistoryItem> items;
    if (in.existing_value && !DecodeHistoryList(std::string_view(in.existing_value->data(), in.existing_value->size()), &items)) {
      return false;
    }
    for (const auto& op : in.operand_list) DecodeHistoryList(std::string_view(op.data(), op.size()), &items);
    NormalizeHistory(&items, static_cast<size_t>(limits_->max_per_user.load()), limits_->Oldest());
    out->new_value.clear();
    EncodeHistoryList(items, &out->new_value);
    return true;
  }

  const TagRegistry* tags_;
  const HistoryLimits* limits_;
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
    opts.merge_operator = std::make_shared<FusionMergeOperator>(tags_, &history_limits_);
    opts.compaction_filter = &history_retention_;
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

  StoreHandles handles() override { return {db_.get(), nullptr}; }

  Status Apply(std::span<const Action> actions, std::span<const Checkpoint> checkpoints) override {
    return ApplyWithHistory(actions, {}, HistoryConfig{}, checkpoints);
  }

  Status ApplyWithHistory(std::span<const Action> actions, std::span<const HistoryEntry> history,
                          const HistoryConfig& cfg, std::span<const Checkpoint> checkpoints) override {
    auto start = std::chrono::steady_clock::now();
    rocksdb::WriteBatch batch;
    AddHistory(history, cfg, &batch);
    // One operand per user; users in key order, which makes memtable inserts cheaper.
    std::vector<size_t> order(actions.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return actions[x].uid < actions[y].uid; });
    std::string operand, action, key;
    const TimestampMs now = NowMs();  // a ttl'd tag judges expiry at its write (fusion::Apply)
    for (size_t i = 0; i < order.size();) {
      size_t j = i;
      while (j < order.size() && actions[order[j]].uid == actions[order[i]].uid) ++j;
      operand.clear();
      Writer w(&operand);
      w.U8(kOperandFormat);
      w.Varint(j - i);
      for (size_t k = i; k < j; ++k) {
        const Action& a = actions[order[k]];
        w.Bytes(a.tag);
        action.clear();
        const TagConfig* cfg = a.tag.empty() ? nullptr : tags_->Find(a.tag);
        fusion::EncodeAction(a, &action, cfg && cfg->ttl_ms > 0 && a.written_ms == 0 ? now : 0);
        w.Bytes(action);
      }
      key = ProfileKey(actions[order[i]].uid);
      batch.Merge(key, operand);
      i = j;
    }
    AddCheckpoints(checkpoints, &batch);
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
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), ProfileKey(uid), &value);
    if (s.IsNotFound()) return p;
    if (!s.ok()) return Status::IOError("rocksdb read profile " + std::string(uid) + ": " + s.ToString());
    StoredProfile stored;
    if (!DecodeProfile(value, &stored)) return Status::Corruption("profile " + std::string(uid) + " is unreadable");
    if (auto it = stored.find(kMetaEntry); it != stored.end()) p.meta.Decode(it->second.raw);
    for (auto& [name, t] : stored) {
      if (name.starts_with('\x01')) continue;
      if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
      const TagConfig* cfg = tags_->Find(name);
      if (!cfg) continue;
      TagValue tv;
      tv.name = name;
      Status st = fusion::DecodeState(t.raw, &tv.state);
      if (!st.ok()) return st.WithContext("profile " + std::string(uid) + " tag " + name);
      if (tv.state.type != cfg->type || !fusion::IsLive(tv.state, *cfg, now)) continue;
      p.tags.push_back(std::move(tv));
    }
    return p;
  }

  Status RecordHistory(std::span<const HistoryEntry> entries, const HistoryConfig& cfg) override {
    rocksdb::WriteBatch batch;
    AddHistory(entries, cfg, &batch);
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;  // the log replays history too
    rocksdb::Status s = db_->Write(wo, &batch);
    if (!s.ok()) return Status::IOError("rocksdb history write: " + s.ToString());
    return Status::Ok();
  }

  Result<std::vector<HistoryEntry>> ReadHistory(std::string_view uid, const HistoryQuery& q, const HistoryConfig& cfg,
                                                TimestampMs now) override {
    std::vector<HistoryEntry> out;
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), HistoryPrefix(uid), &value);
    if (s.IsNotFound()) return out;
    if (!s.ok()) return Status::IOError("rocksdb history read: " + s.ToString());
    std::vector<HistoryItem> items;
    if (!DecodeHistoryList(value, &items)) return Status::Corruption("history of " + std::string(uid) + " is unreadable");
    // Stored newest first, already cut to the limits in force when it was merged.
    TimestampMs from = std::max(q.from, cfg.retention_ms > 0 ? now - cfg.retention_ms : q.from);
    for (size_t i = 0; i < items.size() && i < cfg.max_per_user && out.size() < q.limit; ++i) {
      const HistoryItem& h = items[i];
      if (h.ts > q.to) continue;
      if (h.ts < from) break;
      if (!q.type.empty() && h.type != q.type) continue;
      out.push_back({std::string(uid), h.ts, std::string(h.id), std::string(h.type), std::string(h.event)});
    }
    return out;
  }

  Status Flush() override {
    rocksdb::Status s = db_->Flush(rocksdb::FlushOptions());
    if (!s.ok()) return Status::IOError("rocksdb flush: " + s.ToString());
    return Status::Ok();
  }

  Status EraseAll() override {
    rocksdb::WriteBatch batch;
    for (char prefix : {rocksdb_keys::kProfile, rocksdb_keys::kHistory, rocksdb_keys::kCheckpoint}) {
      batch.DeleteRange(std::string(1, prefix), std::string(1, static_cast<char>(prefix + 1)));
    }
    rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch);
    if (s.ok()) s = db_->Flush(rocksdb::FlushOptions());
    if (!s.ok()) return Status::IOError("rocksdb erase: " + s.ToString());
    return Status::Ok();
  }

  Status DeleteProfile(std::string_view uid, std::span<const Checkpoint> checkpoints) override {
    rocksdb::WriteBatch batch;
    batch.Delete(ProfileKey(uid));
    batch.Delete(HistoryPrefix(uid));
    AddCheckpoints(checkpoints, &batch);
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;
    rocksdb::Status s = db_->Write(wo, &batch);
    if (!s.ok()) return Status::IOError("rocksdb delete: " + s.ToString());
    return Status::Ok();
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
  void AddHistory(std::span<const HistoryEntry> entries, const HistoryConfig& cfg, rocksdb::WriteBatch* batch) {
    if (entries.empty()) return;
    history_limits_.retention_ms.store(cfg.retention_ms);
    history_limits_.max_per_user.store(static_cast<int64_t>(cfg.max_per_user));
    const TimestampMs oldest = history_limits_.Oldest();
    std::map<std::string_view, std::vector<HistoryItem>> by_user;
    for (const auto& e : entries) {
      if (e.ts >= oldest) by_user[e.uid].push_back({e.ts, e.id, e.type, e.event});  // older: never served
    }
    std::string operand;
    for (const auto& [uid, items] : by_user) {
      operand.clear();
      EncodeHistoryList(items, &operand);
      batch->Merge(HistoryPrefix(uid), operand);
    }
  }

  HistoryLimits history_limits_;
  HistoryRetention history_retention_{&history_limits_};

  static void AddCheckpoints(std::span<const Checkpoint> checkpoints, rocksdb::WriteBatch* batch) {
    for (const auto& c : checkpoints) {
      std::string v;
      Writer(&v).Varint(static_cast<uint64_t>(c.next.value));
      batch->Put(CheckpointKey(c.consumer, c.partition), v);
    }
  }

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
