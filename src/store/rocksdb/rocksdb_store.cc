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

namespace portrait {
namespace {

constexpr char kProfilePrefix = 'p';
constexpr char kCheckpointPrefix = 'o';
constexpr char kHistoryPrefix = 'h';
// Channel figures (store/channel_store.h): registry records, real-time counts, calibrated
// counts and calibrated days, each keyed by product first.
constexpr char kIdentityPrefix = 'n';
constexpr char kCountPrefix = 'c';
constexpr char kCalibratedPrefix = 'k';
constexpr char kCalibratedDayPrefix = 'q';
// Decisions (store/decision_store.h): rule state per user and recent decisions per user;
// both values start with their expiry (wall clock ms, fixed64).
constexpr char kRuleStatePrefix = 'r';
constexpr char kDecisionPrefix = 'y';
constexpr uint8_t kProfileFormat = 1;
constexpr uint8_t kOperandFormat = 1;
// Entries of a stored profile that are not tags (tag names cannot start with \x01).
constexpr std::string_view kIdsEntry = "\x01ids";
constexpr std::string_view kMetaEntry = "\x01meta";

// One key per user holds all of the user's tags, so a batch writes one merge operand per
// user (not one per tag) and a profile read is one bloom-filtered point lookup.
std::string ProfileKey(std::string_view uid) {
  std::string k(1, kProfilePrefix);
  k.append(uid);
  return k;
}

std::string CheckpointKey(std::string_view consumer, PartitionId p) {
  std::string k(1, kCheckpointPrefix);
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
  std::string k(1, kHistoryPrefix);
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
    if (!key.empty() && (key[0] == kRuleStatePrefix || key[0] == kDecisionPrefix)) {
      Reader r(std::string_view(value.data(), value.size()));
      uint64_t expires = r.Fixed64();
      return r.ok() && static_cast<TimestampMs>(expires) < NowMs();
    }
    if (key.empty() || key[0] != kHistoryPrefix || limits_->retention_ms.load() <= 0) return false;
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
    if (!in.key.empty() && in.key[0] == kHistoryPrefix) return MergeHistory(in, out);
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
    if (!key.empty() && key[0] == kHistoryPrefix) {
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

void AppendBigEndian(std::string* out, TimestampMs v) {
  uint64_t u = static_cast<uint64_t>(v) ^ (1ull << 63);  // sorts signed values in order
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((u >> (i * 8)) & 0xff));
}

TimestampMs ReadBigEndian(std::string_view in) {
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<uint8_t>(in[i]);
  return static_cast<TimestampMs>(u ^ (1ull << 63));
}

std::string ProductKey(char prefix, std::string_view product) {
  std::string k(1, prefix);
  Writer(&k).Bytes(product);
  return k;
}

// prefix product hour channel
std::string HourKey(char prefix, std::string_view product, TimestampMs hour, std::string_view channel) {
  std::string k = ProductKey(prefix, product);
  AppendBigEndian(&k, hour);
  k.append(channel);
  return k;
}

void EncodeIdentity(const Identity& id, std::string* out) {
  Writer w(out);
  w.SignedVarint(id.first_ts);
  w.Bytes(id.channel);
  w.Bytes(id.owner);
}

bool DecodeIdentity(std::string_view in, Identity* id) {
  Reader r(in);
  id->first_ts = r.SignedVarint();
  id->channel = r.Bytes();
  id->owner = r.Bytes();
  return r.ok() && r.done();
}

// The channel figures of the RocksDB store. Observe reads and writes the registry under
// one mutex: after the processor's first-seen filter, it sees the events that may change
// something (a new identity, an earlier first event), a small share of all.
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

 private:
  static std::string StateKey(std::string_view uid) {
    std::string k(1, kRuleStatePrefix);
    k.append(uid);
    return k;
  }
  static std::string DecisionUserPrefix(std::string_view uid) {
    std::string k(1, kDecisionPrefix);
    Writer(&k).Bytes(uid);
    return k;
  }
  static void AppendBigEndian(uint64_t v, std::string* out) {
    for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
  }

  rocksdb::DB* db_;
  std::atomic<size_t> keep_{DecisionsConfig().keep_per_user};
};

class RocksDbChannels : public ChannelStore {
 public:
  explicit RocksDbChannels(rocksdb::DB* db) : db_(db) {}

