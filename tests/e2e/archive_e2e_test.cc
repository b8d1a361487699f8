// The archive through the real binary: every accepted event once, in the part files of its
// event-time hour (late ones too), across a kill -9; expired hours deleted.
#include <gtest/gtest.h>
#include <signal.h>
#include <zlib.h>

#include <filesystem>
#include <map>
#include <set>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

std::string HourOf(int64_t ms) {
  std::time_t s = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "date=%04d-%02d-%02d/hour=%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour);
  return buf;
}

// A part file written longer ago than the retention is deleted, whatever hour it holds; one
// written now for an hour long past (a backfill) stays.
TEST(ArchiveTest, RetentionCountsFromWhenTheDataArrived) {
  TempDir dir;
  std::string config = WriteExampleConfig(dir.path(), {{"flush_seconds = 5", "flush_seconds = 1"},
                                                        {"retention = \"90d\"", "retention = \"2d\""}});
  ASSERT_FALSE(config.empty());
  std::string root = dir.path() + "/data/archive";
  std::string old_hour = root + "/date=2017-11-25/hour=03", fresh_hour = root + "/date=2017-11-26/hour=04";
  std::filesystem::create_directories(old_hour);
  std::filesystem::create_directories(fresh_hour);
  std::ofstream(old_hour + "/part-0-0.ndjson.gz") << "x";
  std::ofstream(fresh_hour + "/part-0-0.ndjson.gz") << "x";
  std::filesystem::last_write_time(old_hour + "/part-0-0.ndjson.gz",
                                   std::filesystem::file_time_type::clock::now() - std::chrono::hours(72));
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  for (int i = 0; i < 100 && std::filesystem::exists(old_hour); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_FALSE(std::filesystem::exists(old_hour)) << "written 3 days ago: past the 2-day retention";
  EXPECT_TRUE(std::filesystem::exists(fresh_hour + "/part-0-0.ndjson.gz")) << "written now: kept";
}

TEST(ArchiveTest, EveryEventOnceInItsHour) {
  TempDir dir;
  std::string config = WriteExampleConfig(dir.path(), {{"flush_seconds = 5", "flush_seconds = 1"},
                                                        {"retention = \"90d\"", "retention = \"2d\""}});
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  std::map<std::string, int64_t> sent;  // item -> event time
  int item = 0;
  auto post = [&](HttpClient& http, int64_t ts, int n) {
    std::string body;
    for (int i = 0; i < n; ++i, ++item) {
      body += R"({"uid":"a)" + std::to_string(item % 3) + R"(","type":"click","ts":)" + std::to_string(ts + i) +
              R"(,"props":{"item_id":)" + std::to_string(item) + R"(,"category_id":1}})" "\n";
      sent[std::to_string(item)] = ts + i;
    }
    ASSERT_EQ(http.Post("/v1/events", body).status, 200);
  };
  {
    HttpClient http(server.url());
    post(http, now - 2 * 3'600'000, 50);
    post(http, now - 3'600'000, 50);
    post(http, now, 50);
    post(http, now - 5 * 3'600'000, 20);  // late: an older hour
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    post(http, now, 30);
  }
  server.Kill(SIGKILL);  // maybe mid-flush
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient again(server.url());
  post(again, now - 3'600'000, 30);
  int64_t expired = now - 3 * 86'400'000LL;  // older than the 2-day retention: a backfill
  std::string body = R"({"uid":"old","type":"click","ts":)" + std::to_string(expired) + R"(,"props":{"item_id":999999,"category_id":1}})";
  ASSERT_EQ(again.Post("/v1/events", body).status, 200);
  sent["999999"] = expired;

  std::map<std::string, std::vector<std::string>> found;  // item -> hour dirs it is in
  std::string root = dir.path() + "/data/archive";
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    found.clear();
    for (const auto& f : std::filesystem::recursive_directory_iterator(root)) {
      if (f.path().extension() != ".gz") continue;
      std::string hour = f.path().parent_path().parent_path().filename().string() + "/" +
                         f.path().parent_path().filename().string();
      std::string text = Gunzip(f.path().string());
      for (size_t pos = 0; (pos = text.find("\"item_id\":", pos)) != std::string::npos;) {
        pos += 10;
        found[text.substr(pos, text.find_first_of(",}", pos) - pos)].push_back(hour);
      }
    }
    if (found.size() >= sent.size()) break;
  }
  EXPECT_EQ(found.size(), sent.size());
  for (const auto& [id, ts] : sent) {
    ASSERT_TRUE(found.count(id)) << "event " << id << " is not archived";
    EXPECT_EQ(found[id].size(), 1u) << "event " << id << " archived " << found[id].size() << " times";
    EXPECT_EQ(found[id][0], HourOf(ts)) << "event " << id;
  }
  // Retention counts from when the archive received the data: the backfill stays, a part
  // file written long ago goes (its time set back by hand: it was "written" 3 days ago).
  ASSERT_TRUE(found.count("999999")) << "a backfill of events older than the retention is archived";
  EXPECT_EQ(found["999999"][0], HourOf(expired));
}

}  // namespace
}  // namespace portrait::testing_util
