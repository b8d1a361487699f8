// End-to-end benchmark on the embedded default: a whole portrait (App) in this process,
// driven over loopback HTTP by libcurl clients in the same process (so the load
// generator shares the 2 cores with the server; figures are a floor, not a ceiling).
//
//   1. throughput: N events in NDJSON bodies of 1000, C clients, until every event is
//      acknowledged (durable) and until the profiles hold all of them;
//   2. latency: background load at R events/s; probe events posted one at a time and
//      polled until their profile is readable: p50 / p99 of POST -> readable;
//   3. profile reads: C clients reading random existing profiles.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "e2e/http_client.h"
#include "ingest/collector.h"
#include "log/embedded/segment_log.h"
#include "serve/app.h"
#include "features/registry.h"
#include "features/decisions/decisions_config.h"

namespace portrait {
namespace {

using Clock = std::chrono::steady_clock;
using testing_util::HttpClient;

struct Flags {
  int64_t events = 1'000'000;
  int clients = 4;
  int rate = 20'000;
  int latency_seconds = 10;
  int read_seconds = 5;
  int users = 100'000;
  std::string fsync = "batch";
  bool history = false;
  bool archive = true;
  bool old_ts = false;  // 2023 event times instead of current ones
  bool decisions = true;  // the example config's decision rules
  int64_t state_save_ms = -1;  // [decisions] state_save_interval; -1: the config's
};

std::string MakeBody(std::mt19937_64& rng, int64_t first_ts, int n, int users) {
  std::string body;
  body.reserve(static_cast<size_t>(n) * 140);
  for (int i = 0; i < n; ++i) {
    bool buy = rng() % 50 == 0;
    body += R"({"uid":"u)" + std::to_string(rng() % users) + R"(","type":")" + (buy ? "buy" : "click") +
            R"(","ts":)" + std::to_string(first_ts + i) + R"(,"channel":"c)" + std::to_string(rng() % 8) +
            R"(","props":{"item_id":)" + std::to_string(rng() % 4'000'000) + R"(,"category_id":)" +
            std::to_string(rng() % 1000) + "}}\n";
  }
  return body;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// The yardstick of target 1: the collector alone (parse + validate + repeat check +
// append, fsync none, 1 thread) over the same bodies, as BM_CollectorIngest1000 measures it.
double CollectorFloor(const Config& cfg, const std::vector<std::string>& bodies, size_t n) {
  MetricsRegistry metrics;
  std::string dir = (std::filesystem::temp_directory_path() / "portrait-e2e-bench-floor").string();
  std::filesystem::remove_all(dir);
  SegmentLogOptions o;
  o.dir = dir;
  o.partitions = cfg.log.partitions;
  o.fsync = FsyncPolicy::kNone;
  auto log = OpenSegmentLog(o, &metrics).value();
  Collector collector(cfg, log.get(), nullptr, &metrics);
  n = std::min(n, bodies.size());
  int64_t events = 0;
  auto t0 = Clock::now();
  for (size_t i = 0; i < n; ++i) {
    auto r = collector.Ingest(bodies[i]);
    if (r.ok()) events += static_cast<int64_t>(r->accepted);
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  log->Close();
  std::filesystem::remove_all(dir);
  return static_cast<double>(events) / s;
}

void WaitCaughtUp(App& app) {
  while (!app.processor().CaughtUp()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

int Run(const Flags& f) {
  std::string dir = (std::filesystem::temp_directory_path() / "portrait-e2e-bench").string();
  std::filesystem::remove_all(dir);
  auto cfg = LoadConfig(std::string(PORTRAIT_SOURCE_DIR) + "/examples/portrait.toml");
  if (!cfg.ok()) {
    std::fprintf(stderr, "%s\n", cfg.status().ToString().c_str());
    return 1;
  }
  cfg->data_dir = dir;
  cfg->server.listen = "127.0.0.1:0";
  cfg->history.enabled = f.history;
  cfg->archive.enabled = f.archive;
  if (!f.decisions) cfg->mutable_section<DecisionsConfig>().rules.clear();
  if (f.state_save_ms >= 0) cfg->mutable_section<DecisionsConfig>().state_save_interval_ms = f.state_save_ms;
  cfg->log.fsync = f.fsync == "always" ? FsyncPolicy::kAlways : f.fsync == "none" ? FsyncPolicy::kNone : FsyncPolicy::kBatch;
  // The bodies first (not timed), and the collector's own speed over them before the
  // server starts, so the two figures of target 1 come from the same run.
  const int per_body = 1000;
  const int64_t bodies = f.events / per_body;
  std::vector<std::string> payloads;
  std::mt19937_64 rng(42);
  // Current event times, so that the event history (30 days by default) keeps them.
  const int64_t t_base = f.old_ts ? 1700000000000 : NowMs() - 3'600'000;
  for (int64_t b = 0; b < bodies; ++b) payloads.push_back(MakeBody(rng, t_base + b * per_body, per_body, f.users));
  const double floor = CollectorFloor(*cfg, payloads, 600);
  auto started = App::Start(std::move(cfg).value());
  if (!started.ok()) {
    std::fprintf(stderr, "%s\n", started.status().ToString().c_str());
    return 1;
  }
  App& app = **started;
  const std::string url = "http://127.0.0.1:" + std::to_string(app.port());
  std::printf("config: examples/portrait.toml, fsync=%s, %d partitions, %d processor workers, %d HTTP threads, "
              "event history %s, archive %s, decision rules %zu\n",
              f.fsync.c_str(), app.config().log.partitions, app.config().processor.workers,
              app.config().server.threads, f.history ? "on" : "off", f.archive ? "on" : "off", app.config().section<DecisionsConfig>().rules.size());

  // 1. Throughput.
  std::atomic<int64_t> next{0}, failed{0};
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < f.clients; ++c) {
    threads.emplace_back([&] {
      HttpClient http(url);
      for (int64_t b; (b = next.fetch_add(1)) < bodies;) {
        if (http.Post("/v1/events", payloads[b]).status != 200) failed.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  auto t_ack = Clock::now();
  WaitCaughtUp(app);
  auto t_done = Clock::now();
  threads.clear();
  payloads.clear();
  double n = static_cast<double>(bodies * per_body);
  std::printf("\n| measure | value |\n|---|---|\n");
  std::printf("| events posted (bodies of %d, %d clients) | %.0f (%lld failed bodies) |\n", per_body, f.clients, n,
              static_cast<long long>(failed.load()));
  std::printf("| ingest: acknowledged (durable) events/s | %.0f |\n", n / (Ms(t_ack - t0) / 1000));
  std::printf("| end to end: events/s until profiles hold every event | %.0f |\n", n / (Ms(t_done - t0) / 1000));
  std::printf("| processor drain after the last ack | %.0f ms |\n", Ms(t_done - t_ack));
  const double e2e = n / (Ms(t_done - t0) / 1000);
  std::printf("| collector alone (parse + validate + repeat check + append, fsync none, 1 thread), same bodies | %.0f |\n", floor);

  // 2. Latency under a paced background load.
  std::atomic<bool> stop{false};
  std::thread background([&] {
    HttpClient http(url);
    std::mt19937_64 brng(7);
    const int batch = std::max(1, f.rate / 100);  // every 10 ms
    auto tick = Clock::now();
    int64_t ts = NowMs() - 1'800'000;
    while (!stop.load()) {
      std::string body = MakeBody(brng, ts, batch, f.users);
      ts += batch;
      http.Post("/v1/events", body);
      tick += std::chrono::milliseconds(10);
      std::this_thread::sleep_until(tick);
    }
  });
  std::vector<double> latencies;
  {
    HttpClient post(url), poll(url);
    auto end = Clock::now() + std::chrono::seconds(f.latency_seconds);
    for (int i = 0; Clock::now() < end; ++i) {
      std::string uid = "probe" + std::to_string(i);
      std::string ev = R"({"uid":")" + uid + R"(","type":"click","ts":1720000000000,"props":{"item_id":1,"category_id":1}})";
      auto start = Clock::now();
      if (post.Post("/v1/events", ev).status != 200) continue;
      while (poll.Get("/v1/profiles/" + uid + "?tags=clicks").status != 200) {
      }
      latencies.push_back(Ms(Clock::now() - start));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  stop.store(true);
  background.join();
  std::printf("| POST -> profile readable at %d events/s background: p50 / p99 / max (%zu probes) | %.2f / %.2f / %.2f ms |\n",
              f.rate, latencies.size(), Percentile(latencies, 0.5), Percentile(latencies, 0.99),
              Percentile(latencies, 1.0));

  // 3. Profile reads.
  WaitCaughtUp(app);
  std::atomic<int64_t> reads{0}, found{0};
  auto r0 = Clock::now();
  auto rend = r0 + std::chrono::seconds(f.read_seconds);
  for (int c = 0; c < f.clients; ++c) {
    threads.emplace_back([&, c] {
      HttpClient http(url);
      std::mt19937 r(static_cast<unsigned>(c));
      while (Clock::now() < rend) {
        if (http.Get("/v1/profiles/u" + std::to_string(r() % f.users)).status == 200) found.fetch_add(1);
        reads.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::printf("| profile reads/s (%d clients, random users, %.0f%% found) | %.0f |\n", f.clients,
              100.0 * static_cast<double>(found.load()) / static_cast<double>(std::max<int64_t>(1, reads.load())),
              static_cast<double>(reads.load()) / (Ms(Clock::now() - r0) / 1000));

  // Where the time goes, from the server's own histograms (upper bucket bounds).
  MetricsRegistry& m = app.metrics();
  auto q = [&](const char* name, const char* labels) {
    Histogram* h = m.GetHistogram(name, "", labels);
    std::printf("| %s{%s} p50 / p99 (n=%llu) | %.3f / %.3f ms |\n", name, labels,
                static_cast<unsigned long long>(h->count()), h->Quantile(0.5) * 1e3, h->Quantile(0.99) * 1e3);
  };
  q("portrait_http_request_seconds", "route=\"events\"");
  q("portrait_log_fsync_seconds", "topic=\"events\"");
  q("portrait_processor_batch_seconds", "");
  q("portrait_store_write_seconds", "backend=\"rocksdb\"");
  q("portrait_http_request_seconds", "route=\"profile\"");
  // The issue's targets, one line each (bench/run.sh gathers the lines starting "target").
  std::printf("\ntarget 1 (decision rules %s): end to end / collector alone = %.0f / %.0f = %.2f (aim >= 0.6)\n",
              f.decisions ? "on" : "off", e2e, floor, e2e / floor);
  std::printf("target 2 (decision rules %s): POST -> readable at %d events/s: p99 %.2f ms, max %.2f ms (aim p99 <= 5, max <= 20)\n",
              f.decisions ? "on" : "off", f.rate, Percentile(latencies, 0.99), Percentile(latencies, 1.0));
  std::printf("e2e_events_per_s decisions=%s %.0f\n", f.decisions ? "on" : "off", e2e);
  app.Stop();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace portrait

int main(int argc, char** argv) {
  portrait::Flags f;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--events") f.events = std::stoll(v);
    else if (k == "--clients") f.clients = std::stoi(v);
    else if (k == "--rate") f.rate = std::stoi(v);
    else if (k == "--latency-seconds") f.latency_seconds = std::stoi(v);
    else if (k == "--read-seconds") f.read_seconds = std::stoi(v);
    else if (k == "--users") f.users = std::stoi(v);
    else if (k == "--fsync") f.fsync = v;
    else if (k == "--history") f.history = v != "off";
    else if (k == "--archive") f.archive = v != "off";
    else if (k == "--old-ts") f.old_ts = v == "on";
    else if (k == "--decisions") f.decisions = v != "off";
    else if (k == "--state-save-ms") f.state_save_ms = std::stoll(v);
    else {
      std::fprintf(stderr, "unknown flag %s; flags: --events --clients --rate --latency-seconds --read-seconds --users --fsync --history on|off --archive on|off --decisions on|off --state-save-ms N\n", k.c_str());
      return 2;
    }
  }
  return portrait::Run(f);
}
