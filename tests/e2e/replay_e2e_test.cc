// `portrait replay` through the real binary: refused next to a running server; from offset
// 0 twice gives the profiles the server had (counters included); from a time, only what
// happened since then.
#include <gtest/gtest.h>
#include <signal.h>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

// A fractional counter is rebuilt to the same bits whatever the batches: live, the events
// come in two batches (0.1, then 0.2 + 0.3); the replay reads all three in one. Summing
// 0.2 + 0.3 first (pre-combining) would give 0.6 live and 0.6000000000000001 on replay.
TEST(ReplayTest, AFractionalCounterIsRebuiltToTheSameBits) {
  TempDir dir;
  std::string config = WriteExampleConfig(
      dir.path(), {{"[events.buy.props]\n", "[events.buy.props]\nprice = { type = \"number\", required = false }\n"},
                   {"on = \"buy\"\ntag = \"purchases\"\nop = \"number.incr\"\nvalue = 1",
                    "on = \"buy\"\ntag = \"purchases\"\nop = \"number.incr\"\nvalue = \"$props.price\""}});
  ASSERT_FALSE(config.empty());
  std::string data = dir.path() + "/data";
  ServerProcess server(config, data);
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());
  auto buy = [](int i, const char* price) {
    return R"({"uid":"f1","type":"buy","ts":)" + std::to_string(1700000000000 + i) +
           R"(,"props":{"item_id":1,"category_id":1,"price":)" + price + "}}\n";
  };
  auto purchases = [&](HttpClient& h) {
    return h.Get("/v1/profiles/f1/tags/purchases").body;
  };
  ASSERT_EQ(http.Post("/v1/events", buy(0, "0.1")).status, 200);
  for (int i = 0; i < 200 && purchases(http).find("\"value\":0.1") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(http.Post("/v1/events", buy(1, "0.2") + buy(2, "0.3")).status, 200);
  std::string before;
  for (int i = 0; i < 200; ++i) {
    before = purchases(http);
    if (before.find("\"value\":0.6") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(before.find("\"value\":0.6"), std::string::npos) << before;
  server.Kill(SIGTERM);
  std::string out;
  ASSERT_EQ(RunCommand(std::string(PORTRAIT_BINARY) + " replay --config " + config + " --data-dir " + data +
                           " --from-offset 0", &out), 0) << out;
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient again(server.url());
  EXPECT_EQ(purchases(again), before);
}

TEST(ReplayTest, RebuildsTheSameProfilesAndIsRepeatable) {
  TempDir dir;
  std::string config = WriteExampleConfig(dir.path());
  std::string data = dir.path() + "/data";
  ServerProcess server(config, data);
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());
  std::string body;
  for (int i = 0; i < 60; ++i) {
    body += R"({"uid":"r)" + std::to_string(i % 3) + R"(","type":")" + (i % 4 == 0 ? "buy" : "click") + R"(","ts":)" +
            std::to_string(1700000000000 + i * 1000) + R"(,"props":{"item_id":)" + std::to_string(i) +
            R"(,"category_id":)" + std::to_string(i % 5) + "}}\n";
  }
  ASSERT_EQ(http.Post("/v1/events", body).status, 200);
  ASSERT_EQ(http.Post("/v1/actions", R"({"id":"a1","uid":"r0","tag":"purchases","op":"number.incr","ts":1700000100000,"value":10})").status, 200);
  ASSERT_EQ(http.Request("DELETE", "/v1/profiles/r2").status, 200);
  const std::string q = R"({"uids":["r0","r1","r2"]})";
  std::string before;
  for (int i = 0; i < 200; ++i) {
    before = http.Post("/v1/profiles:batchGet", q).body;
    // Every partition processed: r0's and r1's purchases (other workers), r2 erased.
    if (before.find(R"("purchases":{"value":15)") != std::string::npos &&
        before.find(R"("purchases":{"value":5,)") != std::string::npos &&
        before.find(R"({"uid":"r2","tags":{})") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(before.find(R"("purchases":{"value":15)"), std::string::npos) << before;  // 5 buys + 10

  const std::string replay = std::string(PORTRAIT_BINARY) + " replay --config " + config + " --data-dir " + data;
  std::string out;
  EXPECT_EQ(RunCommand(replay + " --from-offset 0", &out), 1);
  EXPECT_NE(out.find("another portrait process is using data dir"), std::string::npos) << out;
  server.Kill(SIGTERM);
  ASSERT_EQ(RunCommand(replay + " --from-offset 0", &out), 0) << out;
  EXPECT_NE(out.find("replayed 62 log records"), std::string::npos) << out;  // 60 events, 1 action, 1 erasure
  ASSERT_EQ(RunCommand(replay + " --from-offset 0", &out), 0) << out;  // again: nothing changes
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient again(server.url());
  EXPECT_EQ(again.Post("/v1/profiles:batchGet", q).body, before);

  // From a time: only events at or after it (r0's buys at i = 0, 12, 24, 36, 48 -> from 30 s: 36, 48).
  server.Kill(SIGTERM);
  ASSERT_EQ(RunCommand(replay + " --from-time 1700000030000", &out), 0) << out;
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient third(server.url());
  std::string after = third.Post("/v1/profiles:batchGet", R"({"uids":["r0"],"tags":["purchases"]})").body;
  EXPECT_NE(after.find(R"("purchases":{"value":12)"), std::string::npos) << after;  // 2 buys + the action's 10
  EXPECT_NE(RunCommand(std::string(PORTRAIT_BINARY) + " replay --config " + config + " --from-offset 1 --from-time 5", &out), 0);
  EXPECT_NE(out.find("--from-offset excludes --from-time"), std::string::npos) << out;
}

}  // namespace
}  // namespace portrait::testing_util
