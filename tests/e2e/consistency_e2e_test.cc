// The online/offline consistency report through the real binary, on RocksDB and on Redis:
// events stream through `portrait serve` into profiles and the archive; then, on purpose,
// events real time never saw are written into the archive (an extra part file, as the
// archiver writes them) and one Action only real time saw is posted; `portrait batch` makes
// the day's snapshot, and `portrait consistency --json` (and GET /v1/consistency) must name
// exactly the users and tags of that gap, every other user equal. Which users carry the
// gap is drawn anew in every run, so a report that did not look could not pass.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>

#include "core/event.h"
#include "e2e/e2e_util.h"
#include "redis_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kHourMs = 3'600'000;

struct Outcomes {
  int64_t users = -1, equal = -1, missing = -1, extra = -1, different = -1, later = -1;
  std::map<std::string, std::string> worst;  // uid -> outcome
  std::string worst_realtime, worst_offline;  // of the first "different" example
};

// The report's numbers for `tag`, from its JSON.
Outcomes TagOutcomes(const std::string& json, const std::string& tag) {
  Outcomes o;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  // The report is the line that is a JSON object (a command's output has its summary too).
  std::string report;
  std::stringstream lines(json);
  for (std::string line; report.empty() && std::getline(lines, line);) {
    if (line.starts_with("{")) report = line;
  }
  if (parser.parse(report).get(doc)) return o;
  for (auto t : doc["tags"].get_array()) {
    if (std::string_view(t["tag"].get_string().value()) != tag) continue;
    o.users = t["users"].get_int64();
    o.equal = t["equal"].get_int64();
    o.missing = t["missing"].get_int64();
    o.extra = t["extra"].get_int64();
    o.different = t["different"].get_int64();
    o.later = t["later"].get_int64();
    for (auto e : t["worst"].get_array()) {
      std::string outcome(e["outcome"].get_string().value());
      o.worst[std::string(e["uid"].get_string().value())] = outcome;
      if (outcome == "different" && o.worst_realtime.empty()) {
        o.worst_realtime = simdjson::minify(e["realtime"]);
        o.worst_offline = simdjson::minify(e["offline"]);
      }
    }
  }
  return o;
}

std::string Event(const std::string& id, const std::string& uid, const char* type, int64_t ts, int item) {
  return R"({"id":")" + id + R"(","uid":")" + uid + R"(","type":")" + type + R"(","ts":)" + std::to_string(ts) +
         R"(,"props":{"item_id":)" + std::to_string(item) + R"(,"category_id":)" + std::to_string(item % 7) + "}}";
}

