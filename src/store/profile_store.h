// ProfileStore: where fused profiles live, and where the processor records how far it got.
//
// Apply() takes a batch of Actions plus consumer checkpoints and makes them visible
// atomically: after a crash either the whole batch (with its checkpoints) is there or
// none of it, so replaying from the stored checkpoint applies every action exactly once.
// Within one (uid, tag) actions apply in batch order. An action with an id whose operator
// is not idempotent (fusion::NeedsExactlyOnce) is applied at most once per user and id.
// Get() never returns a tag expired by its ttl. Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/action.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/status.h"
#include "fusion/fusion.h"

namespace rocksdb {
class DB;
}

namespace portrait {

class RedisBackend;

struct StoreHandles {
  rocksdb::DB* rocksdb = nullptr;  // the RocksDB database of the profiles
  RedisBackend* redis = nullptr;   // the Redis (Cluster) of the profiles
};

struct Checkpoint {
  std::string consumer;
  PartitionId partition;
  Offset next;  // the next log offset to process
};

struct TagValue {
  std::string name;
  fusion::TagState state;
};

struct Profile {
  std::string uid;
  std::vector<TagValue> tags;  // sorted by name
  fusion::ProfileMeta meta;    // freshness
};

// One event of a user's history, stored in its compact log encoding (core/event.h);
// readers render it as JSON (EventToJson) when they serve it.
struct HistoryEntry {
  std::string uid;
  TimestampMs ts = 0;
  std::string id;
  std::string type;
  std::string event;  // EncodeEvent bytes
};

struct HistoryQuery {
  std::string type;  // empty = every type
  TimestampMs from = 0, to = INT64_MAX;  // event time, inclusive
  size_t limit = 100;
};

class ProfileStore {
 public:
  virtual ~ProfileStore() = default;
  virtual Status Apply(std::span<const Action> actions, std::span<const Checkpoint> checkpoints) = 0;
  // Live tags of `uid`; all of them when `only` is empty. `now` decides ttl expiry.
  virtual Result<Profile> Get(std::string_view uid, std::span<const std::string> only, TimestampMs now) = 0;
  // Get() for many users at once, in the order given (a store may pipeline them).
  virtual Result<std::vector<Profile>> GetMany(std::span<const std::string> uids, std::span<const std::string> only,
                                               TimestampMs now) {
    std::vector<Profile> out;
    out.reserve(uids.size());
    for (const auto& uid : uids) {
      ASSIGN_OR_RETURN(Profile p, Get(uid, only, now));
      out.push_back(std::move(p));
    }
    return out;
  }
  // The offline snapshot each user's profile includes (ProfileMeta::snapshot; empty when
  // none), in the order given. Reads no tag.
  Result<std::vector<std::string>> GetSnapshotMarks(std::span<const std::string> uids) {
    const std::string no_tag;  // no tag has an empty name
    ASSIGN_OR_RETURN(auto profiles, GetMany(uids, {&no_tag, 1}, 0));
    std::vector<std::string> out;
    out.reserve(profiles.size());
    for (auto& p : profiles) out.push_back(std::move(p.meta.snapshot));
    return out;
  }
  virtual Result<std::optional<Offset>> GetCheckpoint(std::string_view consumer, PartitionId p) = 0;
  // Erases everything stored for `uid` (tags, applied ids, freshness) and records the
  // checkpoints, atomically.
  virtual Status DeleteProfile(std::string_view uid, std::span<const Checkpoint> checkpoints) = 0;
  // False when Apply() may land partly (a cluster): the store then skips, per user, what
  // it already applied by log offset, and the processor must not pre-combine actions
  // that are not idempotent (fusion::NeedsExactlyOnce) across log records.
  virtual bool AppliesBatchesAtomically() const { return true; }

  // Event history. Writes are keyed by (uid, ts, id), so writing an entry again changes
  // nothing; entries older than `retention_ms` behind now, or beyond `max_per_user`, go.
  virtual Status RecordHistory(std::span<const HistoryEntry> entries, const HistoryConfig& cfg) = 0;
  // Makes what was applied durable in the store itself (RocksDB: flush the memtable, as it
  // runs without a WAL), so that its checkpoints can be trusted to trim the log.
  virtual Status Flush() { return Status::Ok(); }

  // Erases every profile, history and checkpoint (for `portrait replay`, which rebuilds
  // them from the log).
  virtual Status EraseAll() = 0;

  // Apply() and RecordHistory() together; a store that can do both in one write does.
  virtual Status ApplyWithHistory(std::span<const Action> actions, std::span<const HistoryEntry> history,
                                  const HistoryConfig& cfg, std::span<const Checkpoint> checkpoints) {
    if (!history.empty()) RETURN_IF_ERROR(RecordHistory(history, cfg));
    return Apply(actions, checkpoints);
  }
  // What features use to keep their own state beside the profiles, in the same database
  // (features/*/rocksdb_*.cc, redis_*.cc); both null for a backend that offers neither.
  virtual StoreHandles handles() { return {}; }

  // Newest first.
  virtual Result<std::vector<HistoryEntry>> ReadHistory(std::string_view uid, const HistoryQuery& q,
                                                        const HistoryConfig& cfg, TimestampMs now) = 0;
};

// The checkpoints of `consumer` (per partition, 0 when none) that the store holds durably:
// read first, then the store flushed. A checkpoint read after the flush could count a
// batch that committed meanwhile and is only in memory; trimming the log up to it would
// lose that batch's events at a crash. What log retention may trim up to. With
// `also` (consumers that may have no checkpoint yet), the lowest of all present.
Result<std::vector<Offset>> DurableCheckpoints(ProfileStore& store, std::string_view consumer, int partitions,
                                               std::span<const std::string> also = {});

// One person's profile from several ids' profiles (a user's and its devices'), merged tag
// by tag (fusion::MergeState) as if every action had been written to the first id; one
// pipelined read. Freshness is the newest of them; the snapshot mark is the first's.
Result<Profile> GetMerged(ProfileStore& store, std::span<const std::string> ids, std::span<const std::string> only,
                          TimestampMs now, const TagRegistry& tags);

// Opens the store backend named in `config` under `data_dir`. `tags` must outlive it.
Result<std::unique_ptr<ProfileStore>> MakeProfileStore(const StoreConfig& config, const std::string& data_dir,
                                                       const TagRegistry* tags, MetricsRegistry* metrics);

}  // namespace portrait
