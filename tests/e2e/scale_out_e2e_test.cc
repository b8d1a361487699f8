// Scale-out parity: three `portrait serve` processes on the Kafka log (librdkafka's mock
// cluster, 3 brokers) and a 3-master Redis Cluster, sharing one directory for the archive,
// the erasure list and the snapshots, against one embedded process (its own log and
// RocksDB) given the same events once each.
//
// The stream is shaped like the public Taobao sample (clicks over categories, some buys) with
// what a real one has besides: devices browsing before they log in, late events, repeats
// inside the stream, and a body sent again to another process (a client's retry after a
// lost answer). Bodies go round-robin to the processes; one is killed with SIGKILL
// mid-stream and restarted later. Then, read from any process: profiles, new users per
// channel and decisions equal the embedded process's; the live decision stream of one
// process carries every process's decisions once; the shared archive holds each event
// once; `portrait batch` run as two halves on two processes gives the snapshot one
// embedded run gives (an APPSTART on any process loads it); calibration reports the same.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <regex>
#include <sstream>

#include "e2e/e2e_util.h"
#include "e2e/sse_client.h"
#include "kafka_util.h"
#include "redis_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

constexpr int kUsers = 150;
constexpr int kPerBody = 40;
constexpr int64_t kMinute = 60'000;
constexpr int64_t kDay = 86'400'000;

int64_t Yesterday() { return (NowMs() / kDay - 1) * kDay; }

struct Ev {
  std::string id, uid, device, type, channel;
  int64_t ts = 0;
  int category = -1, item = -1;
};

std::string ToJson(const Ev& e) {
  std::string s = R"({"id":")" + e.id + R"(","type":")" + e.type + R"(","ts":)" + std::to_string(e.ts) +
                  R"(,"product":"shop")";
  if (!e.uid.empty()) s += R"(,"uid":")" + e.uid + "\"";
  if (!e.device.empty()) s += R"(,"device_id":")" + e.device + "\"";
  if (!e.channel.empty()) s += R"(,"channel":")" + e.channel + "\"";
  if (e.item >= 0) {
    s += R"(,"props":{"item_id":)" + std::to_string(e.item) + R"(,"category_id":)" + std::to_string(e.category) + "}";
  }
  return s + "}\n";
}

// Users over one day: most browse on a device, log in with it, click runs of one category
// (three within 30 minutes earn the coupon decision) and sometimes buy; every 7th never logs
// in. 10 % of the events arrive late (at the end of the stream), 5 % are sent twice.
std::vector<Ev> Generate(int64_t day) {
  std::mt19937_64 rng(2017);
  const std::vector<std::string> channels = {"appstore", "ads", "seo", "mail", ""};
  std::vector<Ev> events;
  int n = 0;
  auto id = [&] { return "s" + std::to_string(n++); };
  for (int u = 0; u < kUsers; ++u) {
    const std::string uid = "su" + std::to_string(u), dev = "sd" + std::to_string(u);
    const std::string channel = channels[u % channels.size()];
    int64_t t = day + static_cast<int64_t>(rng() % (20 * 60)) * kMinute;
    events.push_back({id(), "", dev, "init", channel, t});
    events.push_back({id(), "", dev, "click", channel, t + kMinute, static_cast<int>(rng() % 6), static_cast<int>(rng() % 400)});
    if (u % 7 == 0) continue;  // a device that never logs in
    events.push_back({id(), uid, dev, "APPSTART", channel, t + 2 * kMinute});
    for (int k = 0; k < 12; ++k) {
      events.push_back({id(), uid, "", "click", channel, t + (3 + 2 * k) * kMinute, (u + k / 4) % 6,
                        static_cast<int>(rng() % 400)});
    }
    if (u % 4 == 0) events.push_back({id(), uid, "", "buy", channel, t + 30 * kMinute, u % 6, static_cast<int>(rng() % 400)});
  }
  std::shuffle(events.begin(), events.end(), rng);
  std::stable_sort(events.begin(), events.end(), [](const Ev& a, const Ev& b) { return a.ts < b.ts; });
  std::vector<Ev> sent, late;
  for (Ev& e : events) (rng() % 10 == 0 ? late : sent).push_back(std::move(e));
  sent.insert(sent.end(), late.begin(), late.end());
  std::vector<Ev> out;
  for (size_t i = 0; i < sent.size(); ++i) {
    out.push_back(sent[i]);
    if (rng() % 20 == 0 && i + 5 < sent.size()) out.insert(out.end(), sent[i]);  // a repeat, nearby
  }
  return out;
}

