// Backpressure against the real binary: a client posting faster than the processor applies
// gets 503 with Retry-After once the processor is [collector] max_lag records behind,
// instead of the lag growing without bound; the lag stays near the limit, and every event
// answered 200 ends up in the profiles (each once).
#include <gtest/gtest.h>

#include <thread>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

TEST(BackpressureTest, PastMaxLagIngestionAnswers503AndNothingAcknowledgedIsLost) {
  TempDir dir;
  // One worker taking small batches: slower than one client posting 2,000 events a request.
  std::string config = WriteExampleConfig(
      dir.path(), {{"workers = 2                 # each owns partitions p % workers", "workers = 1"},
                   {"batch_max_events = 8192", "batch_max_events = 16\n\n[collector]\nmax_lag = 3000"}});
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());
  HttpClient watch(server.url());
  std::atomic<bool> done{false};
  std::atomic<int64_t> max_lag_seen{0};
  std::thread watcher([&] {
    while (!done.load()) {
      int64_t lag = MetricValue(watch.Get("/metrics").body, "portrait_processor_lag_events");
      if (lag > max_lag_seen.load()) max_lag_seen.store(lag);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  int64_t acknowledged = 0, refused = 0, seq = 0;
  bool retry_after = true;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(6);
  while (std::chrono::steady_clock::now() < until) {
    std::string body;
    for (int i = 0; i < 2000; ++i, ++seq) {
      body += R"({"uid":"b)" + std::to_string(seq % 50) + R"(","type":"click","ts":)" + std::to_string(1700000000000 + seq) +
              R"(,"props":{"item_id":)" + std::to_string(seq) + R"(,"category_id":4}})" + "\n";
    }
    HttpResult r = http.Post("/v1/events", body);
    if (r.status == 200) {
      acknowledged += 2000;
    } else {
      ASSERT_EQ(r.status, 503) << r.body;
      EXPECT_NE(r.body.find("max_lag"), std::string::npos) << r.body;
      retry_after = retry_after && r.headers.find("Retry-After:") != std::string::npos;
      ++refused;
    }
  }
  done.store(true);
  watcher.join();
  std::printf("acknowledged %lld events, %lld requests refused, largest lag seen %lld\n",
              static_cast<long long>(acknowledged), static_cast<long long>(refused),
              static_cast<long long>(max_lag_seen.load()));
  EXPECT_GT(refused, 0) << "the processor kept up: the test would prove nothing";
  EXPECT_TRUE(retry_after);
  EXPECT_LE(max_lag_seen.load(), 3000 + 2000) << "past max_lag by more than one request";
  std::string metrics = http.Get("/metrics").body;
  EXPECT_EQ(MetricValue(metrics, "portrait_ingest_backpressure_total"), refused);
  EXPECT_NE(metrics.find("portrait_processor_partition_lag_events{partition=\"0\"}"), std::string::npos);
  auto counted = [&] {
    int64_t n = 0;
    for (int u = 0; u < 50; ++u) n += ReadProfile(http, "b" + std::to_string(u)).category_prefs["4"];
    return n;
  };
  ASSERT_TRUE(WaitUntil([&] { return counted() == acknowledged; }, 60)) << counted() << " of " << acknowledged;
}

}  // namespace
}  // namespace portrait::testing_util
