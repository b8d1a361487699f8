// Log retention in a running server: segments go once the store holds their events, the
// profiles stay complete, and a restart resumes from what is kept.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

uint64_t DirBytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

TEST(RetentionTest, KeepsTheLogSmallAndTheProfilesWhole) {
  TempDir dir;
  std::string config = WriteExampleConfig(
      dir.path(), {{"segment_bytes = 67108864",
                    "segment_bytes = 4096\nretention_check_ms = 50\n\n[log.topics.events]\nretention_bytes = 16384\n\n"
                    "[log.topics.failed]\nretention_bytes = 4096"}});
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());
  for (int b = 0; b < 40; ++b) {
    std::string body;
    for (int i = 0; i < 25; ++i) {
      int item = b * 25 + i;
      body += R"({"uid":"k)" + std::to_string(item % 4) + R"(","type":"click","ts":)" +
              std::to_string(1700000000000 + item) + R"(,"props":{"item_id":)" + std::to_string(item) +
              R"(,"category_id":1}})" "\n";
    }
    ASSERT_EQ(http.Post("/v1/events", body + "{bad\n").status, 200);
  }
  auto counted = [&](HttpClient& c) {
    int64_t n = 0;
    for (int u = 0; u < 4; ++u) n += ReadProfile(c, "k" + std::to_string(u)).category_prefs["1"];
    return n;
  };
  for (int i = 0; i < 200 && counted(http) < 1000; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::string metrics;
  for (int i = 0; i < 100; ++i) {
    metrics = http.Get("/metrics").body;
    if (metrics.find("portrait_log_retention_deleted_bytes_total{topic=\"events\"} 0") == std::string::npos &&
        metrics.find("portrait_log_retention_deleted_bytes_total{topic=\"events\"}") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(metrics.find("portrait_log_retention_deleted_bytes_total{topic=\"events\"} 0"), std::string::npos) << metrics;
  EXPECT_EQ(counted(http), 1000);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // 8 partitions x (16 KiB kept + one active segment), far below the ~150 KiB written.
  EXPECT_LT(DirBytes(dir.path() + "/data/log/events"), 8u * (16384 + 8192));
  server.Kill(SIGTERM);
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient again(server.url());
  EXPECT_EQ(counted(again), 1000);
  EXPECT_EQ(again.Get("/v1/failed?limit=1000").status, 200);
}

}  // namespace
}  // namespace portrait::testing_util
