// Log retention racing the store against the real binary: segments are trimmed every 10
// milliseconds while events stream in, and the server is killed with SIGKILL in the middle,
// several times. The RocksDB store writes without its own WAL, so what it holds durably
// is what it flushed: retention reads the checkpoints before it flushes, and may only trim
// what those say. Trimming further (a checkpoint read after the flush can count batches
// still in memory) shows here as a restart that refuses to start ("the log keeps only
// offsets from ...") or as profiles missing events.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

TEST(RetentionRaceTest, TrimmingWhileKilledNeverLosesWhatTheStoreHasNotFlushed) {
  TempDir dir;
  std::string config = WriteExampleConfig(
      dir.path(), {{"segment_bytes = 67108864",
                    "segment_bytes = 4096\nretention_check_ms = 10\n\n[log.topics.events]\nretention_bytes = 1"}});
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  int64_t sent = 0;
  for (int round = 0; round < 6; ++round) {
    HttpClient http(server.url());
    for (int b = 0; b < 8; ++b) {
      std::string body;
      for (int i = 0; i < 250; ++i, ++sent) {
        body += R"({"uid":"r)" + std::to_string(sent % 5) + R"(","type":"click","ts":)" +
                std::to_string(1700000000000 + sent) + R"(,"props":{"item_id":)" + std::to_string(sent) +
                R"(,"category_id":2}})" "\n";
      }
      ASSERT_EQ(http.Post("/v1/events", body).status, 200);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10 * round));  // kill at different points
    server.Kill(SIGKILL);
    ASSERT_TRUE(server.Start()) << "round " << round << ": the restart refused the trimmed log\n" << server.output();
  }
  HttpClient http(server.url());
  auto counted = [&] {
    int64_t n = 0;
    for (int u = 0; u < 5; ++u) n += ReadProfile(http, "r" + std::to_string(u)).category_prefs["2"];
    return n;
  };
  ASSERT_TRUE(WaitUntil([&] { return counted() == sent; }, 20)) << counted() << " of " << sent;
  // About 1.2 MB were logged; without trimming all of it would still be there.
  uint64_t bytes = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path() + "/data/log/events")) {
    if (e.is_regular_file()) bytes += e.file_size();
  }
  EXPECT_LT(bytes, 400'000u) << "retention never trimmed: the test would prove nothing";
}

}  // namespace
}  // namespace portrait::testing_util
