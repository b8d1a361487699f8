// The archive through the real binary: every accepted event once, in the part files of its
// event-time hour (late ones too), across a kill -9; expired hours deleted; closed hours
// compacted to one file per partition.
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

// Compaction through the binary: old (closed) hours posted in rounds, one part file per
// flush; after a kill -9 and a restart, the first pass leaves one file per partition and
// hour (compact_grace = "0s": the inputs go at once), every event once, and `portrait
// batch` reads them all.
TEST(ArchiveTest, ClosedHoursAreCompactedToOneFilePerPartition) {
  TempDir dir;
  std::string config = WriteExampleConfig(dir.path(), {{"flush_seconds = 5", "flush_seconds = 1"},
                                                        {"compact_after = \"2h\"", "compact_after = \"2h\"\ncompact_grace = \"0s\""}});
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  const int64_t t0 = 1700000000000;  // 2023-11-14 22:13 UTC
  const std::string root = dir.path() + "/data/archive";
  auto on_disk = [&] {
    std::map<std::string, int> files;  // hour dir + partition -> part files
    std::map<std::string, int> items;  // item -> times found
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (!name.starts_with("part-") || !name.ends_with(".ndjson.gz")) continue;
      ++files[it->path().parent_path().string() + "#" + std::to_string(std::atoi(name.c_str() + 5))];
      std::string text = Gunzip(it->path().string());
      for (size_t pos = 0; (pos = text.find("\"item_id\":", pos)) != std::string::npos;) {
        pos += 10;
        ++items[text.substr(pos, text.find_first_of(",}", pos) - pos)];
      }
    }
    return std::pair(files, items);
  };
  int item = 0;
  {
    HttpClient http(server.url());
    for (int round = 0; round < 3; ++round) {
      std::string body;
      for (int i = 0; i < 60; ++i, ++item) {
        body += R"({"uid":"c)" + std::to_string(item % 7) + R"(","type":"click","ts":)" +
                std::to_string(t0 + (item % 2) * 3'600'000) + R"(,"props":{"item_id":)" + std::to_string(item) +
                R"(,"category_id":1}})" "\n";
      }
      ASSERT_EQ(http.Post("/v1/events", body).status, 200);
      for (int i = 0; i < 100 && static_cast<int>(on_disk().second.size()) < item; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // the flush is committed
    }
  }
  auto [before, items_before] = on_disk();
  ASSERT_EQ(static_cast<int>(items_before.size()), item);
  int most = 0;
  for (const auto& [_, n] : before) most = std::max(most, n);
  // The first pass after the start compacted what it could; the later rounds' files wait
  // for the next pass, a minute on: a restart makes it now.
  server.Kill(SIGKILL);
  ASSERT_TRUE(server.Start()) << server.output();
  std::pair<std::map<std::string, int>, std::map<std::string, int>> after;
  for (int i = 0; i < 100; ++i) {
    after = on_disk();
    bool one_each = !after.first.empty();
    for (const auto& [_, n] : after.first) one_each = one_each && n == 1;
    if (one_each) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const auto& [hour, n] : after.first) EXPECT_EQ(n, 1) << hour << " (was " << before[hour] << ")";
  EXPECT_EQ(after.first.size(), before.size());
  EXPECT_GT(most, 1) << "several part files per partition and hour before";
  EXPECT_EQ(static_cast<int>(after.second.size()), item);
  for (const auto& [id, n] : after.second) EXPECT_EQ(n, 1) << "item " << id;
  std::string out;
  ASSERT_EQ(RunCommand(Portrait("batch --config " + config + " --data-dir " + dir.path() + "/data --date 2023-11-14"), &out), 0)
      << out;
  EXPECT_NE(out.find(std::to_string(item) + " events from " + std::to_string(after.first.size()) + " archive files"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace portrait::testing_util
