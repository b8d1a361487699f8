#include "features/channels/channel_store.h"

#include "store/profile_store.h"

namespace portrait {

Result<std::unique_ptr<ChannelStore>> OpenChannelStore(ProfileStore* store) {
  StoreHandles h = store->handles();
  if (h.rocksdb) return OpenRocksDbChannels(h.rocksdb);
  if (h.redis) return OpenRedisChannels(h.redis);
  return std::unique_ptr<ChannelStore>();
}

}  // namespace portrait
