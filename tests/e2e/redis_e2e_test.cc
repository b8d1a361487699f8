// The whole engine on the Redis store: events and Actions in, Redis killed and restarted
// mid-stream, and afterwards every acknowledged event and Action applied exactly once.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "e2e/e2e_util.h"
#include "redis_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

constexpr int kUsers = 8;

TEST(RedisE2eTest, RedisDownMidStreamLosesAndDoublesNothing) {
  RedisServer redis;
  ASSERT_TRUE(redis.Start());
  TempDir dir;
  std::string config = WriteExampleConfig(
      dir.path(), {{"backend = \"rocksdb\"", "backend = \"redis\"\nurl = \"redis://" + redis.addr() + "\""}});
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();

  std::atomic<bool> stop{false};
  std::atomic<int> sent_events{0}, sent_buys{0};
  std::thread client([&] {
    HttpClient http(server.url());
    for (int item = 0; !stop.load(); ++item) {
      std::string uid = "ru" + std::to_string(item % kUsers);
      std::string ev = R"({"uid":")" + uid + R"(","type":"click","ts":)" + std::to_string(1700000000000 + item) +
                       R"(,"props":{"item_id":)" + std::to_string(item) + R"(,"category_id":1}})";
      ASSERT_EQ(http.Post("/v1/events", ev).status, 200);
      sent_events++;
      // An external increment with an id, retried once as a client would after a timeout.
      std::string act = R"({"id":"buy-)" + std::to_string(item) + R"(","uid":")" + uid +
                        R"(","tag":"purchases","op":"number.incr","ts":)" + std::to_string(1700000000000 + item) +
                        R"(,"value":1})";
      ASSERT_EQ(http.Post("/v1/actions", act).status, 200);
      ASSERT_EQ(http.Post("/v1/actions", act).status, 200);
      sent_buys++;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  redis.Kill(SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // events are still acknowledged: the log has them
  ASSERT_TRUE(redis.Start());
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  stop.store(true);
  client.join();
  ASSERT_GT(sent_events.load(), 100);

  HttpClient http(server.url());
  for (int u = 0; u < kUsers; ++u) {
    std::string uid = "ru" + std::to_string(u);
    int64_t want = 0;
    for (int item = 0; item < sent_events.load(); ++item) want += item % kUsers == u;
    ProfileView p = WaitForProfile(http, uid, [&](const ProfileView& v) {
      return v.category_prefs.count("1") && v.category_prefs.at("1") >= want && v.purchases >= want;
    });
    EXPECT_EQ(p.category_prefs["1"], want) << uid;
    EXPECT_EQ(static_cast<int64_t>(p.click_items.size()), want) << uid;
    EXPECT_EQ(p.purchases, want) << uid << ": each id once, despite retries and the outage";
  }
  // The outage is retried either by the processor (a failed batch) or inside the Redis
  // client (commands sent again), depending on timing; it must show up in one of them.
  std::string metrics = http.Get("/metrics").body;
  auto value = [&](const std::string& name) {
    size_t at = metrics.find("\n" + name + " ");
    return at == std::string::npos ? -1L : std::atol(metrics.c_str() + at + name.size() + 2);
  };
  long batches = value("portrait_processor_store_errors_total");
  long commands = value("portrait_redis_retried_commands_total");
  std::printf("during the outage: %ld batches and %ld Redis commands retried\n", batches, commands);
  EXPECT_GT(batches + commands, 0) << "the outage should have been seen (and retried)";
}

}  // namespace
}  // namespace portrait::testing_util
