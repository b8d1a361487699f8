// The Redis profile store (standalone or Redis Cluster). Every key of a user carries the
// hash tag {uid}, so one user's keys share a slot, and each batch for a user is one call
// of the `portrait` function library (portrait.lua), which runs the fusion operators
// atomically inside Redis; calls for different users are pipelined per node.
//
// A batch across users cannot be atomic in a cluster, so each user remembers the log
// offset it has applied per partition and skips anything at or below it: a batch retried
// after a failure, or replayed after a crash, applies every action once. Checkpoints are
// written after the batch. A Redis that is down makes Apply fail with Unavailable after
// the client's retry deadline; the processor retries.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/profile_store.h"

namespace portrait {

struct RedisStoreOptions {
  std::vector<std::string> nodes;  // "host:port"; the server, or cluster seed nodes
  bool cluster = false;
  int retry_deadline_ms = 15000;
};

Result<std::unique_ptr<ProfileStore>> OpenRedisStore(const RedisStoreOptions& options, const TagRegistry* tags,
                                                     MetricsRegistry* metrics);

// The function library source (for tools and tests).
const std::string& RedisFunctionLibrary();

}  // namespace portrait
