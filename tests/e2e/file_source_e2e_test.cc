// The file source through the real binary: appends, rotations (also while the server is
// down) and kill -9 restarts, with every line ingested exactly once; and the public Taobao
// CSV format giving the same profiles as the same events posted over HTTP.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

constexpr const char* kLastRule = "value = \"$ts_iso\"";

std::string Line(int item) {
  return R"({"uid":"f)" + std::to_string(item % 5) + R"(","type":"click","ts":)" + std::to_string(1700000000000 + item) +
         R"(,"props":{"item_id":)" + std::to_string(item) + R"(,"category_id":1}})";
}

void Append(const std::string& path, int from, int to) {
  std::ofstream out(path, std::ios::app);
  for (int i = from; i < to; ++i) out << Line(i) << "\n";
}

TEST(FileSourceTest, EveryLineOnceThroughRotationsAndCrashes) {
  TempDir dir;
  std::string in = dir.path() + "/in";
  std::filesystem::create_directories(in);
  std::string file = in + "/events.ndjson";
  std::string config = WriteExampleConfig(
      dir.path(), {{kLastRule, std::string(kLastRule) + "\n\n[[sources]]\nname = \"app\"\ntype = \"file\"\npath = \"" +
                                   file + "\"\nformat = \"ndjson\"\npoll_ms = 20\n"}});
  ASSERT_FALSE(config.empty());
  Append(file, 0, 100);
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());
  auto total = [&](int want) {
    int64_t seen = 0;
    for (int i = 0; i < 400; ++i) {
      seen = 0;
      for (int u = 0; u < 5; ++u) {
        ProfileView p = ReadProfile(http, "f" + std::to_string(u));
        seen += p.category_prefs.count("1") ? p.category_prefs.at("1") : 0;
      }
      if (seen >= want) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return seen;
  };
  EXPECT_EQ(total(100), 100);
  Append(file, 100, 200);
  std::filesystem::rename(file, file + ".1");  // rotation: a new file takes the name
  Append(file, 200, 300);
  EXPECT_EQ(total(300), 300);

  // Crash, then rotate while the server is down, and append to both files' successors.
  Append(file, 300, 350);
  server.Kill(SIGKILL);
  Append(file, 350, 400);                      // unread tail of the file being read
  std::filesystem::rename(file, file + ".2");
  Append(file, 400, 450);
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient again(server.url());
  int64_t seen = 0;
  for (int i = 0; i < 400 && seen < 450; ++i) {
    seen = 0;
    for (int u = 0; u < 5; ++u) {
      ProfileView p = ReadProfile(again, "f" + std::to_string(u));
      seen += p.category_prefs.count("1") ? p.category_prefs.at("1") : 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  size_t items = 0;
  seen = 0;
  for (int u = 0; u < 5; ++u) {
    ProfileView p = ReadProfile(again, "f" + std::to_string(u));
    seen += p.category_prefs["1"];
    items += p.click_items.size();
  }
  EXPECT_EQ(seen, 450) << "each line exactly once";
  EXPECT_EQ(items, 450u);
  std::string metrics = again.Get("/metrics").body;
  EXPECT_NE(metrics.find("portrait_source_rotations_total{source=\"app\"} 1"), std::string::npos) << metrics;
}

TEST(FileSourceTest, TaobaoCsvGivesTheSameProfilesAsHttp) {
  TempDir dir;
  std::string csv = dir.path() + "/taobao.csv";
  // Rows in the public format: user_id,item_id,category_id,behavior,unix_seconds (made up).
  std::mt19937 rng(2017);
  const char* behaviors[] = {"pv", "pv", "pv", "pv", "cart", "fav", "buy"};
  std::vector<std::string> events;
  {
    std::ofstream out(csv);
    for (int i = 0; i < 3000; ++i) {
      int user = static_cast<int>(rng() % 40);
      int item = static_cast<int>(rng() % 500);
      int cat = static_cast<int>(rng() % 30);
      std::string b = behaviors[rng() % 7];
      int64_t sec = 1511539200 + static_cast<int64_t>(rng() % (9 * 86400));
      out << user << ',' << item << ',' << cat << ',' << b << ',' << sec << '\n';
      std::string type = b == "pv" ? "click" : b;
      events.push_back(R"({"uid":")" + std::to_string(user) + R"(","type":")" + type + R"(","ts":)" +
                       std::to_string(sec * 1000) + R"(,"props":{"item_id":)" + std::to_string(item) +
                       R"(,"category_id":)" + std::to_string(cat) + "}}");
    }
  }
  std::string source = std::string(kLastRule) +
                       "\n\n[[sources]]\nname = \"taobao\"\ntype = \"file\"\npath = \"" + csv +
                       "\"\nformat = \"csv\"\ncolumns = [\"uid\", \"props.item_id\", \"props.category_id\", \"type\", "
                       "\"ts\"]\nts_unit = \"s\"\ntype_map = { pv = \"click\", buy = \"buy\", cart = \"cart\", fav = \"fav\" }\n";
  TempDir a_dir, b_dir;
  std::string a_config = WriteExampleConfig(a_dir.path(), {{kLastRule, source}});
  std::string b_config = WriteExampleConfig(b_dir.path());
  ServerProcess from_file(a_config, a_dir.path() + "/data"), from_http(b_config, b_dir.path() + "/data");
  ASSERT_TRUE(from_file.Start()) << from_file.output();
  ASSERT_TRUE(from_http.Start()) << from_http.output();
  HttpClient a(from_file.url()), b(from_http.url());
  for (size_t i = 0; i < events.size(); i += 500) {
    std::string body;
    for (size_t k = i; k < std::min(events.size(), i + 500); ++k) body += events[k] + "\n";
    ASSERT_EQ(b.Post("/v1/events", body).status, 200);
  }
  std::string uids = R"({"uids":[)";
  for (int u = 0; u < 40; ++u) uids += (u ? ",\"" : "\"") + std::to_string(u) + "\"";
  uids += "]}";
  auto settle = [](HttpClient& c, const std::string& q) {
    std::string last, now;
    for (int i = 0; i < 200; ++i) {  // until two reads 100 ms apart agree
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      now = c.Post("/v1/profiles:batchGet", q).body;
      if (now == last && now.find("\"tags\":{}") == std::string::npos) break;
      last = now;
    }
    return now;
  };
  std::string via_http = settle(b, uids);
  std::string via_file = settle(a, uids);
  EXPECT_EQ(via_file, via_http);
  EXPECT_NE(via_file.find("\"clicks\""), std::string::npos);
}

}  // namespace
}  // namespace portrait::testing_util
