// New users per channel through the whole server: events over HTTP, figures from
// GET /v1/channels/new-users, calibration by POST /v1/channels:calibrate and by
// `portrait calibrate`, on RocksDB and on Redis.
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <random>
#include <set>

#include "e2e/e2e_util.h"
#include "redis_util.h"

namespace portrait::testing_util {
namespace {

constexpr int64_t kHour = 3'600'000;
constexpr int64_t kDay = 86'400'000;

// Yesterday (UTC): inside the archive's retention, and a whole day.
int64_t Yesterday() { return (NowMs() / kDay - 1) * kDay; }

struct Ev {
  std::string uid, device, product, channel;
  int64_t ts = 0;
  int64_t arrival = 0;  // sort key of the order sent
  std::string id;
};

std::string ToJson(const Ev& e) {
  std::string s = R"({"id":")" + e.id + R"(","type":"APPSTART","ts":)" + std::to_string(e.ts);
  if (!e.uid.empty()) s += R"(,"uid":")" + e.uid + "\"";
  if (!e.device.empty()) s += R"(,"device_id":")" + e.device + "\"";
  s += R"(,"product":")" + e.product + "\"";
  if (!e.channel.empty()) s += R"(,"channel":")" + e.channel + "\"";
  return s + "}";
}

using Buckets = std::map<std::pair<int64_t, std::string>, int64_t>;  // (hour, channel) -> new users

// The truth, from the events as generated: a user is a uid (with the device-only events of
// the device it logs in with) or a device that never logs in, counted at its earliest
// (ts, channel) — the channel "(none)" when the event names none.
std::map<std::string, Buckets> Truth(const std::vector<Ev>& events) {
  std::map<std::string, std::string> owner;  // product \x1f device -> uid
  for (const auto& e : events) {
    if (!e.uid.empty() && !e.device.empty()) owner.emplace(e.product + "\x1f" + e.device, e.uid);
  }
  std::map<std::string, std::pair<int64_t, std::string>> first;  // product \x1f user -> (ts, channel)
  for (const auto& e : events) {
    std::string user;
    if (!e.uid.empty()) user = "u" + e.uid;
    else if (auto it = owner.find(e.product + "\x1f" + e.device); it != owner.end()) user = "u" + it->second;
    else user = "d" + e.device;
    std::pair<int64_t, std::string> f{e.ts, e.channel.empty() ? "(none)" : e.channel};
    auto [it, fresh] = first.emplace(e.product + "\x1f" + user, f);
    if (!fresh && f < it->second) it->second = f;
  }
  std::map<std::string, Buckets> out;
  for (const auto& [key, f] : first) {
    std::string product = key.substr(0, key.find('\x1f'));
    ++out[product][{f.first - f.first % kHour, f.second}];
  }
  return out;
}

