#include "store/profile_store.h"

#include "store/rocksdb/rocksdb_store.h"

namespace portrait {

Result<std::unique_ptr<ProfileStore>> MakeProfileStore(const StoreConfig& config, const std::string& data_dir,
                                                       const TagRegistry* tags, MetricsRegistry* metrics) {
  if (config.backend == "rocksdb") {
    return OpenRocksDbStore({data_dir + "/profiles", config.block_cache_mb}, tags, metrics);
  }
  return Status::InvalidArgument("[store] backend \"" + config.backend + "\" is unknown; use \"rocksdb\"");
}

}  // namespace portrait