  Status Observe(std::span<const Sighting> sightings) override {
    if (sightings.empty()) return Status::Ok();
    std::lock_guard lk(mu_);
    struct Record {
      std::optional<Identity> value;
      bool changed = false;
    };
    std::map<std::string, Record> records;  // full key -> record read or written
    std::map<std::string, int64_t> deltas;                   // count key -> change
    Status error = Status::Ok();
    // The records the sightings name, in one MultiGet (an owner named by a device record
    // is read when the rule gets to it).
    {
      std::vector<std::string> keys;
      for (const Sighting& s : sightings) {
        std::string prefix = ProductKey(kIdentityPrefix, s.product);
        if (!s.uid.empty()) keys.push_back(prefix + "u" + s.uid);
        if (!s.device.empty()) keys.push_back(prefix + "d" + s.device);
      }
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      ASSIGN_OR_RETURN(auto recs, ReadRecords(keys));
      for (size_t i = 0; i < keys.size(); ++i) records.emplace(std::move(keys[i]), Record{std::move(recs[i]), false});
    }
    for (const Sighting& s : sightings) {
      std::string prefix = ProductKey(kIdentityPrefix, s.product);
      auto get = [&](const std::string& key) -> const Identity* {
        std::string full = prefix + key;
        auto it = records.find(full);
        if (it == records.end()) {
          auto rec = ReadRecords({&full, 1});
          if (!rec.ok()) {
            error = rec.status();
            return nullptr;
          }
          it = records.emplace(std::move(full), Record{std::move((*rec)[0]), false}).first;
        }
        return it->second.value ? &*it->second.value : nullptr;
      };
      auto put = [&](const std::string& key, Identity id) { records[prefix + key] = Record{std::move(id), true}; };
      auto count = [&](TimestampMs hour, std::string_view channel, int64_t d) {
        deltas[HourKey(kCountPrefix, s.product, hour, channel)] += d;
      };
      ApplySighting(s, get, put, count);
      if (!error.ok()) return error;
    }
    rocksdb::WriteBatch batch;
    std::string v;
    for (const auto& [key, rec] : records) {
      if (!rec.changed) continue;
      v.clear();
      EncodeIdentity(*rec.value, &v);
      batch.Put(key, v);
    }
    for (const auto& [key, d] : deltas) {
      if (d == 0) continue;
      int64_t n = 0;
      std::string cur;
      rocksdb::Status st = db_->Get(rocksdb::ReadOptions(), key, &cur);
      if (st.ok()) {
        Reader r(cur);
        n = r.SignedVarint();
      } else if (!st.IsNotFound()) {
        return Status::IOError("rocksdb read channel count: " + st.ToString());
      }
      n += d;
      if (n == 0) {
        batch.Delete(key);
      } else {
        v.clear();
        Writer(&v).SignedVarint(n);
        batch.Put(key, v);
      }
    }
    // Like the profiles, without a WAL: the log replays what a crash loses, and applying
    // a sighting again changes nothing.
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;
    rocksdb::Status st = db_->Write(wo, &batch);
    if (!st.ok()) return Status::IOError("rocksdb channel write: " + st.ToString());
    return Status::Ok();
  }

