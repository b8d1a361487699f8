// Erasure by construction, through the real binary on RocksDB, Redis and a 3-master Redis
// Cluster. A user with clicks, a decision, history, a pre-login device profile and a row in
// an offline snapshot (loaded into the profile) is erased with DELETE /v1/profiles/{uid}.
// Afterwards nothing from before the erasure is served: not the profile, the device's
// profile, the decisions or the history. A lazy-load trigger brings no snapshot row back.
// The archive is rewritten without the user's and the device's events. A new batch of the
// same day leaves the user out. A replay of the whole log does not bring anything back
// either. Another user and their device are untouched throughout. Only what the user does
// after the erasure (APPSTART -> last_seen) shows up again.
#include <gtest/gtest.h>
#include <signal.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>

#include "e2e/e2e_util.h"
#include "redis_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kDay = 86'400'000;
constexpr int64_t kHour = 3'600'000;
constexpr int64_t kMin = 60'000;
const std::string kU = "erase-me-1", kUDev = "dev-erase-1";  // erased, with the device U logged in from
const std::string kK = "keep-me-1", kKDev = "dev-keep-1";    // kept

enum class Backend { kRocksDb, kRedis, kRedisCluster };

// One click as an NDJSON line; `uid` or `device` may be empty (before login: no uid).
std::string Click(const std::string& uid, const std::string& device, int64_t ts, int category, int item) {
  std::string s = "{";
  if (!uid.empty()) s += "\"uid\":\"" + uid + "\",";
  if (!device.empty()) s += "\"device_id\":\"" + device + "\",";
  return s + "\"type\":\"click\",\"ts\":" + std::to_string(ts) + ",\"props\":{\"item_id\":" + std::to_string(item) +
         ",\"category_id\":" + std::to_string(category) + "}}\n";
}

// A lazy-load trigger ([lazy_load] triggers); its only rule sets last_seen.
std::string AppStart(const std::string& uid, int64_t ts) {
  return "{\"uid\":\"" + uid + "\",\"type\":\"APPSTART\",\"ts\":" + std::to_string(ts) + "}\n";
}

struct Archived {
  std::string uid, device, type;
  int64_t ts = 0;
};

// Every line of every DIR/date=*/hour=*/part-*.ndjson.gz.
std::vector<Archived> ArchiveLines(const std::string& root) {
  std::vector<Archived> out;
  simdjson::dom::parser parser;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!name.starts_with("part-") || !name.ends_with(".ndjson.gz")) continue;
    std::stringstream text(Gunzip(it->path().string()));
    for (std::string line; std::getline(text, line);) {
      if (line.empty()) continue;
      simdjson::dom::object o;
      if (parser.parse(line).get_object().get(o)) {
        ADD_FAILURE() << it->path() << ": not a JSON object: " << line;
        continue;
      }
      Archived a;
      std::string_view s;
      if (!o["uid"].get(s)) a.uid = s;
      if (!o["device_id"].get(s)) a.device = s;
      if (!o["type"].get(s)) a.type = s;
      if (o["ts"].get(a.ts)) a.ts = -1;
      out.push_back(std::move(a));
    }
  }
  return out;
}

bool OfU(const Archived& a) { return a.uid == kU || a.device == kUDev; }
bool OfK(const Archived& a) { return a.uid == kK || a.device == kKDev; }
bool KClick(const Archived& a) { return OfK(a) && a.type == "click"; }

template <typename Pred>
long Count(const std::string& root, Pred pred) {
  auto lines = ArchiveLines(root);
  return static_cast<long>(std::count_if(lines.begin(), lines.end(), pred));
}

// GET /v1/users/{uid}/events: the status and (type, ts) of each event.
struct History {
  long status = 0;
  std::vector<std::pair<std::string, int64_t>> events;
};
History ReadHistory(HttpClient& http, const std::string& uid) {
  History h;
  HttpResult r = http.Get("/v1/users/" + uid + "/events?limit=1000");
  h.status = r.status;
  if (r.status != 200) return h;
  simdjson::dom::parser p;
  for (auto e : p.parse(r.body)["events"].get_array()) {
    h.events.emplace_back(std::string(e["type"].get_string().value()), e["ts"].get_int64().value());
  }
  return h;
}

