// Scale-out: two `portrait serve` processes on the Kafka log (librdkafka's mock cluster,
// 3 brokers, in its own process) and one Redis. Events are posted to both; one process is
// killed with SIGKILL while it is still working through its share; the other takes its
// partitions over. Some bodies are sent to both processes (a client's retry reaching another
// process). Afterwards the profiles equal those of a single process that was given the
// same events once, and the exactly-once counters count each acknowledged event once.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>

#include <filesystem>
#include <map>

#include "e2e/e2e_util.h"
#include "kafka_util.h"
#include "redis_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

constexpr int kUsers = 120;

// The example config on the Kafka log and Redis; the archive and the erasure list in
// `shared`, a directory every process of the group sees.
std::string KafkaConfig(const std::string& dir, const std::string& brokers, const std::string& prefix,
                        const std::string& redis, const std::string& shared) {
  return WriteExampleConfig(
      dir, {{"backend = \"embedded\"", "backend = \"kafka\"\nkafka = { brokers = \"" + brokers + "\", topic_prefix = \"" +
                                           prefix + "\", session_timeout_ms = 4000 }"},
            {"[store]\n", "[privacy]\nerasure_list = \"" + shared + "/erasures.list\"\n\n[store]\n"},
            {"backend = \"rocksdb\"", "backend = \"redis\"\nurl = \"redis://" + redis + "\""},
            {"enabled = true\nflush_seconds = 5", "enabled = true\ndir = \"" + shared + "/archive\"\nflush_seconds = 1"},
            {"# snapshot_dir = \"./data/snapshots\"", "snapshot_dir = \"" + shared + "/snapshots\""}});
}

// Body `b` of the stream: 100 events of kUsers users, a buy every 5th.
std::string Body(int b) {
  std::string body;
  for (int i = 0; i < 100; ++i) {
    int n = b * 100 + i;
    std::string uid = "k" + std::to_string(n % kUsers);
    const char* type = n % 5 == 0 ? "buy" : "click";
    body += R"({"id":"e)" + std::to_string(n) + R"(","uid":")" + uid + R"(","type":")" + type + R"(","ts":)" +
            std::to_string(1700000000000 + n) + R"(,"props":{"item_id":)" + std::to_string(n) +
            R"(,"category_id":)" + std::to_string(n % 7) + "}}\n";
  }
  return body;
}

std::string AllProfiles(HttpClient& http) {
  std::string uids;
  for (int u = 0; u < kUsers; ++u) uids += std::string(u ? "," : "") + "\"k" + std::to_string(u) + "\"";
  HttpResult r = http.Post("/v1/profiles:batchGet", "{\"uids\":[" + uids + "]}");
  EXPECT_EQ(r.status, 200) << r.body;
  return r.body;
}

// Waits until every user's purchases and category counts add up to what was posted.
bool WaitForAll(HttpClient& http, int bodies, std::chrono::seconds limit) {
  int64_t want_events = bodies * 100;
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    int64_t events = 0;
    for (int u = 0; u < kUsers; ++u) {
      ProfileView p = ReadProfile(http, "k" + std::to_string(u));
      for (const auto& [cat, n] : p.category_prefs) events += n;
    }
    if (events == want_events) return true;
    EXPECT_LE(events, want_events) << "an event was counted twice";
    if (events > want_events) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  return false;
}

