#include "store/redis/redis_client.h"

#include <hiredis/hiredis.h>

#include <chrono>
#include <set>
#include <thread>

namespace portrait {

namespace {

uint16_t Crc16(const char* p, size_t n) {
  uint16_t crc = 0;
  for (size_t i = 0; i < n; ++i) {
    crc ^= static_cast<uint16_t>(static_cast<uint8_t>(p[i]) << 8);
    for (int b = 0; b < 8; ++b) crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
  }
  return crc;
}

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING: out.type = RedisReply::Type::kString; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_STATUS: out.type = RedisReply::Type::kStatus; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR: out.type = RedisReply::Type::kError; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: out.type = RedisReply::Type::kInteger; out.integer = r->integer; break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default: out.type = RedisReply::Type::kNil;
  }
  return out;
}

bool SplitAddr(const std::string& addr, std::string* host, int* port) {
  size_t c = addr.rfind(':');
  if (c == std::string::npos) return false;
  *host = addr.substr(0, c);
  *port = std::atoi(addr.c_str() + c + 1);
  return *port > 0;
}

// Errors that a retry may fix: the cluster changing, a server loading or out of memory, a
// replica. Any other error reply is the server refusing the command (it fails for good).
bool Transient(const std::string& err) {
  return err.starts_with("TRYAGAIN") || err.starts_with("CLUSTERDOWN") || err.starts_with("LOADING") ||
         err.starts_with("MASTERDOWN") || err.starts_with("BUSY") || err.starts_with("OOM") ||
         err.starts_with("READONLY") || err.starts_with("MISCONF") || err.starts_with("NOREPLICAS");
}

}  // namespace