  Result<ChannelFigures> Read(std::string_view product, TimestampMs from, TimestampMs to) override {
    ChannelFigures f;
    auto scan = [&](char prefix, std::vector<ChannelCount>* out) -> Status {
      std::string lo = ProductKey(prefix, product), hi = lo;
      AppendBigEndian(&lo, from);
      AppendBigEndian(&hi, to);
      const size_t head = ProductKey(prefix, product).size();
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
      for (it->Seek(lo); it->Valid() && it->key().compare(hi) < 0; it->Next()) {
        std::string_view k(it->key().data(), it->key().size());
        if (k.size() < head + 8) continue;
        Reader r(std::string_view(it->value().data(), it->value().size()));
        int64_t n = r.SignedVarint();
        if (!r.ok()) return Status::Corruption("channel count " + std::string(product) + " is unreadable");
        out->push_back({ReadBigEndian(k.substr(head, 8)), std::string(k.substr(head + 8)), n});
      }
      if (!it->status().ok()) return Status::IOError("rocksdb channel scan: " + it->status().ToString());
      return Status::Ok();
    };
    RETURN_IF_ERROR(scan(kCountPrefix, &f.realtime));
    RETURN_IF_ERROR(scan(kCalibratedPrefix, &f.calibrated));
    std::string lo = ProductKey(kCalibratedDayPrefix, product), hi = lo;
    const size_t head = lo.size();
    AppendBigEndian(&lo, FloorTo(from, kDayMs));
    AppendBigEndian(&hi, to);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(lo); it->Valid() && it->key().compare(hi) < 0; it->Next()) {
      std::string_view k(it->key().data(), it->key().size());
      if (k.size() != head + 8) continue;
      f.days.push_back({ReadBigEndian(k.substr(head)), it->value().ToString()});
    }
    if (!it->status().ok()) return Status::IOError("rocksdb channel scan: " + it->status().ToString());
    return f;
  }

  Result<std::vector<std::optional<Identity>>> Lookup(std::string_view product,
                                                     std::span<const std::string> keys) override {
    std::vector<std::string> full;
    full.reserve(keys.size());
    std::string prefix = ProductKey(kIdentityPrefix, product);
    for (const auto& k : keys) full.push_back(prefix + k);
    return ReadRecords(full);
  }

  Status WriteCalibration(std::string_view product, TimestampMs day, std::span<const ChannelCount> counts,
                          std::string_view summary) override {
    rocksdb::WriteBatch batch;
    std::string lo = ProductKey(kCalibratedPrefix, product), hi = lo;
    AppendBigEndian(&lo, day);
    AppendBigEndian(&hi, day + kDayMs);
    batch.DeleteRange(lo, hi);
    std::string v;
    for (const auto& c : counts) {
      if (c.count == 0) continue;
      v.clear();
      Writer(&v).SignedVarint(c.count);
      batch.Put(HourKey(kCalibratedPrefix, product, c.hour, c.channel), v);
    }
    std::string dk = ProductKey(kCalibratedDayPrefix, product);
    AppendBigEndian(&dk, day);
    batch.Put(dk, rocksdb::Slice(summary.data(), summary.size()));
    // Not in the log: written through the WAL, synced.
    rocksdb::WriteOptions wo;
    wo.sync = true;
    rocksdb::Status st = db_->Write(wo, &batch);
    if (!st.ok()) return Status::IOError("rocksdb calibration write: " + st.ToString());
    return Status::Ok();
  }

 private:
  // Registry records by full key, in one MultiGet; absent ones are nullopt.
  Result<std::vector<std::optional<Identity>>> ReadRecords(std::span<const std::string> keys) {
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<std::string> values;
    std::vector<rocksdb::Status> st = db_->MultiGet(rocksdb::ReadOptions(), slices, &values);
    std::vector<std::optional<Identity>> out(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (st[i].IsNotFound()) continue;
      if (!st[i].ok()) return Status::IOError("rocksdb read channel registry: " + st[i].ToString());
      Identity id;
      if (!DecodeIdentity(values[i], &id)) return Status::Corruption("channel registry record " + keys[i] + " is unreadable");
      out[i] = std::move(id);
    }
    return out;
  }

  rocksdb::DB* db_;
  std::mutex mu_;
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
    channels_ = std::make_unique<RocksDbChannels>(db_.get());
    decisions_ = std::make_unique<RocksDbDecisions>(db_.get());
    return Status::Ok();
  }

  ChannelStore* channels() override { return channels_.get(); }
  DecisionStore* decisions() override { return decisions_.get(); }

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
        fusion::EncodeAction(a, &action);
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
    for (char prefix : {kProfilePrefix, kHistoryPrefix, kCheckpointPrefix}) {
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
  std::unique_ptr<RocksDbChannels> channels_;
  std::unique_ptr<RocksDbDecisions> decisions_;
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
