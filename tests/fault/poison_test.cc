// Poison input against the real binary on a 3-master Redis Cluster: a uid, a product and a
// decision key made of braces once broke the cluster's hash tags (CROSSSLOT on every retry,
// the partition stalled for good). Now such a user is a user like any other, and the users
// posted after it on the same partitions are processed too.
#include <gtest/gtest.h>

#include <thread>

#include "e2e/e2e_util.h"
#include "redis_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

TEST(PoisonTest, BracesInIdsNeitherFailNorStallAPartitionOnACluster) {
  RedisCluster cluster;
  ASSERT_TRUE(cluster.Start()) << "cannot start the 3-master redis cluster";
  TempDir dir;
  std::string nodes;
  for (const auto& a : cluster.addrs()) nodes += (nodes.empty() ? "\"" : ", \"") + a + "\"";
  std::string config =
      WriteExampleConfig(dir.path(), {{"backend = \"rocksdb\"", "backend = \"redis\"\ncluster_nodes = [" + nodes + "]"}});
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());

  const int64_t ts = NowMs() - 60'000;
  std::string body;
  // Three clicks of one category: the coupon rule decides for "}x" (rule-state keys too).
  for (int i = 0; i < 3; ++i) {
    body += R"({"uid":"}x","type":"click","ts":)" + std::to_string(ts + i) + R"(,"product":"}","channel":"{a}",)" +
            R"("props":{"item_id":)" + std::to_string(i) + R"(,"category_id":5}})" + "\n";
  }
  for (int u = 0; u < 16; ++u) {  // after it, on every partition
    body += R"({"uid":"after)" + std::to_string(u) + R"(","type":"click","ts":)" + std::to_string(ts + 10 + u) +
            R"(,"props":{"item_id":9,"category_id":1}})" + "\n";
  }
  ASSERT_EQ(http.Post("/v1/events", body).status, 200);

  auto all_there = [&] {
    for (int u = 0; u < 16; ++u) {
      if (ReadProfile(http, "after" + std::to_string(u)).status != 200) return false;
    }
    return ReadProfile(http, "%7Dx").status == 200;
  };
  bool done = false;
  for (int i = 0; i < 300 && !(done = all_there()); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(done) << "a partition stalled behind the uid \"}x\"";
  ProfileView x = ReadProfile(http, "%7Dx");  // the path is percent-decoded: uid "}x"
  EXPECT_EQ(x.click_items.size(), 3u);
  HttpResult d = http.Get("/v1/decisions/%7Dx");
  EXPECT_EQ(d.status, 200);
  EXPECT_NE(d.body.find("\"rule\":\"category_coupon\""), std::string::npos) << d.body;
  HttpResult ch = http.Get("/v1/channels/new-users?product=%7D&granularity=day");
  EXPECT_EQ(ch.status, 200) << ch.body;
  EXPECT_NE(ch.body.find("\"channel\":\"{a}\""), std::string::npos) << ch.body;
  std::string metrics = http.Get("/metrics").body;
  EXPECT_NE(metrics.find("portrait_processor_store_errors_total 0"), std::string::npos) << "a store write failed";
}

}  // namespace
}  // namespace portrait::testing_util
