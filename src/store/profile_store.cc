#include "store/profile_store.h"

#include <algorithm>

#include "store/redis/redis_store.h"
#include "store/rocksdb/rocksdb_store.h"

namespace portrait {

Result<std::unique_ptr<ProfileStore>> MakeProfileStore(const StoreConfig& config, const std::string& data_dir,
                                                       const TagRegistry* tags, MetricsRegistry* metrics) {
  if (config.backend == "rocksdb") {
    return OpenRocksDbStore({data_dir + "/profiles", config.block_cache_mb}, tags, metrics);
  }
  if (config.backend == "redis") {
    RedisStoreOptions o;
    if (!config.cluster_nodes.empty()) {
      o.nodes = config.cluster_nodes;
      o.cluster = true;
    } else {
      o.nodes = {config.redis_url.substr(config.redis_url.find("://") + 3)};
    }
    return OpenRedisStore(o, tags, metrics);
  }
  return Status::InvalidArgument("[store] backend \"" + config.backend + "\" is unknown; use \"rocksdb\" or \"redis\"");
}

Result<std::vector<Offset>> DurableCheckpoints(ProfileStore& store, std::string_view consumer, int partitions,
                                               std::span<const std::string> also) {
  std::vector<Offset> out(static_cast<size_t>(partitions), Offset(0));
  for (int p = 0; p < partitions; ++p) {
    ASSIGN_OR_RETURN(std::optional<Offset> cp, store.GetCheckpoint(consumer, PartitionId(p)));
    Offset keep = cp.value_or(Offset(0));
    for (const std::string& other : also) {
      if (other == consumer) continue;
      ASSIGN_OR_RETURN(std::optional<Offset> o, store.GetCheckpoint(other, PartitionId(p)));
      if (o && o->value < keep.value) keep = *o;
    }
    out[static_cast<size_t>(p)] = keep;
  }
  RETURN_IF_ERROR(store.Flush().WithContext("store flush"));
  return out;
}

Result<Profile> GetMerged(ProfileStore& store, std::span<const std::string> ids, std::span<const std::string> only,
                          TimestampMs now, const TagRegistry& tags) {
  if (ids.size() == 1) return store.Get(ids[0], only, now);
  ASSIGN_OR_RETURN(std::vector<Profile> all, store.GetMany(ids, only, now));
  Profile out;
  if (all.empty()) return out;
  out = std::move(all[0]);
  for (size_t i = 1; i < all.size(); ++i) {
    Profile& p = all[i];
    out.meta.realtime_updated_at = std::max(out.meta.realtime_updated_at, p.meta.realtime_updated_at);
    for (TagValue& t : p.tags) {
      const TagConfig* cfg = tags.Find(t.name);
      if (!cfg) continue;
      auto it = std::lower_bound(out.tags.begin(), out.tags.end(), t.name,
                                 [](const TagValue& v, const std::string& name) { return v.name < name; });
      if (it == out.tags.end() || it->name != t.name) {
        out.tags.insert(it, std::move(t));
      } else {
        fusion::MergeState(it->state, t.state, *cfg);
      }
    }
  }
  return out;
}

}  // namespace portrait
