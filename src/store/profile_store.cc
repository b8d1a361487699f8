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

}  // namespace portrait
