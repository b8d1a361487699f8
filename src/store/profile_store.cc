#include "store/profile_store.h"

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

}  // namespace portrait
