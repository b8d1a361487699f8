// A full disk under the log, with the real binary: a request is logged all or none, is
// answered 503 with Retry-After (not 500), reads keep working, and once the filesystem grows
// ingestion resumes and a client that retries what was refused counts every event exactly
// once. The log directory is a small tmpfs mounted by the test (root only; skipped otherwise).
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

constexpr int kUsers = 40;


class Tmpfs {
 public:
  bool Mount(const std::string& dir, const std::string& size) {
    std::filesystem::create_directories(dir);
    if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, ("size=" + size).c_str()) != 0) return false;
    dir_ = dir;
    return true;
  }
  bool Resize(const std::string& size) {
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, ("size=" + size).c_str()) == 0;
  }
  ~Tmpfs() {
    if (!dir_.empty()) ::umount2(dir_.c_str(), MNT_DETACH);
  }

 private:
  std::string dir_;
};

std::string Body(int request, int64_t ts) {
  std::string body;
  for (int i = 0; i < 1000; ++i) {
    int n = request * 1000 + i;
    body += R"({"id":"e)" + std::to_string(n) + R"(","uid":"df)" + std::to_string(n % kUsers) +
            R"(","type":"click","ts":)" + std::to_string(ts + n) + R"(,"props":{"item_id":)" + std::to_string(n) +
            R"(,"category_id":)" + std::to_string(n % 7) + "}}\n";
  }
  return body;
}

// Events counted into the users' profiles: the sum of the category_prefs counters.
int64_t CountedEvents(HttpClient& http) {
  int64_t n = 0;
  for (int u = 0; u < kUsers; ++u) {
    ProfileView v = ReadProfile(http, "df" + std::to_string(u));
    for (const auto& [_, c] : v.category_prefs) n += c;
  }
  return n;
}

TEST(DiskFullTest, RequestsAreLoggedAllOrNoneAndRetriesCountOnce) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs under the log";
  TempDir dir;
  std::string data = dir.path() + "/data";
  Tmpfs fs;
  if (!fs.Mount(data + "/log", "8m")) GTEST_SKIP() << "cannot mount a tmpfs here";
  std::string config = WriteExampleConfig(dir.path(), {{"enabled = true\nflush_seconds = 5", "enabled = false\nflush_seconds = 5"}});
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, data);
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());
  const int64_t ts = NowMs() - 3'600'000;

  int64_t acknowledged = 0;
  std::vector<int> refused;
  for (int r = 0; r < 120; ++r) {
    HttpResult res = http.Post("/v1/events", Body(r, ts));
    if (res.status == 200) {
      simdjson::dom::parser p;
      acknowledged += p.parse(res.body)["accepted"].get_int64().value();
      continue;
    }
    ASSERT_EQ(res.status, 503) << "a full disk is not a client error and not a crash: " << res.body;
    EXPECT_NE(res.headers.find("Retry-After"), std::string::npos) << res.headers;
    EXPECT_NE(res.body.find("No space left"), std::string::npos) << res.body;
    refused.push_back(r);
  }
  ASSERT_FALSE(refused.empty()) << "the 8 MB log must fill up";
  ASSERT_GT(acknowledged, 0);
  EXPECT_EQ(http.Get("/healthz").status, 200);

  // Nothing of a refused request reached the profiles: exactly what was acknowledged.
  EXPECT_TRUE(WaitUntil([&] { return CountedEvents(http) == acknowledged; }, 30))
      << CountedEvents(http) << " events counted, " << acknowledged << " acknowledged";

  // The disk grows; the client retries what was refused: every event counts once.
  ASSERT_TRUE(fs.Resize("256m"));
  for (int r : refused) {
    HttpResult res = http.Post("/v1/events", Body(r, ts));
    ASSERT_EQ(res.status, 200) << res.body;
  }
  const int64_t all = 120 * 1000;
  EXPECT_TRUE(WaitUntil([&] { return CountedEvents(http) == all; }, 60))
      << CountedEvents(http) << " events counted, " << all << " sent";
}

}  // namespace
}  // namespace portrait::testing_util
