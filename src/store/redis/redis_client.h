// RedisClient: hiredis with what Debian's hiredis lacks, kept small: Redis Cluster routing
// (slot map from CLUSTER SLOTS, CRC16 of the key's hash tag), MOVED / ASK redirections,
// reconnects, and pipelining per node.
//
// Execute() sends a batch of commands, each routed by its key, pipelined per node, and
// retries what failed for a reason that may pass (connection lost, redirection,
// TRYAGAIN, CLUSTERDOWN, LOADING, a node that lost the function library) until the
// deadline; then it answers Unavailable. A command may therefore run twice when a reply
// is lost: callers send only commands that are safe to repeat. One RedisClient is used
// by one thread at a time.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/metrics.h"
#include "core/status.h"

struct redisContext;

namespace portrait {

struct RedisReply {
  enum class Type { kNil, kString, kInteger, kArray, kError, kStatus };
  Type type = Type::kNil;
  std::string str;
  long long integer = 0;
  std::vector<RedisReply> elements;
  bool is_error() const { return type == Type::kError; }
};

struct RedisCommand {
  std::vector<std::string> args;
  std::string key;  // routes the command in a cluster; empty = any node
};

struct RedisOptions {
  std::vector<std::string> nodes;  // "host:port": the server, or cluster seed nodes
  bool cluster = false;
  int timeout_ms = 2000;           // connect and per-reply timeout
  int retry_deadline_ms = 15000;   // how long Execute keeps retrying
  // Function libraries (`#!lua name=...`), loaded on every master, and again where missing.
  std::vector<std::string> function_libraries;
  // Optional counters (owned by a MetricsRegistry): redirections followed, and commands
  // sent again after a failure that may pass.
  Counter* moved = nullptr;
  Counter* ask = nullptr;
  Counter* retried = nullptr;
};

// Redis Cluster's hash slot of a key (CRC16 of its {hash tag}, mod 16384).
int RedisKeySlot(std::string_view key);

class RedisClient {
 public:
  static Result<std::unique_ptr<RedisClient>> Connect(RedisOptions options);
  ~RedisClient();

  Status Execute(const std::vector<RedisCommand>& commands, std::vector<RedisReply>* replies);
  // Runs one command on every master (standalone: the server).
  Status OnEveryMaster(const RedisCommand& command);

 private:
  explicit RedisClient(RedisOptions o) : options_(std::move(o)) {}
  Status RefreshSlots();
  redisContext* Conn(const std::string& addr, Status* error);
  void Drop(const std::string& addr);
  Status LoadFunctions(const std::string& addr);
  std::vector<std::string> Masters() const;

  RedisOptions options_;
  std::vector<std::string> slots_;  // slot -> "host:port"
  std::map<std::string, redisContext*> conns_;
};

}  // namespace portrait
