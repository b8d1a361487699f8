// Store benchmark: Actions applied per second and profile reads per second, per backend
// (RocksDB; Redis standalone; a 3-master Redis Cluster, all on this machine), and the naive
// approach users write by hand against the same standalone Redis: per action WATCH the
// key, GET the tag, change it in the client, MULTI / SET / EXEC. Same workload, same run;
// the ratio is what to compare (the machine is shared).
//
// Workload: the example config's rules as Actions for 10k users: 50% click-list pushes
// (size_limit 1000), 30% category-map increments, 20% last-seen strings; batches of 1000
// as the processor writes them (pre-combining off, to count raw actions).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include <rocksdb/db.h>

#include "core/event.h"
#include "fusion/fusion.h"
#include "redis_util.h"
#include "store/redis/redis_client.h"
#include "store/redis/redis_store.h"
#include "store/rocksdb/rocksdb_store.h"
#include "test_util.h"

namespace portrait {
namespace {

using Clock = std::chrono::steady_clock;

struct Workload {
  TagRegistry tags;
  std::vector<Action> actions;
};

Workload MakeWorkload(size_t n, int users) {
  Workload w;
  TagConfig clicks = testing_util::ClickList(1000);
  w.tags.Add(clicks);
  TagConfig cats;
  cats.name = "category_prefs";
  cats.type = TagType::kMap;
  w.tags.Add(cats);
  TagConfig seen;
  seen.name = "last_seen";
  seen.type = TagType::kString;
  w.tags.Add(seen);
  std::mt19937_64 rng(5);
  for (size_t i = 0; i < n; ++i) {
    int64_t ts = 1700000000000 + static_cast<int64_t>(i);
    Action a;
    int kind = static_cast<int>(rng() % 10);
    if (kind < 5) {
      a = testing_util::Click(clicks, static_cast<int>(rng() % 1000000), ts);
    } else if (kind < 8) {
      a.tag = "category_prefs";
      a.op = OpCode::kMapIncr;
      a.entries = {{std::to_string(rng() % 1000), "", 1}};
    } else {
      a.tag = "last_seen";
      a.op = OpCode::kStringSet;
      a.text = FormatIsoUtc(ts);
    }
    a.uid = "u" + std::to_string(rng() % users);
    a.ts = ts;
    w.actions.push_back(std::move(a));
  }
  return w;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Figures {
  double actions_per_s = 0;
  double reads_per_s = 0;
  double get_1000_ms = 0;       // 1000 profiles, one Get each
  double get_many_1000_ms = 0;  // the same 1000 in one GetMany
};

Figures Measure(ProfileStore& store, const Workload& w, int users, double read_seconds) {
  Figures f;
  auto t0 = Clock::now();
  for (size_t i = 0; i < w.actions.size(); i += 1000) {
    size_t n = std::min<size_t>(1000, w.actions.size() - i);
    Status st = store.Apply(std::span<const Action>(w.actions).subspan(i, n), {});
    if (!st.ok()) {
      std::fprintf(stderr, "apply: %s\n", st.ToString().c_str());
      return f;
    }
  }
  f.actions_per_s = static_cast<double>(w.actions.size()) / Seconds(Clock::now() - t0);
  std::mt19937 rng(9);
  int64_t reads = 0;
  auto r0 = Clock::now();
  while (Seconds(Clock::now() - r0) < read_seconds) {
    auto p = store.Get("u" + std::to_string(rng() % users), {}, NowMs());
    if (!p.ok()) break;
    ++reads;
  }
  f.reads_per_s = static_cast<double>(reads) / Seconds(Clock::now() - r0);
  // batchGet's path: 1000 users in one GetMany vs one Get each, side by side.
  std::vector<std::string> uids;
  for (int i = 0; i < 1000; ++i) uids.push_back("u" + std::to_string(rng() % users));
  auto g0 = Clock::now();
  for (const auto& u : uids) (void)store.Get(u, {}, NowMs());
  auto g1 = Clock::now();
  (void)store.GetMany(uids, {}, NowMs());
  auto g2 = Clock::now();
  f.get_1000_ms = Seconds(g1 - g0) * 1000;
  f.get_many_1000_ms = Seconds(g2 - g1) * 1000;
  return f;
}

// The hand-written way: optimistic transaction per action, state changed in the client.
double Naive(const std::string& addr, const Workload& w, size_t n) {
  RedisOptions o;
  o.nodes = {addr};
  auto client = RedisClient::Connect(o).value();
  std::vector<RedisReply> replies;
  auto t0 = Clock::now();
  for (size_t i = 0; i < n; ++i) {
    const Action& a = w.actions[i];
    const TagConfig& cfg = *w.tags.Find(a.tag);
    std::string key = "naive:{" + a.uid + "}:" + a.tag;
    while (true) {
      (void)client->Execute({{{"WATCH", key}, key}, {{"GET", key}, key}}, &replies);
      fusion::TagState s;
      if (replies[1].type == RedisReply::Type::kString) (void)fusion::DecodeState(replies[1].str, &s);
      fusion::Apply(s, a, cfg);
      std::string v;
      fusion::EncodeState(s, &v);
      (void)client->Execute({{{"MULTI"}, key}, {{"SET", key, v}, key}, {{"EXEC"}, key}}, &replies);
      if (replies[2].type == RedisReply::Type::kArray) break;  // nil EXEC: lost the race, retry
    }
  }
  return static_cast<double>(n) / Seconds(Clock::now() - t0);
}

// Target 6: the naive client against the Redis store once click lists are full (1000
// items): every naive action reads, decodes, changes, encodes and writes the whole list.
void FullLists(const std::string& addr, MetricsRegistry& metrics) {
  Workload w;
  TagConfig clicks = testing_util::ClickList(1000);
  w.tags.Add(clicks);
  const int users = 100;
  auto store = OpenRedisStore({{addr}, false, 15000}, &w.tags, &metrics).value();
  // Fill: 1000 distinct clicks per user, in portrait's store and as the naive keys.
  std::vector<Action> batch;
  RedisOptions o;
  o.nodes = {addr};
  auto client = RedisClient::Connect(o).value();
  std::vector<RedisReply> replies;
  for (int u = 0; u < users; ++u) {
    fusion::TagState full;
    full.type = TagType::kList;
    for (int i = 0; i < 1000; ++i) {
      Action a = testing_util::Click(clicks, u * 100000 + i, 1700000000000 + i);
      a.uid = "f" + std::to_string(u);
      fusion::Apply(full, a, clicks);
      batch.push_back(std::move(a));
      if (batch.size() == 1000) {
        (void)store->Apply(batch, {});
        batch.clear();
      }
    }
    std::string v;
    fusion::EncodeState(full, &v);
    std::string key = "naive:{f" + std::to_string(u) + "}:clicks";
    (void)client->Execute({{{"SET", key, v}, key}}, &replies);
  }
  // Measure: fresh clicks on the full lists.
  std::mt19937_64 rng(3);
  std::vector<Action> more;
  for (int i = 0; i < 20000; ++i) {
    Action a = testing_util::Click(clicks, 50'000'000 + i, 1700000100000 + i);
    a.uid = "f" + std::to_string(rng() % users);
    more.push_back(std::move(a));
  }
  auto t0 = Clock::now();
  for (size_t i = 0; i < more.size(); i += 1000) (void)store->Apply(std::span<const Action>(more).subspan(i, 1000), {});
  double ours = static_cast<double>(more.size()) / Seconds(Clock::now() - t0);
  w.actions = more;
  double naive = Naive(addr, w, 2000);
  std::printf("\n| full 1000-item click lists (%d users) | actions/s |\n|---|---|\n", users);
  std::printf("| redis (portrait functions, pipelined) | %.0f |\n| naive WATCH/GET/MULTI/SET/EXEC | %.0f |\n", ours, naive);
  std::printf("\ntarget 6: redis store / naive with full 1000-item lists = %.0f / %.0f = %.1fx (aim >= 10x)\n", ours, naive,
              ours / naive);
}

// Target 7: memory per profile of 5,000 users with a 50-item click list and 8 scalar
// tags (4 counters, 4 strings): portrait's Redis layout against the same data kept by
// hand as one hash of the scalars and one list of JSON items per user; and RocksDB's
// bytes per profile on disk after compaction.
void MemoryPerProfile(MetricsRegistry& metrics) {
  Workload w;
  TagConfig clicks = testing_util::ClickList(1000);
  w.tags.Add(clicks);
  for (int i = 0; i < 4; ++i) {
    TagConfig n;
    n.name = "count" + std::to_string(i);
    n.type = TagType::kNumber;
    w.tags.Add(n);
    TagConfig t;
    t.name = "text" + std::to_string(i);
    t.type = TagType::kString;
    w.tags.Add(t);
  }
  const int users = 5000;
  std::vector<Action> actions;
  for (int u = 0; u < users; ++u) {
    std::string uid = "m" + std::to_string(u);
    for (int i = 0; i < 50; ++i) {
      Action a = testing_util::Click(clicks, u * 1000 + i, 1700000000000 + u * 100 + i);
      a.uid = uid;
      actions.push_back(std::move(a));
    }
    for (int i = 0; i < 4; ++i) {
      Action n;
      n.uid = uid;
      n.tag = "count" + std::to_string(i);
      n.op = OpCode::kNumberIncr;
      n.number = 1 + i;
      n.ts = 1700000000000 + u;
      actions.push_back(n);
      Action t;
      t.uid = uid;
      t.tag = "text" + std::to_string(i);
      t.op = OpCode::kStringSet;
      t.text = "value-" + std::to_string(u) + "-" + std::to_string(i);
      t.ts = 1700000000000 + u;
      actions.push_back(t);
    }
  }
  testing_util::RedisServer redis;
  if (!redis.Start()) return;
  redis.Cli("CONFIG SET appendonly no");
  auto used = [&] {
    std::string info = redis.Cli("INFO memory");
    size_t at = info.find("used_memory:");
    return at == std::string::npos ? 0.0 : std::stod(info.substr(at + 12));
  };
  double before = used();
  {
    auto store = OpenRedisStore({{redis.addr()}, false, 15000}, &w.tags, &metrics).value();
    for (size_t i = 0; i < actions.size(); i += 1000) {
      (void)store->Apply(std::span<const Action>(actions).subspan(i, std::min<size_t>(1000, actions.size() - i)), {});
    }
  }
  double ours = (used() - before) / users;
  redis.Cli("FLUSHALL");
  before = used();
  {
    RedisOptions o;
    o.nodes = {redis.addr()};
    auto client = RedisClient::Connect(o).value();
    std::vector<RedisReply> replies;
    std::vector<RedisCommand> cmds;
    for (int u = 0; u < users; ++u) {
      std::string h = "h:{m" + std::to_string(u) + "}", l = "l:{m" + std::to_string(u) + "}";
      std::vector<std::string> hset = {"HSET", h};
      for (int i = 0; i < 4; ++i) {
        hset.push_back("count" + std::to_string(i));
        hset.push_back(std::to_string(1 + i));
        hset.push_back("text" + std::to_string(i));
        hset.push_back("value-" + std::to_string(u) + "-" + std::to_string(i));
      }
      cmds.push_back({hset, h});
      std::vector<std::string> rpush = {"RPUSH", l};
      for (int i = 0; i < 50; ++i) {
        rpush.push_back(actions[static_cast<size_t>(u) * 58 + static_cast<size_t>(i)].items[0].json);
      }
      cmds.push_back({rpush, l});
      if (cmds.size() >= 200) {
        (void)client->Execute(cmds, &replies);
        cmds.clear();
      }
    }
    if (!cmds.empty()) (void)client->Execute(cmds, &replies);
  }
  double by_hand = (used() - before) / users;
  // RocksDB: the same actions, compacted, bytes of its files per profile.
  std::string dir = (std::filesystem::temp_directory_path() / "portrait-store-bench-mem").string();
  std::filesystem::remove_all(dir);
  double rocks = 0;
  {
    auto store = OpenRocksDbStore({dir, 64}, &w.tags, &metrics).value();
    for (size_t i = 0; i < actions.size(); i += 1000) {
      (void)store->Apply(std::span<const Action>(actions).subspan(i, std::min<size_t>(1000, actions.size() - i)), {});
    }
    (void)store->Flush();
    if (rocksdb::DB* db = store->handles().rocksdb) {
      rocksdb::CompactRangeOptions co;
      co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
      (void)db->CompactRange(co, nullptr, nullptr);
    }
  }
  uint64_t bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".sst") bytes += e.file_size();
  }
  rocks = static_cast<double>(bytes) / users;
  std::filesystem::remove_all(dir);
  std::printf("\n| memory per profile (5,000 users: 50-item click list + 8 scalar tags) | bytes |\n|---|---|\n");
  std::printf("| redis, portrait's layout (used_memory delta) | %.0f |\n| redis, by hand: a hash of the scalars + a list of JSON items | %.0f |\n",
              ours, by_hand);
  std::printf("| rocksdb, on disk after compaction (.sst bytes) | %.0f |\n", rocks);
  std::printf("\ntarget 7: redis memory per profile, portrait / by hand = %.0f / %.0f = %.2f (aim <= 0.5)\n", ours, by_hand,
              ours / by_hand);
}

int Run(size_t n, int users) {
  Workload w = MakeWorkload(n, users);
  MetricsRegistry metrics;
  std::printf("workload: %zu actions over %d users (50%% list.rpush, 30%% map.incr, 20%% string.set), batches of 1000\n\n",
              n, users);
  std::printf("| backend | actions/s | profile reads/s | 1000 profiles: Get each / one GetMany |\n|---|---|---|---|\n");

  std::string dir = (std::filesystem::temp_directory_path() / "portrait-store-bench").string();
  std::filesystem::remove_all(dir);
  {
    auto rocks = OpenRocksDbStore({dir, 256}, &w.tags, &metrics).value();
    Figures f = Measure(*rocks, w, users, 2);
    std::printf("| rocksdb | %.0f | %.0f | %.1f / %.1f ms |\n", f.actions_per_s, f.reads_per_s, f.get_1000_ms,
                f.get_many_1000_ms);
  }
  std::filesystem::remove_all(dir);

  testing_util::RedisServer redis;
  if (!redis.Start()) {
    std::fprintf(stderr, "cannot start redis-server\n");
    return 1;
  }
  redis.Cli("CONFIG SET appendonly no");  // measure the store, not the disk
  Figures ours;
  {
    auto store = OpenRedisStore({{redis.addr()}, false, 15000}, &w.tags, &metrics).value();
    ours = Measure(*store, w, users, 2);
    std::printf("| redis (standalone) | %.0f | %.0f | %.1f / %.1f ms |\n", ours.actions_per_s, ours.reads_per_s,
                ours.get_1000_ms, ours.get_many_1000_ms);
  }
  size_t naive_n = std::min<size_t>(n, 30000);
  double naive = Naive(redis.addr(), w, naive_n);
  std::printf("| naive WATCH/GET/MULTI/SET/EXEC, same redis (%zu actions) | %.0f | | |\n", naive_n, naive);

  testing_util::RedisCluster cluster;
  if (cluster.Start()) {
    for (int i = 0; i < 3; ++i) cluster.node(i).Cli("CONFIG SET appendonly no");
    auto store = OpenRedisStore({cluster.addrs(), true, 15000}, &w.tags, &metrics).value();
    Figures f = Measure(*store, w, users, 2);
    std::printf("| redis cluster (3 masters, same machine) | %.0f | %.0f | %.1f / %.1f ms |\n", f.actions_per_s,
                f.reads_per_s, f.get_1000_ms, f.get_many_1000_ms);
  }
  std::printf("\nratio redis functions / naive (lists still small): %.1fx\n", ours.actions_per_s / naive);
  FullLists(redis.addr(), metrics);
  MemoryPerProfile(metrics);
  return 0;
}

}  // namespace
}  // namespace portrait

int main(int argc, char** argv) {
  size_t n = argc > 1 ? std::stoul(argv[1]) : 300000;
  int users = argc > 2 ? std::stoi(argv[2]) : 10000;
  return portrait::Run(n, users);
}
