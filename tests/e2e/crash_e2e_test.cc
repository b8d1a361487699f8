// Crash safety: kill -9 the server while clients stream events, restart it, and check
// that every acknowledged event is in the profiles, and no event was applied twice.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

constexpr int kUsers = 32;
// Events per restart round: 3 rounds stay under the click list's size_limit of 1000.
constexpr int kRoundBudget = kUsers * 300;

TEST(CrashTest, AcknowledgedEventsSurviveKill9ExactlyOnce) {
  TempDir dir;
  std::string config = WriteExampleConfig(dir.path());
  ServerProcess server(config, dir.path() + "/data");
  // Every event is a click on a new item, so for each user: the click list holds each
  // applied event once, and category_prefs counts applications (an event applied twice
  // would count twice while appearing once in the list).
  std::vector<std::set<int64_t>> acked(kUsers), sent(kUsers);
  int next_item = 0;
  const int64_t t0 = 1700000000000;
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(server.Start()) << server.output();
    const int round_end = next_item + kRoundBudget;
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    std::mutex mu;
    for (int c = 0; c < 2; ++c) {
      clients.emplace_back([&, c] {
        HttpClient http(server.url());
        while (!stop.load()) {
          std::string body;
          std::vector<std::pair<int, int64_t>> batch;
          {
            std::lock_guard lk(mu);
            if (next_item >= round_end) break;
            for (int i = 0; i < 20; ++i) {
              int user = (next_item + c) % kUsers;
              int64_t item = next_item++;
              batch.emplace_back(user, item);
              sent[user].insert(item);
            }
          }
          for (auto [user, item] : batch) {
            body += R"({"uid":"user)" + std::to_string(user) + R"(","type":"click","ts":)" +
                    std::to_string(t0 + item) + R"(,"props":{"item_id":)" + std::to_string(item) +
                    R"(,"category_id":1}})" "\n";
          }
          HttpResult r = http.Post("/v1/events", body);
          if (r.status == 0) break;  // the server died under us: this batch is unacknowledged
          ASSERT_EQ(r.status, 200) << r.body;
          std::lock_guard lk(mu);
          for (auto [user, item] : batch) acked[user].insert(item);
        }
      });
    }
    // Kill mid-stream: once half of the round's events are out, while clients are posting.
    while (true) {
      {
        std::lock_guard lk(mu);
        if (next_item >= round_end - kRoundBudget / 2) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    server.Kill(SIGKILL);
    stop.store(true);
    for (auto& t : clients) t.join();
  }
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());
  size_t total_acked = 0;
  for (int u = 0; u < kUsers; ++u) {
    total_acked += acked[u].size();
    ASSERT_LT(sent[u].size(), 1000u) << "the click list would be cut; lower the volume";
    std::string uid = "user" + std::to_string(u);
    // Wait until the processor has caught up with at least every acknowledged event.
    ProfileView p = WaitForProfile(http, uid, [&](const ProfileView& v) {
      std::set<int64_t> have(v.click_items.begin(), v.click_items.end());
      return std::includes(have.begin(), have.end(), acked[u].begin(), acked[u].end());
    });
    std::set<int64_t> have(p.click_items.begin(), p.click_items.end());
    EXPECT_TRUE(std::includes(have.begin(), have.end(), acked[u].begin(), acked[u].end()))
        << uid << ": " << acked[u].size() << " acknowledged, " << have.size() << " in the profile";
    EXPECT_TRUE(std::includes(sent[u].begin(), sent[u].end(), have.begin(), have.end())) << uid;
    // Let any unacknowledged-but-logged tail finish, then compare the counter.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    p = ReadProfile(http, uid);
    EXPECT_EQ(p.category_prefs["1"], static_cast<int64_t>(p.click_items.size())) << uid << ": applied twice?";
    EXPECT_EQ(p.click_items.size(), std::set<int64_t>(p.click_items.begin(), p.click_items.end()).size());
  }
  EXPECT_GT(total_acked, 200u) << "too few events acknowledged to test anything";
}

}  // namespace
}  // namespace portrait::testing_util
