#include "features/segments/segment_store.h"

namespace portrait {

Result<std::unique_ptr<SegmentStore>> OpenRocksDbSegments(rocksdb::DB* db);
Result<std::unique_ptr<SegmentStore>> OpenRedisSegments(RedisBackend* redis);

Status SegmentStore::EraseUser(std::string_view uid) {
  const std::string one[] = {std::string(uid)};
  ASSIGN_OR_RETURN(auto all, Get(one));
  std::vector<SegmentWrite> leaves;
  for (const auto& [segment, e] : all[0]) leaves.push_back({std::string(uid), segment, false, {}, e.recheck_at});
  return Write(leaves);
}

Result<std::unique_ptr<SegmentStore>> OpenSegmentStore(StoreHandles h) {
  if (h.rocksdb) return OpenRocksDbSegments(h.rocksdb);
  if (h.redis) return OpenRedisSegments(h.redis);
  return std::unique_ptr<SegmentStore>();
}

}  // namespace portrait