class ConsistencyE2eTest : public ::testing::Test {
 protected:
  // Runs the whole scenario on the store `store_lines` selects.
  void Run(const std::string& store_lines, bool shared_store) {
    std::vector<std::pair<std::string, std::string>> repl = {{"flush_seconds = 5", "flush_seconds = 1"}};
    if (!store_lines.empty()) repl.emplace_back("backend = \"rocksdb\"", store_lines);
    config_ = WriteExampleConfig(dir_.path(), repl);
    ASSERT_FALSE(config_.empty());
    data_ = dir_.path() + "/data";
    auto server = std::make_unique<ServerProcess>(config_, data_);
    ASSERT_TRUE(server->Start()) << server->output();
    HttpClient http(server->url());

    // Yesterday, from its first hour on: every event is within the day.
    const int64_t day = (NowMs() - 86'400'000) / 86'400'000 * 86'400'000;
    date_ = DateOf(day);
    std::mt19937 rng(std::random_device{}());
    std::vector<std::string> users;
    for (int i = 0; i < 6; ++i) users.push_back("c" + std::to_string(i) + "-" + std::to_string(rng() % 100000));
    std::shuffle(users.begin(), users.end(), rng);
    const std::string clicked_more = users[0];  // an archived click real time never saw: clicks differ
    const std::string bought_unseen = users[1];  // an archived buy real time never saw: last_purchase_at missing
    const std::string ghost = "ghost-" + std::to_string(rng() % 100000);  // only in the archive: clicks missing
    const std::string action_only = users[4];    // a posted Action the batch cannot see: last_purchase_at extra

    std::string body;
    int n = 0;
    for (size_t u = 0; u < users.size(); ++u) {
      for (int k = 0; k < 3; ++k) {
        body += Event("ev" + std::to_string(n++), users[u], "click", day + (1 + k) * kHourMs + static_cast<int64_t>(u), 100 + k) + "\n";
      }
      if (u == 2 || u == 3) body += Event("ev" + std::to_string(n++), users[u], "buy", day + 5 * kHourMs + static_cast<int64_t>(u), 101) + "\n";
    }
    ASSERT_EQ(http.Post("/v1/events", body).status, 200);
    const int64_t action_ts = day + 6 * kHourMs;
    HttpResult act = http.Post("/v1/actions", R"({"id":"only-rt","uid":")" + action_only +
                                                  R"(","tag":"last_purchase_at","op":"number.max","ts":)" +
                                                  std::to_string(action_ts) + R"(,"value":)" + std::to_string(action_ts) + "}");
    ASSERT_EQ(act.status, 200) << act.body;
    for (const auto& u : users) {
      ProfileView p = WaitForProfile(http, u, [](const ProfileView& v) { return v.click_items.size() == 3; });
      ASSERT_EQ(p.click_items.size(), 3u) << u;
    }
    ASSERT_TRUE(WaitUntil([&] { return static_cast<int>(ArchivedIds(data_ + "/archive").size()) == n; }))
        << "the archive should hold the " << n << " events";
    ASSERT_TRUE(WaitUntil([&] {
      return http.Get("/v1/profiles/" + action_only).body.find("last_purchase_at") != std::string::npos;
    }));
    if (!shared_store) server.reset();  // RocksDB is the server's alone: `portrait consistency` runs beside none

    // The gap, made on purpose: an extra part file of archived events, written as the
    // archiver writes them (gzipped NDJSON, by event-time hour and log partition).
    std::map<std::string, std::string> files;
    auto inject = [&](const std::string& line, const std::string& uid, int64_t ts) {
      char hour[64];
      std::snprintf(hour, sizeof hour, "/hour=%02d/part-%d-900000000.ndjson.gz", static_cast<int>((ts - day) / kHourMs),
                    PartitionFor(uid, 8).value);
      files[data_ + "/archive/date=" + date_ + hour] += line + "\n";
    };
    inject(Event("inj1", clicked_more, "click", day + 7 * kHourMs, 900), clicked_more, day + 7 * kHourMs);
    inject(Event("inj2", bought_unseen, "buy", day + 8 * kHourMs, 901), bought_unseen, day + 8 * kHourMs);
    inject(Event("inj3", ghost, "click", day + 9 * kHourMs, 902), ghost, day + 9 * kHourMs);
    for (const auto& [path, text] : files) {
      fs::create_directories(fs::path(path).parent_path());
      gzFile gz = gzopen(path.c_str(), "wb1");
      ASSERT_TRUE(gz);
      gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
      gzclose(gz);
    }

    std::string out;
    const std::string args = " --config " + config_ + " --data-dir " + data_ + " --date " + date_;
    ASSERT_EQ(RunCommand(Portrait("batch" + args), &out), 0) << out;
    ASSERT_EQ(RunCommand(Portrait("consistency" + args + " --json"), &out), 0) << out;

    auto check = [&](const std::string& report, const char* what) {
      Outcomes clicks = TagOutcomes(report, "clicks");
      EXPECT_EQ(clicks.users, 7) << what << ": " << report;
      EXPECT_EQ(clicks.equal, 5) << what << ": " << report;
      EXPECT_EQ(clicks.different, 1) << what;
      EXPECT_EQ(clicks.missing, 1) << what;
      EXPECT_EQ(clicks.extra, 0) << what;
      EXPECT_EQ(clicks.later, 0) << what;
      EXPECT_EQ(clicks.worst, (std::map<std::string, std::string>{{clicked_more, "different"}, {ghost, "missing"}}))
          << what << ": " << report;
      EXPECT_EQ(clicks.worst_realtime.find("900"), std::string::npos) << clicks.worst_realtime;
      EXPECT_NE(clicks.worst_offline.find(R"("item_id":900)"), std::string::npos) << clicks.worst_offline;
      Outcomes buys = TagOutcomes(report, "last_purchase_at");
      EXPECT_EQ(buys.users, 4) << what << ": " << report;
      EXPECT_EQ(buys.equal, 2) << what;
      EXPECT_EQ(buys.missing, 1) << what;
      EXPECT_EQ(buys.extra, 1) << what;
      EXPECT_EQ(buys.different, 0) << what;
      EXPECT_EQ(buys.worst, (std::map<std::string, std::string>{{bought_unseen, "missing"}, {action_only, "extra"}}))
          << what << ": " << report;
      EXPECT_EQ(TagOutcomes(report, "purchases_by_category_90d").users, -1) << "an offline-only tag is not compared";
    };
    check(out, "portrait consistency");

    // The same report from the server, and its metrics.
    if (!server) {
      server = std::make_unique<ServerProcess>(config_, data_);
      ASSERT_TRUE(server->Start()) << server->output();
      std::string refused;
      EXPECT_EQ(RunCommand(Portrait("consistency" + args), &refused), 1);
      EXPECT_NE(refused.find("GET /v1/consistency?date=" + date_), std::string::npos) << refused;
    }
    HttpClient http2(server->url());
    HttpResult routed = http2.Get("/v1/consistency?date=" + date_);
    ASSERT_EQ(routed.status, 200) << routed.body;
    check(routed.body, "GET /v1/consistency");
    std::string metrics = http2.Get("/metrics").body;
    EXPECT_NE(metrics.find(R"(portrait_consistency_users{tag="clicks",outcome="different"} 1)"), std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find(R"(portrait_consistency_users{tag="last_purchase_at",outcome="extra"} 1)"), std::string::npos);
    EXPECT_EQ(http2.Get("/v1/consistency?date=" + date_ + "&sample=2").status, 400);
    EXPECT_EQ(http2.Get("/v1/consistency?date=2001-01-01").status, 404);
  }

  TempDir dir_;
  std::string config_, data_, date_;
};

TEST_F(ConsistencyE2eTest, ReportFindsExactlyTheInjectedGapOnRocksDb) { Run("", false); }

TEST_F(ConsistencyE2eTest, ReportFindsExactlyTheInjectedGapOnRedis) {
  RedisServer redis;
  ASSERT_TRUE(redis.Start());
  Run("backend = \"redis\"\nurl = \"redis://" + redis.addr() + "\"", true);
}

}  // namespace
}  // namespace portrait::testing_util
