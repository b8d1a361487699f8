// The RocksDB profile store. Each user is one key holding all of the user's tags; a
// batch's Actions for a user are written as one merge operand and folded by a merge
// operator that runs the fusion operators, so applying an action never reads the profile
// first. Checkpoints share the write batch.
#pragma once

#include <memory>
#include <string>

#include "store/profile_store.h"

namespace portrait {

struct RocksDbStoreOptions {
  std::string path;
  size_t block_cache_mb = 256;
};

Result<std::unique_ptr<ProfileStore>> OpenRocksDbStore(const RocksDbStoreOptions& options, const TagRegistry* tags,
                                                       MetricsRegistry* metrics);

}  // namespace portrait