TEST(KafkaE2eTest, TwoProcessesShareTheStreamAndOneIsKilledMidStream) {
  KafkaMock kafka;
  ASSERT_TRUE(kafka.Start(3, {"two.events:8", "two.failed:1", "two.decisions:8", "two.segments:8", "one.events:8", "one.failed:1", "one.decisions:8", "one.segments:8"}));
  RedisServer redis_two, redis_one;
  ASSERT_TRUE(redis_two.Start());
  ASSERT_TRUE(redis_one.Start());
  TempDir dir_a, dir_b, dir_one, shared_two, shared_one;

  std::string config_a = KafkaConfig(dir_a.path(), kafka.bootstrap(), "two.", redis_two.addr(), shared_two.path());
  std::string config_b = KafkaConfig(dir_b.path(), kafka.bootstrap(), "two.", redis_two.addr(), shared_two.path());
  ASSERT_FALSE(config_a.empty());
  ServerProcess a(config_a, dir_a.path() + "/data");
  ServerProcess b(config_b, dir_b.path() + "/data");
  ASSERT_TRUE(a.Start()) << a.output();
  ASSERT_TRUE(b.Start()) << b.output();
  HttpClient http_a(a.url()), http_b(b.url());

  auto processed = [](HttpClient& http) {
    std::string m = http.Get("/metrics").body;
    size_t at = m.find("\nportrait_processor_events_total ");
    return at == std::string::npos ? -1L : std::atol(m.c_str() + at + 34);
  };
  auto post = [](HttpClient& http, int body) {
    HttpResult r = http.Post("/v1/events", Body(body));
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_NE(r.body.find("\"accepted\":100"), std::string::npos) << r.body;
  };
  // Both processes take posts until both are processing (the group's first join takes a
  // few seconds on the mock); then more, and B is killed right after its last
  // acknowledged post while its processor is still working through its share.
  constexpr int kBodies = 120;
  int body = 0;
  for (; body < 30; ++body) post(body % 2 ? http_b : http_a, body);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((processed(http_a) <= 0 || processed(http_b) <= 0) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GT(processed(http_b), 0) << "B never got partitions";
  // Every 7th body is sent again to the other process, as a client retries after a lost
  // answer: that collector has not seen those ids, the partition's holder drops them.
  for (; body < 80; ++body) {
    post(body % 2 ? http_b : http_a, body);
    if (body % 7 == 0) post(body % 2 ? http_a : http_b, body);
  }
  long b_events_processed_at_kill = processed(http_b);
  b.Kill(SIGKILL);
  for (; body < kBodies; ++body) post(http_a, body);
  post(http_a, 79);  // a retry of a body B took before it was killed
  std::printf("B had processed %ld events when killed\n", b_events_processed_at_kill);
  ASSERT_TRUE(WaitForAll(http_a, kBodies, std::chrono::seconds(120))) << "A did not finish B's share";
  std::string two = AllProfiles(http_a);

  // The same events through one process (its own topics and Redis).
  std::string config_one = KafkaConfig(dir_one.path(), kafka.bootstrap(), "one.", redis_one.addr(), shared_one.path());
  ServerProcess one(config_one, dir_one.path() + "/data");
  ASSERT_TRUE(one.Start()) << one.output();
  HttpClient http_one(one.url());
  for (int body = 0; body < kBodies; ++body) ASSERT_EQ(http_one.Post("/v1/events", Body(body)).status, 200);
  ASSERT_TRUE(WaitForAll(http_one, kBodies, std::chrono::seconds(120)));
  EXPECT_EQ(two, AllProfiles(http_one)) << "two processes with a kill must give what one process gives";

  // The archive the two processes shared holds every event once, like the one process's:
  // each archived the partitions it held, B's share taken over after the kill.
  std::map<std::string, int> archived;
  WaitUntil([&] { return (archived = ArchivedIds(shared_two.path() + "/archive")).size() >= kBodies * 100; }, 60);
  EXPECT_EQ(archived.size(), size_t{kBodies * 100});
  for (const auto& [id, n] : archived) EXPECT_EQ(n, 1) << id << " archived " << n << " times";
  std::map<std::string, int> archived_one;
  WaitUntil([&] { return (archived_one = ArchivedIds(shared_one.path() + "/archive")).size() >= kBodies * 100; }, 60);
  EXPECT_EQ(archived, archived_one);

  // Spot check against the definition: purchases count each buy once.
  for (int u = 0; u < 5; ++u) {
    int64_t buys = 0;
    for (int n = 0; n < kBodies * 100; ++n) buys += n % kUsers == u && n % 5 == 0;
    EXPECT_EQ(ReadProfile(http_a, "k" + std::to_string(u)).purchases, buys);
  }
}

// Produces `messages` to `topic` and waits until the brokers have them.
void Produce(const std::string& brokers, const std::string& topic, const std::vector<std::string>& messages) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err), RD_KAFKA_CONF_OK);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;
  for (size_t i = 0; i < messages.size(); ++i) {
    ASSERT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(static_cast<int32_t>(i % 4)),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_VALUE(const_cast<char*>(messages[i].data()), messages[i].size()), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  EXPECT_EQ(rd_kafka_flush(rk, 30'000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
}

std::string Click(int n) {
  return R"({"uid":"s)" + std::to_string(n % 5) + R"(","type":"click","ts":)" + std::to_string(1700000000000 + n) +
         R"(,"props":{"item_id":)" + std::to_string(n) + R"(,"category_id":1}})";
}

// A Kafka pull source: messages of one or several NDJSON lines (and one broken one) are
// ingested once each, across a SIGKILL of portrait in the middle of the topic.
TEST(KafkaE2eTest, KafkaSourceIngestsEveryLineOnceAcrossAKill) {
  KafkaMock kafka;
  ASSERT_TRUE(kafka.Start(3, {"shop.clicks:4"}));
  TempDir dir;
  std::string config = WriteExampleConfig(
      dir.path(), {{"value = \"$ts_iso\"", "value = \"$ts_iso\"\n\n[[sources]]\nname = \"shop\"\ntype = \"kafka\"\nbrokers = \"" +
                                             kafka.bootstrap() + "\"\ntopic = \"shop.clicks\"\npoll_ms = 50\n"}});
  ASSERT_FALSE(config.empty());
  auto messages = [](int from, int to) {
    std::vector<std::string> out;
    for (int n = from; n < to; n += 3) out.push_back(Click(n) + "\n" + Click(n + 1) + "\n" + Click(n + 2) + "\n");
    return out;
  };
  Produce(kafka.bootstrap(), "shop.clicks", messages(0, 300));
  Produce(kafka.bootstrap(), "shop.clicks", {"{broken"});
  auto server = std::make_unique<ServerProcess>(config, dir.path() + "/data");
  ASSERT_TRUE(server->Start()) << server->output();
  auto total = [&](int want) {
    HttpClient http(server->url());
    int64_t seen = 0;
    for (int i = 0; i < 600; ++i) {
      seen = 0;
      for (int u = 0; u < 5; ++u) {
        ProfileView p = ReadProfile(http, "s" + std::to_string(u));
        seen += p.category_prefs.count("1") ? p.category_prefs.at("1") : 0;
      }
      if (seen >= want) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return seen;
  };
  EXPECT_EQ(total(300), 300);
  server->Kill(SIGKILL);
  Produce(kafka.bootstrap(), "shop.clicks", messages(300, 600));
  ASSERT_TRUE(server->Start()) << server->output();
  EXPECT_EQ(total(600), 600);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(total(600), 600) << "nothing ingested twice";
  HttpClient http(server->url());
  HttpResult failed = http.Get("/v1/failed?limit=5");
  EXPECT_NE(failed.body.find(R"("payload":"{broken")"), std::string::npos) << failed.body;
  EXPECT_NE(failed.body.find(R"("source":"kafka:shop")"), std::string::npos) << failed.body;
}

}  // namespace
}  // namespace portrait::testing_util