std::vector<std::string> Bodies(const std::vector<Ev>& events) {
  std::vector<std::string> bodies;
  for (size_t i = 0; i < events.size(); i += kPerBody) {
    std::string body;
    for (size_t k = i; k < std::min(events.size(), i + kPerBody); ++k) body += ToJson(events[k]);
    bodies.push_back(std::move(body));
  }
  return bodies;
}

std::string GroupConfig(const std::string& dir, const std::string& brokers, const std::vector<std::string>& redis,
                        const std::string& shared) {
  std::string nodes;
  for (const auto& a : redis) nodes += (nodes.empty() ? "\"" : ", \"") + a + "\"";
  return WriteExampleConfig(
      dir, {{"backend = \"embedded\"", "backend = \"kafka\"\nkafka = { brokers = \"" + brokers +
                                           "\", topic_prefix = \"g.\", session_timeout_ms = 4000 }"},
            {"[store]\n", "[privacy]\nerasure_list = \"" + shared + "/erasures.list\"\n\n[store]\n"},
            {"backend = \"rocksdb\"", "backend = \"redis\"\ncluster_nodes = [" + nodes + "]"},
            {"enabled = true\nflush_seconds = 5", "enabled = true\ndir = \"" + shared + "/archive\"\nflush_seconds = 1"},
            {"# snapshot_dir = \"./data/snapshots\"", "snapshot_dir = \"" + shared + "/snapshots\""}});
}

std::string AllProfiles(HttpClient& http) {
  std::string ids;
  for (int u = 0; u < kUsers; ++u) {
    ids += std::string(u ? "," : "") + "\"su" + std::to_string(u) + "\",\"sd" + std::to_string(u) + "\"";
  }
  HttpResult r = http.Post("/v1/profiles:batchGet", "{\"uids\":[" + ids + "]}");
  EXPECT_EQ(r.status, 200) << r.body;
  return r.body;
}

// Each user's decisions without the wall-clock time they were made at.
std::string AllDecisions(HttpClient& http) {
  static const std::regex decided(R"("decided_at":[0-9]+,)");
  std::string out;
  for (int u = 0; u < kUsers; ++u) {
    HttpResult r = http.Get("/v1/decisions/su" + std::to_string(u));
    EXPECT_EQ(r.status, 200) << r.body;
    out += std::regex_replace(r.body, decided, "") + "\n";
  }
  return out;
}