int RedisKeySlot(std::string_view key) {
  size_t open = key.find('{');
  if (open != std::string_view::npos) {
    size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return Crc16(key.data(), key.size()) & 16383;
}

Result<std::unique_ptr<RedisClient>> RedisClient::Connect(RedisOptions options) {
  if (options.nodes.empty()) return Status::InvalidArgument("redis: no server address given");
  std::unique_ptr<RedisClient> c(new RedisClient(std::move(options)));
  if (c->options_.cluster) {
    RETURN_IF_ERROR(c->RefreshSlots());
  } else {
    Status err;
    if (!c->Conn(c->options_.nodes[0], &err)) return err;
  }
  if (!c->options_.function_libraries.empty()) {
    for (const auto& m : c->Masters()) RETURN_IF_ERROR(c->LoadFunctions(m));
  }
  return c;
}

RedisClient::~RedisClient() {
  for (auto& [_, ctx] : conns_) redisFree(ctx);
}

std::vector<std::string> RedisClient::Masters() const {
  if (!options_.cluster) return {options_.nodes[0]};
  std::set<std::string> m(slots_.begin(), slots_.end());
  m.erase("");
  return {m.begin(), m.end()};
}

redisContext* RedisClient::Conn(const std::string& addr, Status* error) {
  auto it = conns_.find(addr);
  if (it != conns_.end()) return it->second;
  std::string host;
  int port;
  if (!SplitAddr(addr, &host, &port)) {
    *error = Status::InvalidArgument("redis: bad address \"" + addr + "\" (want host:port)");
    return nullptr;
  }
  timeval tv{options_.timeout_ms / 1000, (options_.timeout_ms % 1000) * 1000};
  redisContext* ctx = redisConnectWithTimeout(host.c_str(), port, tv);
  if (!ctx || ctx->err) {
    *error = Status::Unavailable("redis " + addr + ": " + (ctx ? ctx->errstr : "cannot allocate a connection"));
    if (ctx) redisFree(ctx);
    return nullptr;
  }
  redisSetTimeout(ctx, tv);
  redisEnableKeepAlive(ctx);
  conns_[addr] = ctx;
  return ctx;
}

void RedisClient::Drop(const std::string& addr) {
  auto it = conns_.find(addr);
  if (it == conns_.end()) return;
  redisFree(it->second);
  conns_.erase(it);
}

Status RedisClient::RefreshSlots() {
  std::vector<std::string> candidates = Masters();
  for (const auto& n : options_.nodes) candidates.push_back(n);
  Status last = Status::Unavailable("redis cluster: no seed node answered");
  for (const auto& addr : candidates) {
    Status err;
    redisContext* ctx = Conn(addr, &err);
    if (!ctx) {
      last = err;
      continue;
    }
    auto* r = static_cast<redisReply*>(redisCommand(ctx, "CLUSTER SLOTS"));
    if (!r) {
      last = Status::Unavailable("redis " + addr + ": " + ctx->errstr);
      Drop(addr);
      continue;
    }
    RedisReply slots = Convert(r);
    freeReplyObject(r);
    if (slots.type != RedisReply::Type::kArray) {
      last = Status::Unavailable("redis " + addr + ": CLUSTER SLOTS: " + slots.str);
      continue;
    }
    std::vector<std::string> map(16384);
    for (const auto& range : slots.elements) {
      if (range.elements.size() < 3 || range.elements[2].elements.size() < 2) continue;
      std::string host = range.elements[2].elements[0].str;
      if (host.empty()) host = addr.substr(0, addr.rfind(':'));
      std::string node = host + ":" + std::to_string(range.elements[2].elements[1].integer);
      for (long long s = range.elements[0].integer; s <= range.elements[1].integer && s < 16384; ++s) map[s] = node;
    }
    slots_ = std::move(map);
    return Status::Ok();
  }
  return last;
}

Status RedisClient::LoadFunctions(const std::string& addr) {
  Status err;
  redisContext* ctx = Conn(addr, &err);
  if (!ctx) return err;
  for (const std::string& lib : options_.function_libraries) {
    const char* argv[] = {"FUNCTION", "LOAD", "REPLACE", lib.c_str()};
    size_t lens[] = {8, 4, 7, lib.size()};
    auto* r = static_cast<redisReply*>(redisCommandArgv(ctx, 4, argv, lens));
    if (!r) {
      Drop(addr);
      return Status::Unavailable("redis " + addr + ": loading functions: connection lost");
    }
    RedisReply reply = Convert(r);
    freeReplyObject(r);
    if (reply.is_error()) return Status::FailedPrecondition("redis " + addr + ": FUNCTION LOAD: " + reply.str);
  }
  return Status::Ok();
}

Status RedisClient::OnEveryMaster(const RedisCommand& command) {
  std::vector<RedisReply> replies;
  for (const auto& m : Masters()) {
    Status err;
    redisContext* ctx = Conn(m, &err);
    if (!ctx) return err;
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : command.args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (!r) {
      Drop(m);
      return Status::Unavailable("redis " + m + ": connection lost");
    }
    RedisReply reply = Convert(r);
    freeReplyObject(r);
    if (reply.is_error()) return Status::FailedPrecondition("redis " + m + ": " + reply.str);
  }
  return Status::Ok();
}

Status RedisClient::Execute(const std::vector<RedisCommand>& commands, std::vector<RedisReply>* replies) {
  replies->assign(commands.size(), RedisReply());
  std::vector<size_t> pending(commands.size());
  for (size_t i = 0; i < pending.size(); ++i) pending[i] = i;
  std::map<size_t, std::string> ask;  // command -> node named by an ASK redirection
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.retry_deadline_ms);
  Status last_error;
  for (int attempt = 0; !pending.empty(); ++attempt) {
    if (attempt > 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        return Status::Unavailable("redis: gave up after " + std::to_string(options_.retry_deadline_ms) +
                                   " ms: " + last_error.message());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(20 * attempt, 500)));
      if (options_.cluster && !RefreshSlots().ok()) continue;
    }
    std::map<std::string, std::vector<size_t>> by_node;
    for (size_t i : pending) {
      std::string node;
      if (auto a = ask.find(i); a != ask.end()) node = a->second;
      else if (!options_.cluster || commands[i].key.empty()) node = options_.cluster ? Masters().front() : options_.nodes[0];
      else node = slots_[RedisKeySlot(commands[i].key)];
      by_node[node].push_back(i);
    }
    std::vector<size_t> retry;
    for (auto& [node, idx] : by_node) {
      Status err;
      redisContext* ctx = node.empty() ? nullptr : Conn(node, &err);
      if (!ctx) {
        last_error = node.empty() ? Status::Unavailable("redis cluster: slot not served") : err;
        retry.insert(retry.end(), idx.begin(), idx.end());
        continue;
      }
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      for (size_t i : idx) {
        if (ask.count(i)) redisAppendCommand(ctx, "ASKING");
        argv.clear();
        lens.clear();
        for (const auto& a : commands[i].args) {
          argv.push_back(a.data());
          lens.push_back(a.size());
        }
        redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data());
      }
      bool broken = false;
      bool reload = false;
      for (size_t i : idx) {
        void* raw = nullptr;
        if (!broken && ask.count(i)) {
          if (redisGetReply(ctx, &raw) != REDIS_OK) broken = true;
          if (raw) freeReplyObject(raw);
          raw = nullptr;
        }
        if (broken || redisGetReply(ctx, &raw) != REDIS_OK) {
          if (!broken) last_error = Status::Unavailable("redis " + node + ": " + ctx->errstr);
          broken = true;
          retry.push_back(i);
          continue;
        }
        RedisReply r = Convert(static_cast<redisReply*>(raw));
        freeReplyObject(raw);
        ask.erase(i);
        if (r.is_error()) {
          const std::string& e = r.str;
          if (e.starts_with("MOVED ")) {
            if (options_.moved) options_.moved->Inc();
            last_error = Status::Unavailable("redis: " + e);
            retry.push_back(i);
            continue;
          }
          if (e.starts_with("ASK ")) {
            if (options_.ask) options_.ask->Inc();
            ask[i] = e.substr(e.rfind(' ') + 1);
            retry.push_back(i);
            continue;
          }
          if (Transient(e)) {
            last_error = Status::Unavailable("redis " + node + ": " + e);
            retry.push_back(i);
            continue;
          }
          if (e.find("Function not found") != std::string::npos && !options_.function_libraries.empty()) {
            last_error = Status::Unavailable("redis " + node + ": " + e);
            reload = true;
            retry.push_back(i);
            continue;
          }
        }
        (*replies)[i] = std::move(r);
      }
      if (broken) Drop(node);
      if (reload && !broken) (void)LoadFunctions(node);
    }
    if (options_.retried && !retry.empty()) options_.retried->Inc(retry.size());
    pending = std::move(retry);
  }
  return Status::Ok();
}

}  // namespace portrait
