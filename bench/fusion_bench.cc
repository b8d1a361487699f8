// Micro-benchmarks of the hot paths: list merge, pre-combining, codecs, event parsing.
// Pairs that answer "how much does X save" run side by side in one binary (see
// docs/benchmarks.md for the ratios).
#include <benchmark/benchmark.h>

#include <atomic>
#include <filesystem>
#include <random>

#include "fusion/fusion.h"
#include "log/embedded/segment_log.h"
#include "ingest/collector.h"
#include "test_util.h"
#include "features/registry.h"

namespace portrait {
namespace {

using testing_util::Click;
using testing_util::ClickList;

fusion::TagState FullList(const TagConfig& cfg) {
  fusion::TagState s;
  for (int i = 0; i < static_cast<int>(cfg.size_limit); ++i) fusion::Apply(s, Click(cfg, i, 1000 + i), cfg);
  return s;
}

// One new click on a full 1000-item list (the common real-time case).
void BM_ListAppendToFull(benchmark::State& st) {
  TagConfig cfg = ClickList(1000);
  fusion::TagState s = FullList(cfg);
  int64_t et = 100000;
  std::vector<Action> next;
  for (int i = 0; i < 4096; ++i) next.push_back(Click(cfg, i, et + i));
  size_t i = 0;
  for (auto _ : st) {
    fusion::Apply(s, next[i++ & 4095], cfg);
    benchmark::DoNotOptimize(s.items.data());
  }
}
BENCHMARK(BM_ListAppendToFull);

// A stored 1000-item list: decode + apply one action + encode, as a read-modify-write
// store would do per action. Compare with BM_ListAppendToFull.
void BM_ListReadModifyWrite(benchmark::State& st) {
  TagConfig cfg = ClickList(1000);
  std::string stored;
  fusion::EncodeState(FullList(cfg), &stored);
  Action a = Click(cfg, 5, 999999);
  for (auto _ : st) {
    fusion::TagState s;
    (void)fusion::DecodeState(stored, &s);
    fusion::Apply(s, a, cfg);
    std::string out;
    fusion::EncodeState(s, &out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_ListReadModifyWrite);

// Collector with the real embedded log (fsync = none, so the disk does not dominate).
void BM_CollectorIngest1000(benchmark::State& st) {
  auto cfg = LoadConfig(std::string(PORTRAIT_SOURCE_DIR) + "/examples/portrait.toml").value();
  MetricsRegistry metrics;
  std::string dir = "/tmp/portrait-bench-ingest";
  std::filesystem::remove_all(dir);
  SegmentLogOptions o;
  o.dir = dir;
  o.partitions = 8;
  o.fsync = FsyncPolicy::kNone;
  auto log = OpenSegmentLog(o, &metrics).value();
  Collector collector(cfg, log.get(), nullptr, &metrics);
  // Fresh events every iteration (the collector logs a repeated id only once).
  std::mt19937 rng(1);
  int64_t ts = 1700000000000;
  auto make_body = [&] {
    std::string body;
    for (int i = 0; i < 1000; ++i) {
      body += R"({"uid":"u)" + std::to_string(rng() % 100000) + R"(","type":"click","ts":)" + std::to_string(ts++) +
              R"(,"channel":"c1","props":{"item_id":)" + std::to_string(rng() % 1000000) + R"(,"category_id":)" +
              std::to_string(rng() % 1000) + "}}\n";
    }
    body.reserve(body.size() + 64);
    return body;
  };
  std::vector<std::string> bodies;
  for (int i = 0; i < 2000; ++i) bodies.push_back(make_body());
  size_t next = 0, bytes = 0;
  for (auto _ : st) {
    const std::string& body = bodies[next++ % bodies.size()];
    if (next > bodies.size()) {
      st.SkipWithError("ran out of fresh bodies; raise the count");
      break;
    }
    bytes += body.size();
    auto r = collector.Ingest(body);
    if (!r.ok() || r->accepted != 1000 || r->duplicates != 0) st.SkipWithError("ingest failed");
  }
  st.SetItemsProcessed(st.iterations() * 1000);
  st.SetBytesProcessed(static_cast<int64_t>(bytes));
  log->Close();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_CollectorIngest1000)->UseRealTime()->Iterations(1500);

// Durable ingest: the same, with fsync = batch (group commit), from 1 and 4 threads at
// once, as concurrent HTTP requests would call it.
void BM_CollectorIngestDurable(benchmark::State& st) {
  static std::unique_ptr<Log> log;
  static std::unique_ptr<Collector> collector;
  static Config cfg;
  static MetricsRegistry metrics;
  static std::atomic<int64_t> ts{1700000000000};
  const std::string dir = "/tmp/portrait-bench-durable";
  if (st.thread_index() == 0) {
    std::filesystem::remove_all(dir);
    cfg = LoadConfig(std::string(PORTRAIT_SOURCE_DIR) + "/examples/portrait.toml").value();
    SegmentLogOptions o;
    o.dir = dir;
    o.partitions = 8;
    o.fsync = FsyncPolicy::kBatch;
    o.fsync_max_delay_ms = 2;
    log = OpenSegmentLog(o, &metrics).value();
    collector = std::make_unique<Collector>(cfg, log.get(), nullptr, &metrics);
  }
  std::mt19937 rng(static_cast<unsigned>(st.thread_index()));
  std::vector<std::string> bodies;
  for (int b = 0; b < 300; ++b) {
    std::string body;
    for (int i = 0; i < 1000; ++i) {
      body += R"({"uid":"u)" + std::to_string(rng() % 100000) + R"(","type":"click","ts":)" + std::to_string(ts++) +
              R"(,"props":{"item_id":)" + std::to_string(rng() % 1000000) + R"(,"category_id":)" +
              std::to_string(rng() % 1000) + "}}\n";
    }
    body.reserve(body.size() + 64);
    bodies.push_back(std::move(body));
  }
  size_t next = 0;
  for (auto _ : st) {
    auto r = collector->Ingest(bodies[next++ % bodies.size()]);
    if (!r.ok()) st.SkipWithError("ingest failed");
  }
  st.SetItemsProcessed(st.iterations() * 1000);
  if (st.thread_index() == 0) {
    collector.reset();
    log->Close();
    log.reset();
    std::filesystem::remove_all(dir);
  }
}
BENCHMARK(BM_CollectorIngestDurable)->UseRealTime()->Iterations(250)->Threads(1)->Threads(4);

}  // namespace
}  // namespace portrait
