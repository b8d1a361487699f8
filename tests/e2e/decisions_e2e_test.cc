// Real-time decisions through the real binary on the example config: a webhook that is
// down and then up receives each decision exactly once (through the retry topic), a
// replay of the whole log decides nothing new, the live stream (SSE over a real socket)
// carries decisions within milliseconds and ends cleanly on shutdown, rules reload by
// POST /v1/admin/reload and SIGHUP (a broken file is refused, the old rules stay), and
// the same on the Redis store.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>

#include "e2e/e2e_util.h"
#include "e2e/sse_client.h"
#include "e2e/webhook_receiver.h"
#include "redis_util.h"

namespace portrait::testing_util {
namespace {

constexpr int64_t kMin = 60'000;

std::string Click(const std::string& uid, int64_t ts, int category, int item) {
  return "{\"uid\":\"" + uid + "\",\"type\":\"click\",\"ts\":" + std::to_string(ts) + ",\"props\":{\"item_id\":" +
         std::to_string(item) + ",\"category_id\":" + std::to_string(category) + "}}\n";
}

// The value of `name` in /metrics (0 when absent).
double Metric(HttpClient& http, const std::string& name) {
  std::string text = http.Get("/metrics").body;
  size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? 0 : std::stod(text.substr(at + name.size() + 2));
}

std::vector<std::string> DecisionIds(HttpClient& http, const std::string& uid) {
  std::vector<std::string> ids;
  simdjson::dom::parser parser;
  std::string body = http.Get("/v1/decisions/" + uid).body;
  for (auto d : parser.parse(body)["decisions"].get_array()) ids.emplace_back(d["id"].get_string().value());
  return ids;
}

class DecisionsE2eTest : public ServerFixture {
 public:
  void Start(const std::vector<std::pair<std::string, std::string>>& replacements) { StartServer(replacements); }
  bool Restart() {
    if (!server_->Start()) return false;
    http_ = std::make_unique<HttpClient>(server_->url());
    return true;
  }
  HttpClient& http() { return *http_; }
  ServerProcess& server() { return *server_; }

