// A user whose writes Redis refuses for good (a key of the wrong type under the user's
// hash tag: every write of the user answers WRONGTYPE), against the real binary. Before the
// quarantine its partition stopped for good; now that user's records go to the dead
// letters with the reason, every other user is processed, and once the key is fixed a
// dead-letter replay applies the user's records, each once.
#include <gtest/gtest.h>

#include <thread>

#include "e2e/e2e_util.h"
#include "redis_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

TEST(QuarantineFaultTest, AUserRedisRefusesIsQuarantinedAndReleasedWithoutStoppingOthers) {
  RedisServer redis;
  ASSERT_TRUE(redis.Start());
  // The profile's applied-offsets hash of "bad" made a string: each apply answers WRONGTYPE.
  redis.Cli("SET p:{bad}:o poison");
  TempDir dir;
  std::string config = WriteExampleConfig(
      dir.path(), {{"backend = \"rocksdb\"", "backend = \"redis\"\nurl = \"redis://" + redis.addr() + "\""}});
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());

  const int64_t ts = NowMs() - 60'000;
  auto click = [&](const std::string& uid, int64_t at, int item) {
    return R"({"uid":")" + uid + R"(","type":"click","ts":)" + std::to_string(at) + R"(,"props":{"item_id":)" +
           std::to_string(item) + R"(,"category_id":3}})" + "\n";
  };
  std::string body;
  for (int round = 0; round < 3; ++round) {
    body += click("bad", ts + round * 100, 100 + round);
    for (int u = 0; u < 16; ++u) body += click("ok" + std::to_string(u), ts + round * 100 + u + 1, u);
  }
  ASSERT_EQ(http.Post("/v1/events", body).status, 200);
  ASSERT_EQ(http.Post("/v1/events", click("bad", ts + 1000, 200)).status, 200);  // a later one waits too

  auto others_done = [&] {
    for (int u = 0; u < 16; ++u) {
      if (ReadProfile(http, "ok" + std::to_string(u)).click_items.size() != 3) return false;
    }
    return true;
  };
  ASSERT_TRUE(WaitUntil(others_done, 15)) << "a partition stopped behind the user Redis refuses";
  ASSERT_TRUE(WaitUntil([&] { return MetricValue(http.Get("/metrics").body, "portrait_quarantine_records_total") == 4; },
                        10))
      << http.Get("/metrics").body;
  std::string metrics = http.Get("/metrics").body;
  EXPECT_EQ(MetricValue(metrics, "portrait_quarantine_parked_users"), 1);
  HttpResult dlq = http.Get("/v1/dlq");
  ASSERT_EQ(dlq.status, 200);
  EXPECT_NE(dlq.body.find("\"sink\":\"quarantine\""), std::string::npos) << dlq.body;
  EXPECT_NE(dlq.body.find("\"key\":\"bad\""), std::string::npos) << dlq.body;
  EXPECT_NE(dlq.body.find("WRONGTYPE"), std::string::npos) << dlq.body;
  EXPECT_NE(dlq.body.find("dlq:replay?sink=quarantine"), std::string::npos) << dlq.body;
  EXPECT_NE(dlq.body.find(R"("event":{)"), std::string::npos) << "the quarantined event as JSON: " << dlq.body;
  EXPECT_NE(dlq.body.find(R"("item_id":200)"), std::string::npos) << dlq.body;

  // Fixed: the key removed; the dead letters of the quarantine replayed.
  redis.Cli("DEL p:{bad}:o");
  HttpResult replay = http.Post("/v1/dlq:replay?sink=quarantine", "");
  ASSERT_EQ(replay.status, 200) << replay.body;
  ASSERT_TRUE(WaitUntil([&] { return ReadProfile(http, "bad").click_items.size() == 4; }, 20))
      << http.Get("/v1/profiles/bad").body;
  ProfileView bad = ReadProfile(http, "bad");
  EXPECT_EQ(bad.click_items, (std::vector<int64_t>{200, 102, 101, 100})) << "newest first, each once";
  ASSERT_TRUE(WaitUntil([&] { return MetricValue(http.Get("/metrics").body, "portrait_quarantine_parked_users") == 0; },
                        5));
  // It flows again: a new event applies at once.
  ASSERT_EQ(http.Post("/v1/events", click("bad", ts + 2000, 300)).status, 200);
  ASSERT_TRUE(WaitUntil([&] { return ReadProfile(http, "bad").click_items.size() == 5; }, 10));
  EXPECT_EQ(MetricValue(http.Get("/metrics").body, "portrait_quarantine_released_total"), 4);
}

}  // namespace
}  // namespace portrait::testing_util
