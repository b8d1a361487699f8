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
  std::printf("\nratio redis functions / naive: %.1fx\n", ours.actions_per_s / naive);
  return 0;
}

}  // namespace
}  // namespace portrait

int main(int argc, char** argv) {
  size_t n = argc > 1 ? std::stoul(argv[1]) : 300000;
  int users = argc > 2 ? std::stoi(argv[2]) : 10000;
  return portrait::Run(n, users);
}