 protected:
  // Stops the server, runs `portrait replay --from-offset 0` over its data, starts it again.
  void ReplayAndRestart() {
    server_->Kill(SIGTERM);
    std::string out;
    ASSERT_EQ(RunCommand(Portrait("replay --config " + config_ + " --data-dir " + dir_.path() + "/data --from-offset 0"), &out), 0)
        << out;
    ASSERT_TRUE(server_->Start()) << server_->output();
    http_ = std::make_unique<HttpClient>(server_->url());
  }
};

TEST_F(DecisionsE2eTest, WebhookDownThenUpDeliversEachDecisionOnceAndAReplayDecidesNothingNew) {
  const int port = WebhookReceiver::FreePort();
  StartServer({{"# webhook = \"http://127.0.0.1:9000/decisions\"", "webhook = \"http://127.0.0.1:" + std::to_string(port) + "/hook\""},
               {"initial_backoff = \"1s\"", "initial_backoff = \"300ms\""},
               {"max_backoff = \"10m\"", "max_backoff = \"500ms\""},
               {"attempts = 6", "attempts = 40"}});
  const int64_t t0 = NowMs() - 60 * kMin;
  std::string body;
  // 12 users: 3 clicks of category 7 within 20 minutes (a coupon each), plus 2 clicks of
  // category 8 (no coupon) and, for user 0, clicks spread over 31 minutes in category 9.
  for (int u = 0; u < 12; ++u) {
    std::string uid = "w" + std::to_string(u);
    for (int i = 0; i < 3; ++i) body += Click(uid, t0 + i * 10 * kMin, 7, 100 + i);
    for (int i = 0; i < 2; ++i) body += Click(uid, t0 + i * kMin, 8, 200 + i);
  }
  for (int m : {0, 16, 31}) body += Click("w0", t0 + m * kMin, 9, 300 + m);
  ASSERT_EQ(http_->Post("/v1/events", body).status, 200);

  // The webhook is down: every decision is made, served, and waits in the retry topic.
  std::set<std::string> made;
  ASSERT_TRUE(WaitUntil([&] {
    made.clear();
    for (int u = 0; u < 12; ++u) {
      for (auto& id : DecisionIds(*http_, "w" + std::to_string(u))) made.insert(id);
    }
    return made.size() == 12 && Metric(*http_, "portrait_retry_queued_total") >= 12;
  })) << made.size() << " decisions";
  for (int u = 0; u < 12; ++u) EXPECT_EQ(DecisionIds(*http_, "w" + std::to_string(u)).size(), 1u) << u;

  // The webhook comes up: each decision arrives once, with its id as Idempotency-Key.
  WebhookReceiver hook(port);
  ASSERT_TRUE(hook.Start());
  ASSERT_TRUE(WaitUntil([&] { return hook.posts().size() >= 12; })) << hook.posts().size();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // nothing more comes
  auto posts = hook.posts();
  ASSERT_EQ(posts.size(), 12u);
  std::set<std::string> delivered;
  simdjson::dom::parser parser;
  for (const auto& p : posts) {
    simdjson::dom::element d = parser.parse(p.body);
    std::string id(d["id"].get_string().value());
    EXPECT_EQ(p.idempotency_key, id);
    EXPECT_EQ(std::string(d["rule"].get_string().value()), "category_coupon");
    EXPECT_EQ(std::string(d["key"].get_string().value()), "7");
    EXPECT_EQ(d["payload"]["coupon"].get_string().value(), "CAT10");
    delivered.insert(id);
  }
  EXPECT_EQ(delivered, made);

  // More clicks of category 7 within the day: the cooldown holds.
  body.clear();
  for (int u = 0; u < 12; ++u) {
    for (int i = 0; i < 3; ++i) body += Click("w" + std::to_string(u), t0 + 40 * kMin + i * kMin, 7, 400 + i);
  }
  ASSERT_EQ(http_->Post("/v1/events", body).status, 200);
  ASSERT_TRUE(WaitUntil([&] { return Metric(*http_, "portrait_decisions_cooled_down_total") >= 12; }));
  EXPECT_EQ(Metric(*http_, "portrait_decisions_total"), 12);

  // A replay of the whole log decides nothing new: nothing appended, nothing posted.
  ReplayAndRestart();
  ASSERT_TRUE(WaitUntil([&] { return ReadProfile(*http_, "w0").click_items.size() >= 6; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(Metric(*http_, "portrait_decisions_total"), 0);
  EXPECT_EQ(hook.posts().size(), 12u);
  for (int u = 0; u < 12; ++u) EXPECT_EQ(DecisionIds(*http_, "w" + std::to_string(u)).size(), 1u) << u;
}

// Rule states are written every state_save_interval, not with every batch: a crash
// between two saves rebuilds them from the log. Killed with SIGKILL four times while
// 1000 users each click one category 6 times (a coupon at the 3rd, the cooldown holds the
// rest back), every user ends with exactly one coupon: none lost (the recovered state
// holds the clicks), none twice (it holds the decision, taken from the outbox). On Redis
// the store outlives the process, so the restarts rebuild states saved long before; on
// RocksDB (no WAL: the log is the source of truth) a kill loses the unflushed memtable
// with its checkpoints, and the log is processed again from the last flushed one.
void KillBetweenStateSaves(DecisionsE2eTest* t, bool redis) {
  std::vector<std::pair<std::string, std::string>> config = {
      {"state_save_interval = \"0s\"", "state_save_interval = \"30s\""}};
  if (redis) config.push_back({"backend = \"rocksdb\"", "backend = \"redis\"\nurl = \"redis://" + SharedRedisServer().addr() + "\""});
  t->Start(config);
  const std::string prefix = "k" + std::to_string(NowMs()) + "-";
  const int64_t t0 = NowMs() - 60 * kMin;
  const int kUsers = 1000, kClicks = 6, kPerBody = 100;
  std::vector<std::string> bodies;
  for (int i = 0; i < kClicks; ++i) {
    for (int first = 0; first < kUsers; first += kPerBody) {
      std::string body;
      for (int u = first; u < first + kPerBody; ++u) {
        body += "{\"id\":\"" + prefix + std::to_string(u) + "-" + std::to_string(i) + "\",\"uid\":\"" + prefix +
                std::to_string(u) + "\",\"type\":\"click\",\"ts\":" + std::to_string(t0 + u * 1000 + i * kMin) +
                ",\"props\":{\"item_id\":" + std::to_string(i) + ",\"category_id\":" + std::to_string(u % 7) + "}}\n";
      }
      bodies.push_back(std::move(body));
    }
  }
  const std::set<size_t> kill_after = {12, 25, 38, 51};
  double recovered = 0;
  for (size_t b = 0; b < bodies.size(); ++b) {
    while (t->http().Post("/v1/events", bodies[b]).status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (kill_after.count(b)) {
      // Let the processor take some of it (a restarted one rebuilds its states at its first
      // batch), however slow the machine is today.
      WaitUntil([&] { return Metric(t->http(), "portrait_processor_events_total") > 0; }, 20);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      recovered += Metric(t->http(), "portrait_processor_recovered_records_total");
      t->server().Kill(SIGKILL);
      ASSERT_TRUE(t->Restart());
    }
  }
  auto count = [&](std::vector<int>* per_user) {
    size_t n = 0;
    for (int u = 0; u < kUsers; ++u) {
      size_t d = DecisionIds(t->http(), prefix + std::to_string(u)).size();
      if (per_user) (*per_user)[u] = static_cast<int>(d);
      n += d;
    }
    return n;
  };
  ASSERT_TRUE(WaitUntil([&] { return count(nullptr) >= static_cast<size_t>(kUsers); })) << count(nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // nothing more comes
  std::vector<int> per_user(kUsers);
  EXPECT_EQ(count(&per_user), static_cast<size_t>(kUsers));
  for (int u = 0; u < kUsers; ++u) EXPECT_EQ(per_user[u], 1) << "user " << prefix << u;
  // On Redis the restarts did rebuild rule states from the log (what this test is about).
  recovered += Metric(t->http(), "portrait_processor_recovered_records_total");
  // Whether a kill fell between two saves depends on how far the processor got, which on a
  // loaded machine it may not have: then more rounds of other users' clicks (two each, no
  // decision), each killed as soon as the processor has taken some of them.
  for (int round = 0; redis && recovered == 0 && round < 8; ++round) {
    std::string more, next;
    for (int u = 0; u < 300; ++u) {
      for (int i = 0; i < 2; ++i) {
        more += "{\"id\":\"" + prefix + "r" + std::to_string(round) + "-" + std::to_string(u) + "-" + std::to_string(i) +
                "\",\"uid\":\"" + prefix + "r" + std::to_string(round) + "-" + std::to_string(u) +
                "\",\"type\":\"click\",\"ts\":" + std::to_string(t0 + u * 1000 + i * kMin) +
                ",\"props\":{\"item_id\":1,\"category_id\":1}}\n";
      }
    }
    const int64_t before = Metric(t->http(), "portrait_processor_events_total");
    while (t->http().Post("/v1/events", more).status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    WaitUntil([&] { return Metric(t->http(), "portrait_processor_events_total") > before; }, 20);
    t->server().Kill(SIGKILL);
    ASSERT_TRUE(t->Restart());
    next = "{\"id\":\"" + prefix + "n" + std::to_string(round) + "\",\"uid\":\"" + prefix + "n" +
           std::to_string(round) + "\",\"type\":\"click\",\"ts\":" + std::to_string(t0) +
           ",\"props\":{\"item_id\":1,\"category_id\":1}}\n";
    while (t->http().Post("/v1/events", next).status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    WaitUntil([&] { return Metric(t->http(), "portrait_processor_events_total") > 0; }, 20);
    recovered += Metric(t->http(), "portrait_processor_recovered_records_total");
  }
  if (redis) {
    EXPECT_GT(recovered, 0);
  }
  // The extra rounds decided nothing, and changed nothing of the first users.
  EXPECT_EQ(count(nullptr), static_cast<size_t>(kUsers));
}

TEST_F(DecisionsE2eTest, KilledBetweenStateSavesEachUserGetsExactlyOneDecision) {
  KillBetweenStateSaves(this, false);
}

TEST_F(DecisionsE2eTest, OnRedisKilledBetweenStateSavesEachUserGetsExactlyOneDecision) {
  KillBetweenStateSaves(this, true);
}

TEST_F(DecisionsE2eTest, StreamCarriesDecisionsAsTheyAreMadeAndEndsOnShutdown) {
  StartServer();
  SseClient all, only_s2;
  ASSERT_TRUE(all.Connect(server_->port()));
  ASSERT_TRUE(only_s2.Connect(server_->port(), "?uid=s2"));
  EXPECT_NE(all.head().find("text/event-stream"), std::string::npos) << all.head();
  const int64_t t0 = NowMs();
  ASSERT_EQ(http_->Post("/v1/events", Click("s1", t0, 3, 1) + Click("s1", t0 + 1, 3, 2)).status, 200);
  int64_t sent = NowMs();
  ASSERT_EQ(http_->Post("/v1/events", Click("s1", t0 + 2, 3, 3)).status, 200);
  ASSERT_TRUE(WaitUntil([&] { return all.events().size() == 1; }, 10));
  auto ev = all.events()[0];
  EXPECT_NE(ev.first.find("\"uid\":\"s1\""), std::string::npos) << ev.first;
  std::printf("POST to decision on the stream: %lld ms\n", static_cast<long long>(ev.second - sent));
  // A sequence: fav then cart of the same item within the hour.
  std::string seq = "{\"uid\":\"s2\",\"type\":\"fav\",\"ts\":" + std::to_string(t0) + ",\"props\":{\"item_id\":9,\"category_id\":1}}\n" +
                    "{\"uid\":\"s2\",\"type\":\"cart\",\"ts\":" + std::to_string(t0 + 5 * kMin) + ",\"props\":{\"item_id\":9,\"category_id\":1}}\n";
  ASSERT_EQ(http_->Post("/v1/events", seq).status, 200);
  ASSERT_TRUE(WaitUntil([&] { return all.events().size() == 2 && only_s2.events().size() == 1; }, 10));
  EXPECT_NE(only_s2.events()[0].first.find("\"rule\":\"fav_then_cart\""), std::string::npos);
  EXPECT_EQ(all.events()[1].first, only_s2.events()[0].first);
  // Shutdown with both streams open: they end, the server exits.
  server_->Kill(SIGTERM);
  EXPECT_TRUE(WaitUntil([&] { return all.ended() && only_s2.ended(); }, 10));
}

TEST_F(DecisionsE2eTest, RulesReloadWithoutRestartAndABrokenFileIsRefused) {
  StartServer();
  std::ifstream in(config_);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string original = ss.str();
  const int64_t t0 = NowMs();
  auto clicks = [&](const std::string& uid, int n) {
    std::string body;
    for (int i = 0; i < n; ++i) body += Click(uid, t0 + i * 1000, 5, i);
    ASSERT_EQ(http_->Post("/v1/events", body).status, 200);
  };

  // A broken rule: refused with its place, the rules in force stay.
  std::string broken = original;
  broken.replace(broken.find("within = \"30m\""), 14, "within = \"soon\"");
  std::ofstream(config_) << broken;
  HttpResult r = http_->Post("/v1/admin/reload", "");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("portrait.toml:"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("must be a duration"), std::string::npos) << r.body;
  clicks("r1", 3);
  ASSERT_TRUE(WaitUntil([&] { return DecisionIds(*http_, "r1").size() == 1; }));

  // A good change: two clicks now suffice.
  std::string two = original;
  two.replace(two.find("at_least = 3", two.find("[[decisions.rules]]")), 12, "at_least = 2");
  std::ofstream(config_) << two;
  r = http_->Post("/v1/admin/reload", "");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("\"decision_rules\":2"), std::string::npos) << r.body;
  clicks("r2", 2);
  ASSERT_TRUE(WaitUntil([&] { return DecisionIds(*http_, "r2").size() == 1; }));

  // SIGHUP: back to three; two clicks decide nothing.
  std::ofstream(config_) << original;
  server_->Signal(SIGHUP);
  ASSERT_TRUE(WaitUntil([&] { return Metric(*http_, "portrait_config_reloads_total{result=\"ok\"}") >= 2; }));
  clicks("r3", 2);
  clicks("r4", 3);
  ASSERT_TRUE(WaitUntil([&] { return DecisionIds(*http_, "r4").size() == 1; }));
  EXPECT_TRUE(DecisionIds(*http_, "r3").empty());
  EXPECT_EQ(Metric(*http_, "portrait_config_reloads_total{result=\"rejected\"}"), 1);
}

TEST_F(DecisionsE2eTest, OnRedisDecisionsAreMadeOnceServedAndNotRepeatedByAReplay) {
  RedisServer& redis = SharedRedisServer();
  StartServer({{"backend = \"rocksdb\"", "backend = \"redis\"\nurl = \"redis://" + redis.addr() + "\""}});
  const std::string uid = "redis-" + std::to_string(NowMs());
  const int64_t t0 = NowMs() - 30 * kMin;
  std::string body;
  for (int i = 0; i < 6; ++i) body += Click(uid, t0 + i * 4 * kMin, 11, i);  // 6 views in 20 minutes: one coupon
  body += "{\"uid\":\"" + uid + "\",\"type\":\"fav\",\"ts\":" + std::to_string(t0) + ",\"props\":{\"item_id\":4,\"category_id\":1}}\n";
  body += "{\"uid\":\"" + uid + "\",\"type\":\"cart\",\"ts\":" + std::to_string(t0 + 50 * kMin) + ",\"props\":{\"item_id\":4,\"category_id\":1}}\n";
  ASSERT_EQ(http_->Post("/v1/events", body).status, 200);
  ASSERT_TRUE(WaitUntil([&] { return DecisionIds(*http_, uid).size() == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto ids = DecisionIds(*http_, uid);
  EXPECT_EQ(ids.size(), 2u);

  ReplayAndRestart();
  EXPECT_EQ(DecisionIds(*http_, uid), ids);
  EXPECT_EQ(Metric(*http_, "portrait_decisions_total"), 0);
}

}  // namespace
}  // namespace portrait::testing_util