// The number of decisions served for `uid` (a 404 counts as none; -1 for another status).
long Decisions(HttpClient& http, const std::string& uid) {
  HttpResult r = http.Get("/v1/decisions/" + uid);
  if (r.status == 404) return 0;
  if (r.status != 200) return -1;
  simdjson::dom::parser p;
  simdjson::dom::array a = p.parse(r.body)["decisions"];
  return static_cast<long>(a.size());
}

// The tag names of a 200 profile body.
std::set<std::string> TagNames(const std::string& body) {
  simdjson::dom::parser p;
  std::set<std::string> names;
  simdjson::dom::object tags = p.parse(body)["tags"];
  for (auto f : tags) names.emplace(f.key);
  return names;
}

double Metric(HttpClient& http, const std::string& name) {
  std::string text = http.Get("/metrics").body;
  size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? 0 : std::stod(text.substr(at + name.size() + 2));
}

std::vector<int64_t> Sorted(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

class ErasureE2eTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    std::vector<std::pair<std::string, std::string>> repl = {
        {"enabled = false", "enabled = true"},  // [history]: the only "enabled = false" of the file
        {"flush_seconds = 5", "flush_seconds = 1"},
        {"at = \"02:00\"", "# at = \"02:00\""},  // no scheduled batch: the test makes every snapshot
        {"[lazy_load]", "[privacy]\nerase_archive_within = \"0s\"\n\n[lazy_load]"}};
    if (GetParam() == Backend::kRedis) {
      redis_ = std::make_unique<RedisServer>();
      ASSERT_TRUE(redis_->Start()) << "cannot start redis-server";
      repl.push_back({"backend = \"rocksdb\"", "backend = \"redis\"\nurl = \"redis://" + redis_->addr() + "\""});
    } else if (GetParam() == Backend::kRedisCluster) {
      cluster_ = std::make_unique<RedisCluster>();
      ASSERT_TRUE(cluster_->Start()) << "cannot start the 3-master redis cluster";
      std::string nodes;
      for (const auto& a : cluster_->addrs()) nodes += (nodes.empty() ? "\"" : ", \"") + a + "\"";
      repl.push_back({"backend = \"rocksdb\"", "backend = \"redis\"\ncluster_nodes = [" + nodes + "]"});
    }
    config_ = WriteExampleConfig(dir_.path(), repl);
    ASSERT_FALSE(config_.empty()) << "a replacement did not match examples/portrait.toml";
    data_ = dir_.path() + "/data";
    server_ = std::make_unique<ServerProcess>(config_, data_);
    ASSERT_TRUE(server_->Start()) << server_->output();
    http_ = std::make_unique<HttpClient>(server_->url());
  }

  int Batch(const std::string& date, std::string* out) {
    return RunCommand(Portrait("batch --config " + config_ + " --data-dir " + data_ + " --date " + date), out);
  }

  // U only has what it did after the erasure: a profile with last_seen alone (from
  // APPSTART), or none. No clicks, category_prefs or offline tags.
  void ExpectOnlyNewDataOfU(const std::string& when) {
    HttpResult r = http_->Get("/v1/profiles/" + kU);
    ASSERT_TRUE(r.status == 200 || r.status == 404) << when << ": " << r.status << " " << r.body;
    if (r.status == 200) {
      for (const auto& name : TagNames(r.body)) EXPECT_EQ(name, "last_seen") << when << ": " << r.body;
    }
    History h = ReadHistory(*http_, kU);
    EXPECT_EQ(h.status, 200) << when;
    for (const auto& [type, ts] : h.events) {
      EXPECT_TRUE(type == "APPSTART" && ts >= erased_from_) << when << ": history of U holds " << type << " at " << ts;
    }
    EXPECT_EQ(Decisions(*http_, kU), 0) << when;
    EXPECT_EQ(ReadProfile(*http_, kUDev).status, 404) << when << ": the device's pre-login profile";
    History dh = ReadHistory(*http_, kUDev);
    EXPECT_EQ(dh.status, 200) << when;
    EXPECT_TRUE(dh.events.empty()) << when << ": " << dh.events.size() << " events of the device in history";
  }

  void ExpectKUntouched(const std::string& when) {
    ProfileView k = ReadProfile(*http_, kK), dev = ReadProfile(*http_, kKDev);
    EXPECT_EQ(k.status, 200) << when;
    EXPECT_EQ(Sorted(k.click_items), Sorted(k_before_.click_items)) << when;
    EXPECT_EQ(k.category_prefs, k_before_.category_prefs) << when;
    EXPECT_EQ(dev.status, 200) << when;
    EXPECT_EQ(dev.click_items, kdev_before_.click_items) << when;
    EXPECT_EQ(ReadHistory(*http_, kK).events.size(), k_events_) << when;
    EXPECT_EQ(Decisions(*http_, kK), k_decisions_) << when;
  }

  TempDir dir_;  // declared first: removed last
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<RedisCluster> cluster_;
  std::string config_, data_;
  std::unique_ptr<ServerProcess> server_;  // declared after the Redis servers: stopped before them
  std::unique_ptr<HttpClient> http_;
  ProfileView k_before_, kdev_before_;
  size_t k_events_ = 8;  // K's events in its history (its device's first one is the device's)
  long k_decisions_ = 0;
  int64_t erased_from_ = 0;  // taken just before the DELETE: the erasure's time is no earlier
};

