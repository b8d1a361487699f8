#include "features/decisions/decision_store.h"

#include "store/profile_store.h"

namespace portrait {

Result<std::unique_ptr<DecisionStore>> OpenDecisionStore(ProfileStore* store) {
  StoreHandles h = store->handles();
  if (h.rocksdb) return OpenRocksDbDecisions(h.rocksdb);
  if (h.redis) return OpenRedisDecisions(h.redis);
  return std::unique_ptr<DecisionStore>();
}

}  // namespace portrait
