// RedisBackend: what a feature uses to keep its own state in the Redis (Cluster) the
// profiles live in: pipelined commands routed by key over the store's connections, and its
// own Redis function library, loaded on every master now and after every reconnect.
// Implemented by the Redis profile store (ProfileStore::handles()). Thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "store/redis/redis_client.h"

namespace portrait {

class RedisBackend {
 public:
  virtual ~RedisBackend() = default;
  // Runs `cmds` (pipelined; in a cluster each goes to its key's node); any error reply fails.
  virtual Status Run(const std::vector<RedisCommand>& cmds, std::vector<RedisReply>* out = nullptr) = 0;
  // `code` starts with `#!lua name=LIBRARY`; its function names must be unique.
  virtual Status AddFunctionLibrary(std::string code) = 0;
};

// `prefix` "{" id "}" `suffix`, with '%', '{' and '}' of the id written %25, %7B, %7D: the
// cluster hash tag is then the whole id whatever bytes it holds, so all keys of one id share
// a slot (an id "}x" would otherwise end the tag early and spread a user over slots).
inline std::string RedisTagged(std::string_view prefix, std::string_view id, std::string_view suffix) {
  std::string k(prefix);
  k.push_back('{');
  for (char c : id) {
    if (c == '%') k += "%25";
    else if (c == '{') k += "%7B";
    else if (c == '}') k += "%7D";
    else k.push_back(c);
  }
  k.push_back('}');
  k.append(suffix);
  return k;
}

// FCALL (FCALL_RO when `read_only`) of function `name` over `keys` (the first routes it),
// arguments to be appended.
inline RedisCommand RedisFunctionCall(std::string name, const std::vector<std::string>& keys, bool read_only = false) {
  RedisCommand c;
  c.key = keys[0];
  c.args = {std::string(read_only ? "FCALL_RO" : "FCALL"), std::move(name), std::to_string(keys.size())};
  c.args.insert(c.args.end(), keys.begin(), keys.end());
  return c;
}

}  // namespace portrait