TEST_P(ErasureE2eTest, ErasedUserComesBackFromNoCopy) {
  const int64_t d0 = NowMs() / kDay * kDay - 2 * kDay;  // 00:00 UTC two days ago
  const std::string date = DateOf(d0);
  const std::string archive = data_ + "/archive";
  std::string out;

  // Day D: 20 clicks of U in category 3 and 5 of K in 5 categories, archived; the batch of D.
  std::string body;
  for (int i = 0; i < 20; ++i) body += Click(kU, "", d0 + 12 * kHour + i * kMin, 3, 100 + i);
  for (int i = 0; i < 5; ++i) body += Click(kK, "", d0 + 13 * kHour + i * kMin, 40 + i, 600 + i);
  ASSERT_EQ(http_->Post("/v1/events", body).status, 200);
  ASSERT_TRUE(WaitUntil([&] { return Count(archive, OfU) >= 20 && Count(archive, OfK) >= 5; }))
      << Count(archive, OfU) << " and " << Count(archive, OfK) << " events archived";
  ASSERT_EQ(Batch(date, &out), 0) << out;
  const std::string v1 = R"("date":")" + date + R"(","version":1,"users":2,)";
  HttpResult snaps = http_->Get("/v1/snapshots");
  ASSERT_NE(snaps.body.find(v1), std::string::npos) << snaps.body;

  // Today: both devices before login, then U and K log in on them. U views category 7 and
  // K category 4 three times within 30 minutes (a coupon each); U starts the app (loads its
  // row of D). Each user's profile merges in the device it logged in from (identity): U's
  // 24 clicks (of D and today) with its device's 2 make 26, K's 8 with its device's 1 make 9.
  const int64_t t0 = NowMs() - 40 * kMin;
  body = Click("", kUDev, t0, 5, 8001) + Click("", kUDev, t0 + kMin, 6, 8002) + Click("", kKDev, t0, 5, 9001);
  ASSERT_EQ(http_->Post("/v1/events", body).status, 200);
  ASSERT_TRUE(WaitUntil([&] {
    return ReadProfile(*http_, kUDev).click_items.size() == 2 && ReadProfile(*http_, kKDev).click_items.size() == 1;
  }));
  body = Click(kU, kUDev, t0 + 5 * kMin, 9, 130);  // links the device to U
  for (int i = 0; i < 3; ++i) body += Click(kU, "", t0 + (10 + 5 * i) * kMin, 7, 140 + i);
  body += AppStart(kU, NowMs());
  for (int i = 0; i < 3; ++i) body += Click(kK, i == 0 ? kKDev : "", t0 + (5 + i) * kMin, 4, 610 + i);
  ASSERT_EQ(http_->Post("/v1/events", body).status, 200);
  const std::string v1_mark = R"("snapshot":{"date":")" + date + R"(","version":1})";
  ASSERT_TRUE(WaitUntil([&] {
    return http_->Get("/v1/profiles/" + kU).body.find(v1_mark) != std::string::npos &&
           ReadProfile(*http_, kU).click_items.size() == 26 && ReadProfile(*http_, kK).click_items.size() == 9 &&
           Decisions(*http_, kU) >= 1 && ReadHistory(*http_, kU).events.size() == 25;
  })) << http_->Get("/v1/profiles/" + kU).body;
  EXPECT_GE(Metric(*http_, "portrait_lazy_loads_total{result=\"loaded\"}"), 1) << "U's row of D was loaded";
  // Every event so far is archived (U: 25 with uid, 2 of its device alone; K: 8 and 1), so
  // the erasure has to rewrite part files, not just skip events still to be archived.
  ASSERT_TRUE(WaitUntil([&] { return Count(archive, OfU) >= 27 && Count(archive, OfK) >= 9; }))
      << Count(archive, OfU) << " and " << Count(archive, OfK) << " events archived";
  EXPECT_EQ(Count(archive, OfU), 27);
  EXPECT_EQ(Count(archive, OfK), 9);

  // Before: everything of U is served.
  ProfileView u = ReadProfile(*http_, kU);
  EXPECT_EQ(u.status, 200);
  EXPECT_EQ(u.click_items.size(), 26u);
  EXPECT_GE(Decisions(*http_, kU), 1);
  EXPECT_EQ(ReadHistory(*http_, kU).events.size(), 25u);
  EXPECT_EQ(ReadProfile(*http_, kUDev).status, 200);
  EXPECT_EQ(ReadHistory(*http_, kUDev).events.size(), 2u);
  k_before_ = ReadProfile(*http_, kK);
  kdev_before_ = ReadProfile(*http_, kKDev);
  ASSERT_EQ(k_before_.status, 200);
  ASSERT_EQ(kdev_before_.status, 200);
  ASSERT_EQ(k_before_.click_items.size(), 9u);
  k_decisions_ = Decisions(*http_, kK);  // written with the batch of K's clicks
  EXPECT_EQ(k_decisions_, 1);

  // The erasure.
  erased_from_ = NowMs();
  HttpResult del = http_->Request("DELETE", "/v1/profiles/" + kU);
  ASSERT_EQ(del.status, 200) << del.body;
  ASSERT_TRUE(WaitUntil([&] { return ReadProfile(*http_, kU).status == 404; }));
  EXPECT_TRUE(WaitUntil([&] { return ReadProfile(*http_, kUDev).status == 404; })) << "the device's profile";
  EXPECT_TRUE(WaitUntil([&] { return Decisions(*http_, kU) == 0; })) << Decisions(*http_, kU) << " decisions";
  EXPECT_TRUE(WaitUntil([&] { return ReadHistory(*http_, kU).events.empty(); }));
  ExpectOnlyNewDataOfU("after the erasure");
  ExpectKUntouched("after the erasure");

  // A lazy-load trigger: the snapshot of D was completed before the erasure, so U's row in
  // it is masked; the profile is the APPSTART's last_seen alone, with no snapshot.
  ASSERT_EQ(http_->Post("/v1/events", AppStart(kU, NowMs())).status, 200);
  u = WaitForProfile(*http_, kU, [](const ProfileView& v) { return !v.last_seen.empty(); });
  ASSERT_EQ(u.status, 200) << "APPSTART sets last_seen";
  EXPECT_TRUE(u.click_items.empty());
  HttpResult r = http_->Get("/v1/profiles/" + kU);
  EXPECT_NE(r.body.find(R"("snapshot":null)"), std::string::npos) << r.body;
  EXPECT_GE(Metric(*http_, "portrait_lazy_loads_total{result=\"erased\"}"), 1);
  ExpectOnlyNewDataOfU("after a lazy-load trigger");

  // The archive is rewritten at the archiver's next pass: no event of U or of its device
  // from before the erasure (the APPSTARTs sent since are new and stay); K's are all kept.
  auto left = [&] {
    long n = 0;
    for (const Archived& a : ArchiveLines(archive)) n += OfU(a) && !(a.type == "APPSTART" && a.ts >= erased_from_);
    return n;
  };
  EXPECT_TRUE(WaitUntil([&] { return left() == 0; })) << left() << " archived events of U or its device remain";
  EXPECT_EQ(Count(archive, KClick), 9);

  // The batch of D again (version 2): K's row only. U's new trigger finds no row in it.
  ASSERT_EQ(Batch(date, &out), 0) << out;
  const std::string v2 = R"("date":")" + date + R"(","version":2,"users":1,)";
  snaps = http_->Get("/v1/snapshots");
  EXPECT_NE(snaps.body.find(v2), std::string::npos) << snaps.body;
  const std::string seen = u.last_seen;
  const std::string v2_mark = R"("snapshot":{"date":")" + date + R"(","version":2})";
  ASSERT_EQ(http_->Post("/v1/events", AppStart(kU, NowMs()) + AppStart(kK, NowMs())).status, 200);
  u = WaitForProfile(*http_, kU, [&](const ProfileView& v) { return v.last_seen != seen; });
  EXPECT_NE(u.last_seen, seen);
  r = http_->Get("/v1/profiles/" + kU);
  EXPECT_NE(r.body.find(v2_mark), std::string::npos) << "version 2 was looked up, without a row of U: " << r.body;
  EXPECT_GE(Metric(*http_, "portrait_lazy_loads_total{result=\"absent\"}"), 1);
  ExpectOnlyNewDataOfU("after a new batch of the same day");
  EXPECT_TRUE(WaitUntil([&] { return http_->Get("/v1/profiles/" + kK).body.find(v2_mark) != std::string::npos; }))
      << "K's row of D is in version 2: " << http_->Get("/v1/profiles/" + kK).body;
  k_events_ = 9;  // and its APPSTART
  ExpectKUntouched("after K loaded version 2");

  // A replay of the whole log with the server stopped: the erasure is applied again at its
  // place in the log, so nothing of U from before it comes back.
  server_->Kill(SIGTERM);
  ASSERT_EQ(RunCommand(Portrait("replay --config " + config_ + " --data-dir " + data_ + " --from-offset 0"), &out), 0)
      << out;
  ASSERT_TRUE(server_->Start()) << server_->output();
  http_ = std::make_unique<HttpClient>(server_->url());
  ExpectOnlyNewDataOfU("after a replay");
  ExpectKUntouched("after a replay");
  EXPECT_EQ(left(), 0) << "archived events of U or its device after a restart";
  EXPECT_EQ(Count(archive, KClick), 9);
}

INSTANTIATE_TEST_SUITE_P(Backends, ErasureE2eTest,
                         ::testing::Values(Backend::kRocksDb, Backend::kRedis, Backend::kRedisCluster),
                         [](const ::testing::TestParamInfo<Backend>& info) -> std::string {
                           switch (info.param) {
                             case Backend::kRocksDb: return "RocksDb";
                             case Backend::kRedis: return "Redis";
                             default: return "RedisCluster";
                           }
                         });

}  // namespace
}  // namespace portrait::testing_util