size_t CountOf(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The command's output; its log lines (stderr) too unless `stdout_only`.
std::string RunPortrait(const std::string& args, int* code, bool stdout_only = false) {
  return Shell(stdout_only ? "{ " + Portrait(args) + " 2>/dev/null; }" : Portrait(args), code);
}

// The calibration report from its per-product figures on (what the time of the run and the
// files read do not change).
std::string Figures(const std::string& report) {
  size_t at = report.find("\"products\"");
  return at == std::string::npos ? report : report.substr(at);
}

TEST(ScaleOutE2eTest, ThreeProcessesOnKafkaAndRedisClusterGiveWhatOneEmbeddedProcessGives) {
  KafkaMock kafka;
  ASSERT_TRUE(kafka.Start(3, {"g.events:8", "g.failed:1", "g.decisions:8", "g.segments:8"}));
  RedisCluster cluster;
  ASSERT_TRUE(cluster.Start()) << "cannot start the 3-master redis cluster";
  TempDir shared, dir_a, dir_b, dir_c, dir_one;
  std::vector<std::string> configs;
  for (TempDir* d : {&dir_a, &dir_b, &dir_c}) {
    configs.push_back(GroupConfig(d->path(), kafka.bootstrap(), cluster.addrs(), shared.path()));
    ASSERT_FALSE(configs.back().empty());
  }
  std::vector<std::unique_ptr<ServerProcess>> group;
  group.push_back(std::make_unique<ServerProcess>(configs[0], dir_a.path() + "/data"));
  group.push_back(std::make_unique<ServerProcess>(configs[1], dir_b.path() + "/data"));
  group.push_back(std::make_unique<ServerProcess>(configs[2], dir_c.path() + "/data"));
  for (auto& p : group) ASSERT_TRUE(p->Start()) << p->output();
  std::string config_one =
      WriteExampleConfig(dir_one.path(), {{"enabled = true\nflush_seconds = 5", "enabled = true\nflush_seconds = 1"}});
  ServerProcess one(config_one, dir_one.path() + "/data");
  ASSERT_TRUE(one.Start()) << one.output();
  HttpClient http_one(one.url());

  // C's live stream, subscribed before anything is posted, must carry every decision.
  SseClient stream;
  ASSERT_TRUE(stream.Connect(group[2]->port()));

  const int64_t day = Yesterday();
  const std::vector<Ev> events = Generate(day);
  const std::vector<std::string> bodies = Bodies(events);
  const size_t kill_at = bodies.size() * 2 / 5, restart_at = bodies.size() * 7 / 10;
  std::vector<bool> up = {true, true, true};
  size_t turn = 0;
  auto next_up = [&] {
    do turn = (turn + 1) % 3;
    while (!up[turn]);
    return turn;
  };
  for (size_t b = 0; b < bodies.size(); ++b) {
    if (b == kill_at) {
      group[1]->Kill(SIGKILL);  // mid-stream: its processor still works through its share
      up[1] = false;
    }
    if (b == restart_at) {
      ASSERT_TRUE(group[1]->Start()) << group[1]->output();
      up[1] = true;
    }
    size_t to = next_up();
    HttpClient http(group[to]->url());
    HttpResult r = http.Post("/v1/events", bodies[b]);
    ASSERT_EQ(r.status, 200) << r.body;
    if (b % 9 == 4) {  // the answer was lost: the client sends the body again, elsewhere
      HttpClient again(group[next_up()]->url());
      ASSERT_EQ(again.Post("/v1/events", bodies[b]).status, 200);
    }
    ASSERT_EQ(http_one.Post("/v1/events", bodies[b]).status, 200);
  }

  // Profiles, read from every process, become the embedded process's.
  std::string want;
  ASSERT_TRUE(WaitUntil([&] {
    std::string now = AllProfiles(http_one);
    bool same = now == want;
    want = now;
    return same;
  }, 60));
  for (auto& p : group) {
    HttpClient http(p->url());
    std::string got;
    WaitUntil([&] { return (got = AllProfiles(http)) == want; }, 120);
    EXPECT_EQ(got, want) << "profiles from " << p->url();
  }
  HttpClient http_a(group[0]->url()), http_c(group[2]->url());

  // New users per channel.
  const std::string channels = "/v1/channels/new-users?product=shop&from=" + DateOf(day) + "&to=" + DateOf(day + kDay);
  EXPECT_EQ(http_c.Get(channels).body, http_one.Get(channels).body);

  // Decisions: the same per user, and C's stream carried each of them once.
  std::string decisions = AllDecisions(http_one);
  size_t decided = CountOf(decisions, "\"rule\":\"category_coupon\"");
  EXPECT_GT(decided, size_t{kUsers});
  EXPECT_EQ(AllDecisions(http_a), decisions);
  WaitUntil([&] { return stream.events().size() >= decided; }, 30);
  std::map<std::string, int> streamed;
  for (const auto& [data, at] : stream.events()) {
    size_t from = data.find("\"id\":\"") + 6;
    ++streamed[data.substr(from, data.find('"', from) - from)];
  }
  EXPECT_EQ(streamed.size(), decided) << "every process's decisions on one process's stream";
  for (const auto& [id, n] : streamed) EXPECT_EQ(n, 1) << id;

  // The shared archive holds every event once, as the embedded one does.
  std::map<std::string, int> want_ids, got_ids;
  for (const Ev& e : events) want_ids[e.id] = 1;
  WaitUntil([&] { return ArchivedIds(dir_one.path() + "/data/archive") == want_ids; }, 60);
  EXPECT_EQ(ArchivedIds(dir_one.path() + "/data/archive"), want_ids);
  WaitUntil([&] { return (got_ids = ArchivedIds(shared.path() + "/archive")) == want_ids; }, 60);
  EXPECT_EQ(got_ids, want_ids);

  // Calibration reads the shared archive: the same figures.
  HttpResult cal_one = http_one.Post("/v1/channels:calibrate?date=" + DateOf(day), "");
  HttpResult cal_group = http_c.Post("/v1/channels:calibrate?date=" + DateOf(day), "");
  ASSERT_EQ(cal_one.status, 200) << cal_one.body;
  ASSERT_EQ(cal_group.status, 200) << cal_group.body;
  EXPECT_EQ(Figures(cal_group.body), Figures(cal_one.body));
  // ... and split: each half scanned by another process's config, the last one calibrates.
  int cal_code = 0;
  std::string scanned = RunPortrait("calibrate --config " + configs[0] + " --date " + DateOf(day) + " --partitions 0-3 --json", &cal_code);
  ASSERT_EQ(cal_code, 0) << scanned;
  EXPECT_NE(scanned.find("\"waiting_for\":[4,5,6,7]"), std::string::npos) << scanned;
  std::string calibrated = RunPortrait("calibrate --config " + configs[1] + " --date " + DateOf(day) + " --partitions 4-7 --json", &cal_code, /*stdout_only=*/true);
  ASSERT_EQ(cal_code, 0) << calibrated;
  // The report's line.
  std::string line;
  for (std::stringstream lines(calibrated); std::getline(lines, line) && line.find("\"products\"") == std::string::npos;) {
  }
  EXPECT_EQ(Figures(line), Figures(cal_one.body));
  // The batch: two halves on two processes' configs make the one snapshot.
  int code = 0;
  std::string half = RunPortrait("batch --config " + configs[0] + " --date " + DateOf(day) + " --partitions 0-3", &code);
  ASSERT_EQ(code, 0) << half;
  EXPECT_NE(half.find("\"waiting_for\":[4,5,6,7]"), std::string::npos) << half;
  std::string done = RunPortrait("batch --config " + configs[2] + " --date " + DateOf(day) + " --partitions 4-7", &code);
  ASSERT_EQ(code, 0) << done;
  EXPECT_NE(done.find("\"version\":1"), std::string::npos) << done;
  std::string embedded = RunPortrait("batch --config " + config_one + " --data-dir " + dir_one.path() + "/data --date " + DateOf(day), &code);
  ASSERT_EQ(code, 0) << embedded;
  auto users = [](const std::string& out) {
    size_t at = out.find("\"users\":");
    return at == std::string::npos ? -1 : std::atoll(out.c_str() + at + 8);
  };
  EXPECT_EQ(users(done), users(embedded));
  EXPECT_GT(users(done), 0);

  // Today's first APPSTART of each user, on whichever process: the offline tags come in.
  std::string appstarts;
  const int64_t today = day + kDay + 9 * 3'600'000;
  for (int u = 0; u < kUsers; ++u) {
    appstarts += R"({"id":"t)" + std::to_string(u) + R"(","type":"APPSTART","uid":"su)" + std::to_string(u) +
                 R"(","ts":)" + std::to_string(today + u) + R"(,"product":"shop"})" + "\n";
  }
  ASSERT_EQ(http_one.Post("/v1/events", appstarts).status, 200);
  ASSERT_EQ(HttpClient(group[1]->url()).Post("/v1/events", appstarts).status, 200);
  std::string loaded;
  ASSERT_TRUE(WaitUntil([&] {
    std::string now = AllProfiles(http_one);
    bool same = now == loaded && now.find("purchases_by_category_90d") != std::string::npos;
    loaded = now;
    return same;
  }, 60));
  std::string got;
  WaitUntil([&] { return (got = AllProfiles(http_a)) == loaded; }, 60);
  EXPECT_EQ(got, loaded) << "lazy loading on the group from the snapshot its processes made";
}

}  // namespace
}  // namespace portrait::testing_util