// Users of three kinds over one day: uid only, device first then login (later also the
// device alone), device that never logs in. Each user's first channel is random; 10 % of
// the events arrive 30 minutes to 3 hours late, across hour boundaries; 1 % are sent twice.
std::vector<Ev> Generate(int users, int64_t day, uint32_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const std::vector<std::string> channels = {"appstore", "ads", "seo", "mail", "partner-a", ""};
  const std::vector<std::string> products = {"shop", "news"};
  std::vector<Ev> events;
  for (int u = 0; u < users; ++u) {
    const std::string uid = "gu" + std::to_string(u), dev = "gd" + std::to_string(u);
    const std::string& product = products[u % 2];
    const int kind = static_cast<int>(uniform(0, 99));  // < 60 uid only, < 85 device then login, else device only
    const int n = static_cast<int>(uniform(2, 20));
    int64_t ts = day + uniform(0, kDay - 1);
    const int login_at = static_cast<int>(uniform(1, n));
    for (int i = 0; i < n && ts < day + kDay; ++i) {
      Ev e;
      e.product = product;
      e.ts = ts;
      e.channel = channels[static_cast<size_t>(uniform(0, static_cast<int64_t>(channels.size()) - 1))];
      if (kind < 60) {
        e.uid = uid;
      } else if (kind < 85) {
        if (i < login_at || uniform(0, 9) == 0) e.device = dev;
        if (i >= login_at) e.uid = uid;
        if (i == login_at) e.device = dev;
      } else {
        e.device = dev;
      }
      events.push_back(std::move(e));
      ts += uniform(1, 40 * 60'000);
    }
  }
  for (size_t i = 0; i < events.size(); ++i) {
    events[i].id = "g" + std::to_string(seed) + "-" + std::to_string(i);
    events[i].arrival = events[i].ts + (uniform(0, 9) == 0 ? uniform(30 * 60'000, 3 * kHour) : 0);
  }
  const size_t n = events.size();
  for (size_t i = 0; i < n; ++i) {
    if (uniform(0, 99) != 0) continue;
    Ev dup = events[i];
    dup.arrival += uniform(0, 2 * kHour);
    events.push_back(std::move(dup));
  }
  std::sort(events.begin(), events.end(), [](const Ev& a, const Ev& b) { return a.arrival < b.arrival; });
  return events;
}

int64_t Metric(HttpClient& http, const std::string& name) {
  HttpResult r = http.Get("/metrics");
  size_t at = r.body.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::atoll(r.body.c_str() + at + name.size() + 2);
}

// Sends the events as NDJSON bodies; returns how many were logged (a repeated id is acknowledged, not logged again).
int64_t Send(HttpClient& http, const std::vector<Ev>& events) {
  int64_t accepted = 0;
  simdjson::dom::parser parser;
  for (size_t at = 0; at < events.size(); at += 5000) {
    std::string body;
    for (size_t i = at; i < std::min(events.size(), at + 5000); ++i) body += ToJson(events[i]) + "\n";
    HttpResult r = http.Post("/v1/events", body);
    // 503 is backpressure (the processor is behind; nothing of the body was logged): a
    // client sends the same body again later, as this one does for up to a minute.
    for (int tries = 0; r.status == 503 && tries < 600; ++tries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      r = http.Post("/v1/events", body);
    }
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return accepted;
    simdjson::dom::element doc = parser.parse(r.body);
    int64_t dups = 0;
    if (doc["duplicates"].get(dups)) dups = 0;
    accepted += doc["accepted"].get_int64().value() - dups;
  }
  return accepted;
}

// Until the processor and the archive have every accepted event.
void WaitForPipeline(HttpClient& http, int64_t accepted) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Metric(http, "portrait_processor_events_total") >= accepted &&
        Metric(http, "portrait_archive_events_total") >= accepted) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ADD_FAILURE() << "the processor or the archive did not catch up with " << accepted << " events: processed "
                << Metric(http, "portrait_processor_events_total") << ", archived "
                << Metric(http, "portrait_archive_events_total");
}

struct Served {
  Buckets served, realtime;
  std::set<int64_t> calibrated_hours;
  int64_t total = 0;
};

Served Figures(HttpClient& http, const std::string& product, int64_t day) {
  Served s;
  HttpResult r = http.Get("/v1/channels/new-users?product=" + product + "&from=" + DateOf(day) + "&to=" + DateOf(day + kDay));
  EXPECT_EQ(r.status, 200) << r.body;
  if (r.status != 200) return s;
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(r.body);
  s.total = doc["total"].get_int64();
  for (auto ch : doc["channels"].get_array()) {
    std::string channel(ch["channel"].get_string().value());
    int64_t running = 0;
    for (auto b : ch["buckets"].get_array()) {
      std::string start(b["start"].get_string().value());
      int64_t hour = day + std::stoll(start.substr(11, 2)) * kHour;
      int64_t n = b["new_users"].get_int64();
      running += n;
      EXPECT_EQ(b["running_total"].get_int64().value(), running);
      if (n != 0) s.served[{hour, channel}] = n;
      if (int64_t rt = b["realtime"].get_int64(); rt != 0) s.realtime[{hour, channel}] = rt;
      if (b["calibrated"].get_bool()) s.calibrated_hours.insert(hour);
    }
  }
  return s;
}

int64_t AbsError(const Buckets& got, const Buckets& want) {
  std::map<std::pair<int64_t, std::string>, int64_t> diff = want;
  for (auto& [k, v] : diff) v = -v;
  for (const auto& [k, v] : got) diff[k] += v;
  int64_t e = 0;
  for (const auto& [k, v] : diff) e += std::abs(v);
  return e;
}

int64_t Sum(const Buckets& b) {
  int64_t n = 0;
  for (const auto& [k, v] : b) n += v;
  return n;
}

// Real time within 0.5 % of the truth; after calibration, equal to it in every bucket.
void RunGenerator(const std::vector<std::pair<std::string, std::string>>& store_config, int users) {
  TempDir dir;
  auto replacements = store_config;
  replacements.push_back({"flush_seconds = 5", "flush_seconds = 1"});
  std::string config = WriteExampleConfig(dir.path(), replacements);
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());

  const int64_t day = Yesterday();
  std::vector<Ev> events = Generate(users, day, 7);
  auto truth = Truth(events);
  auto t0 = std::chrono::steady_clock::now();
  int64_t accepted = Send(http, events);
  ASSERT_GT(accepted, 0);
  auto t1 = std::chrono::steady_clock::now();
  WaitForPipeline(http, accepted);
  std::printf("sent %zu events in %.1f s, processed and archived %.1f s later\n", events.size(),
              std::chrono::duration<double>(t1 - t0).count(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());

  for (const auto& [product, want] : truth) {
    Served rt = Figures(http, product, day);
    int64_t err = AbsError(rt.served, want);
    std::printf("%s: %lld events sent, %lld new users, real-time error %lld users (%.4f %%)\n", product.c_str(),
                static_cast<long long>(events.size()), static_cast<long long>(Sum(want)), static_cast<long long>(err),
                100.0 * double(err) / double(Sum(want)));
    EXPECT_LE(double(err), 0.005 * double(Sum(want))) << product;
    EXPECT_TRUE(rt.calibrated_hours.empty());
  }

  HttpResult cal = http.Post("/v1/channels:calibrate?date=" + DateOf(day), "");
  ASSERT_EQ(cal.status, 200) << cal.body;
  simdjson::dom::parser parser;
  simdjson::dom::element report = parser.parse(cal.body);
  EXPECT_EQ(report["date"].get_string().value(), DateOf(day));
  EXPECT_EQ(report["events"].get_int64().value(), accepted);
  std::printf("calibrated %lld events in %.2f s\n", static_cast<long long>(accepted), report["seconds"].get_double().value());
  for (const auto& [product, want] : truth) {
    Served after = Figures(http, product, day);
    EXPECT_EQ(after.served, want) << product;
    EXPECT_EQ(after.total, Sum(want));
    EXPECT_EQ(after.calibrated_hours.size(), 24u) << product;
  }
  EXPECT_NE(http.Get("/metrics").body.find("portrait_channel_calibration_error_users{product=\"shop\"}"), std::string::npos);
}

TEST(ChannelsE2eTest, GeneratedMillionsOfEventsWithLateAndDuplicatesOnRocksDb) {
  RunGenerator({}, 200'000);
}

TEST(ChannelsE2eTest, GeneratedEventsWithLateAndDuplicatesOnRedis) {
  RedisServer redis;
  ASSERT_TRUE(redis.Start());
  RunGenerator({{"backend = \"rocksdb\"", "backend = \"redis\"\nurl = \"redis://" + redis.addr() + "\""}}, 30'000);
}

// Days the real time did not track (here: [channels] off while the events came) are
// corrected by calibration, and the registry it repairs keeps the next figures right.
TEST(ChannelsE2eTest, CalibrationCorrectsWhatRealTimeMissed) {
  TempDir dir;
  const int64_t day = Yesterday();
  std::vector<Ev> events = Generate(4000, day, 11);
  auto truth = Truth(events);
  const size_t half = events.size() / 2;
  int64_t accepted = 0;
  {
    std::string config = WriteExampleConfig(dir.path(), {{"flush_seconds = 5", "flush_seconds = 1"},
                                                         {"enabled = true\ndefault_product", "enabled = false\ndefault_product"}});
    ASSERT_FALSE(config.empty());
    ServerProcess server(config, dir.path() + "/data");
    ASSERT_TRUE(server.Start()) << server.output();
    HttpClient http(server.url());
    accepted += Send(http, {events.begin(), events.begin() + static_cast<long>(half)});
    WaitForPipeline(http, accepted);
    server.Kill(SIGTERM);
  }
  std::string config = WriteExampleConfig(dir.path(), {{"flush_seconds = 5", "flush_seconds = 1"}});
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());
  int64_t second = Send(http, {events.begin() + static_cast<long>(half), events.end()});
  WaitForPipeline(http, second);
  int64_t missed = 0;
  for (const auto& [product, want] : truth) missed += AbsError(Figures(http, product, day).served, want);
  EXPECT_GT(missed, 0) << "real time was expected to be off";

  // The CLI refuses while the server holds the embedded store, and names the way that works.
  std::string out;
  EXPECT_NE(RunCommand(Portrait("calibrate --config " + config + " --data-dir " + dir.path() + "/data --date " + DateOf(day)), &out), 0);
  EXPECT_NE(out.find("POST /v1/channels:calibrate"), std::string::npos) << out;
  server.Kill(SIGTERM);
  ASSERT_EQ(RunCommand(Portrait("calibrate --config " + config + " --data-dir " + dir.path() + "/data --date " + DateOf(day)), &out), 0) << out;
  EXPECT_NE(out.find("the served figures of the day are now the calibrated ones"), std::string::npos) << out;
  EXPECT_NE(out.find("real-time error " + std::to_string(missed) + " of"), std::string::npos) << out;

  ServerProcess again(config, dir.path() + "/data");
  ASSERT_TRUE(again.Start()) << again.output();
  HttpClient http2(again.url());
  for (const auto& [product, want] : truth) {
    Served s = Figures(http2, product, day);
    EXPECT_EQ(s.served, want) << product;
    EXPECT_EQ(s.realtime, want) << product << ": the registry was repaired";
  }
}

class DeviceLoginTest : public ::testing::TestWithParam<std::string> {};

// A user first seen as a device and logging in later is one new user, in the channel and
// hour of the device's first event; calibration agrees.
TEST_P(DeviceLoginTest, DeviceThenLoginCountsOnceAtTheDevicesFirstEvent) {
  RedisServer redis;
  std::vector<std::pair<std::string, std::string>> repl = {{"flush_seconds = 5", "flush_seconds = 1"}};
  if (GetParam() == "redis") {
    ASSERT_TRUE(redis.Start());
    repl.push_back({"backend = \"rocksdb\"", "backend = \"redis\"\nurl = \"redis://" + redis.addr() + "\""});
  }
  TempDir dir;
  std::string config = WriteExampleConfig(dir.path(), repl);
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());
  const int64_t day = Yesterday();
  auto post = [&](const std::string& body) { ASSERT_EQ(http.Post("/v1/events", body).status, 200); };
  // The login arrives first, the device's earlier events after it.
  post(R"({"uid":"carol","device_id":"phone-1","type":"APPSTART","product":"shop","channel":"seo","ts":)" +
       std::to_string(day + 9 * kHour + 5) + "}");
  post(R"({"uid":"carol","type":"APPSTART","product":"shop","channel":"mail","ts":)" + std::to_string(day + 11 * kHour) + "}");
  post(R"({"device_id":"phone-1","type":"init","product":"shop","channel":"ads","ts":)" +
       std::to_string(day + 2 * kHour + 30 * 60'000) + "}");
  post(R"({"device_id":"phone-1","type":"APPSTART","product":"shop","channel":"partner","ts":)" +
       std::to_string(day + 3 * kHour) + "}");
  // A device that never logs in is a user of its own.
  post(R"({"device_id":"tablet-9","type":"init","product":"shop","ts":)" + std::to_string(day + 4 * kHour) + "}");
  WaitForPipeline(http, 5);
  const Buckets want = {{{day + 2 * kHour, "ads"}, 1}, {{day + 4 * kHour, "(none)"}, 1}};
  EXPECT_EQ(Figures(http, "shop", day).served, want);
  HttpResult csv = http.Get("/v1/channels/new-users?product=shop&from=" + DateOf(day) + "&to=" + DateOf(day + kDay) +
                            "&granularity=day&format=csv");
  ASSERT_EQ(csv.status, 200);
  EXPECT_NE(csv.body.find("ads," + DateOf(day) + "T00:00:00.000Z,1,1,false,1\n"), std::string::npos) << csv.body;
  ASSERT_EQ(http.Post("/v1/channels:calibrate?date=" + DateOf(day), "").status, 200);
  Served after = Figures(http, "shop", day);
  EXPECT_EQ(after.served, want);
  EXPECT_EQ(after.calibrated_hours.size(), 24u);
}

INSTANTIATE_TEST_SUITE_P(Stores, DeviceLoginTest, ::testing::Values("rocksdb", "redis"));

TEST(ChannelsE2eTest, BadQueriesAreNamed) {
  TempDir dir;
  std::string config = WriteExampleConfig(dir.path());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());
  auto expect = [&](const std::string& path, long status, const std::string& words) {
    HttpResult r = path.starts_with("POST ") ? http.Post(path.substr(5), "") : http.Get(path);
    EXPECT_EQ(r.status, status) << path << ": " << r.body;
    EXPECT_NE(r.body.find(words), std::string::npos) << path << ": " << r.body;
  };
  expect("/v1/channels/new-users?granularity=week", 400, "granularity must be hour or day");
  expect("/v1/channels/new-users?from=yesterday", 400, "from must be unix ms");
  expect("/v1/channels/new-users?from=2026-01-02&to=2026-01-01", 400, "from must be before to");
  expect("/v1/channels/new-users?from=2000-01-01&to=2026-01-01&granularity=day", 400, "at most 400 days");
  expect("/v1/channels/new-users?format=xml", 400, "format must be json or csv");
  expect("POST /v1/channels:calibrate", 400, "date=YYYY-MM-DD is required");
  expect("POST /v1/channels:calibrate?date=2026-13-01", 400, "date must be YYYY-MM-DD");
  expect("POST /v1/channels:calibrate?date=2001-01-01", 404, "no archived events for 2001-01-01");
  expect("/v1/channels/new-users?product=nothing", 200, "\"channels\":[]");
  EXPECT_EQ(http.Get("/healthz").status, 200);
}

}  // namespace
}  // namespace portrait::testing_util
