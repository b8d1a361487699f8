// End to end: the real binary on an ephemeral port, driven over HTTP like a user would.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

std::string Click(const std::string& uid, int item, int category, int64_t ts, const std::string& channel = "ads") {
  return R"({"uid":")" + uid + R"(","type":"click","ts":)" + std::to_string(ts) + R"(,"channel":")" + channel +
         R"(","props":{"item_id":)" + std::to_string(item) + R"(,"category_id":)" + std::to_string(category) + "}}";
}

std::string Buy(const std::string& uid, int item, int category, int64_t ts) {
  return R"({"uid":")" + uid + R"(","type":"buy","ts":)" + std::to_string(ts) + R"(,"props":{"item_id":)" +
         std::to_string(item) + R"(,"category_id":)" + std::to_string(category) + "}}";
}

class ServeTest : public ServerFixture {
 protected:
  void SetUp() override {
    StartServer({{"max_body_bytes = 16777216", "max_body_bytes = 65536"},
                 // The tests' events are from 2023: keep their history.
                 {"enabled = false", "enabled = true"},
                 {"retention = \"30d\"", "retention = \"3650d\""}});
  }
};

TEST_F(ServeTest, EventsInFusedProfileOut) {
  const int64_t t0 = 1700000000000;
  // Out of order across and within requests; duplicates in the same and in a later body.
  std::string ndjson = Click("alice", 3, 7, t0 + 3000) + "\n" + Click("alice", 1, 7, t0 + 1000) + "\n" +
                       Click("alice", 3, 7, t0 + 3000) + "\n" + Buy("alice", 3, 7, t0 + 4000) + "\n";
  HttpResult r = http_->Post("/v1/events", ndjson);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"accepted":4,"duplicates":1,"rejected":[]})");
  std::string array = "[" + Click("alice", 2, 8, t0 + 2000) + "," + Click("alice", 1, 7, t0 + 1000) + "," +
                      Click("bob", 9, 7, t0) + "]";
  r = http_->Post("/v1/events", array);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(http_->Post("/v1/events", Click("alice", 4, 8, t0 - 5000)).status, 200);

  ProfileView p = WaitForProfile(*http_, "alice", [](const ProfileView& v) {
    return v.category_prefs.count("8") && v.category_prefs.at("8") == 2;
  });
  // Newest first, each (item, time) once, whatever the arrival order.
  EXPECT_EQ(p.click_items, (std::vector<int64_t>{3, 2, 1, 4}));
  // map.incr counts every delivered event: the two repeated clicks count again.
  EXPECT_EQ(p.category_prefs, (std::map<std::string, int64_t>{{"7", 3}, {"8", 2}}));
  EXPECT_EQ(p.purchases, 1);
  EXPECT_EQ(p.last_seen, "2023-11-14T22:13:24.000Z");  // the latest event time, not the last arrival
  ProfileView bob = WaitForProfile(*http_, "bob", [](const ProfileView& v) { return v.status == 200; });
  EXPECT_EQ(bob.click_items, (std::vector<int64_t>{9}));

  // Event history, newest first, by event time.
  HttpResult h = http_->Get("/v1/users/alice/events?limit=2");
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_NE(h.body.find(R"({"uid":"alice","events":[{"id":)"), std::string::npos) << h.body;
  EXPECT_LT(h.body.find(R"("type":"buy","ts":1700000004000)"), h.body.find(R"("ts":1700000003000)")) << h.body;
  h = http_->Get("/v1/users/alice/events?type=click&from=1700000001000&to=1700000002000");
  EXPECT_NE(h.body.find(R"("ts":1700000002000)"), std::string::npos) << h.body;
  EXPECT_NE(h.body.find(R"("ts":1700000001000)"), std::string::npos) << h.body;
  EXPECT_EQ(h.body.find(R"("ts":1700000003000)"), std::string::npos) << h.body;
  EXPECT_EQ(http_->Get("/v1/users/alice/events?type=teleport").status, 400);
  EXPECT_EQ(http_->Get("/v1/users/alice/events?limit=x").status, 400);

  // ?tags= picks tags; updated_at is the newest event time of the tag.
  r = http_->Get("/v1/profiles/alice?tags=purchases");
  // After the freshness: the devices the user logged in from and its segments.
  EXPECT_EQ(r.body, R"({"uid":"alice","tags":{"purchases":{"value":1,"updated_at":1700000004000}},)"
                    R"("freshness":{"realtime_updated_at":1700000004000,"snapshot":null},)"
                    R"("devices":[],"segments":["buyers"]})");

  // A restart serves the same profile.
  server_->Kill(SIGTERM);
  ASSERT_TRUE(server_->Start()) << server_->output();
  HttpClient again(server_->url());
  EXPECT_EQ(ReadProfile(again, "alice").click_items, (std::vector<int64_t>{3, 2, 1, 4}));
  // Ids are remembered across the restart: a repeat is still logged once.
  r = again.Post("/v1/events", Click("alice", 4, 8, t0 - 5000));
  EXPECT_EQ(r.body, R"({"accepted":1,"duplicates":1,"rejected":[]})");
  std::string with_id =
      R"({"id":"e-1","uid":"alice","type":"buy","ts":1700000009000,"props":{"item_id":5,"category_id":8}})";
  ASSERT_EQ(again.Post("/v1/events", with_id).status, 200);
  ASSERT_EQ(again.Post("/v1/events", with_id).status, 200);
  p = WaitForProfile(again, "alice", [](const ProfileView& v) { return v.purchases == 2; });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  p = ReadProfile(again, "alice");
  EXPECT_EQ(p.purchases, 2);
  EXPECT_EQ(p.category_prefs["8"], 3);
}

TEST_F(ServeTest, BadInputGetsReasonsAndTheServerStaysUp) {
  struct Case {
    std::string body;
    long status;
    std::string code;
  };
  std::string deep = R"({"uid":"u","type":"APPSTART","ts":1700000000000,"props":{"x":)" + std::string(100, '[') +
                     std::string(100, ']') + "}}";
  std::vector<Case> cases = {
      {"{not json", 400, "malformed_json"},
      {R"({"uid":"u","type":"click","ts":"now","props":{"item_id":1,"category_id":2}})", 400, "wrong_type"},
      {R"({"uid":"u","type":"click","ts":1700000000000,"props":{"item_id":"x","category_id":2}})", 400, "wrong_type"},
      {R"({"uid":"u","type":"teleport","ts":1700000000000})", 400, "unknown_type"},
      {deep, 400, "too_deep"},
      {std::string(70000, ' '), 413, "body_too_large"},
      {"", 400, "empty_body"},
  };
  for (const auto& c : cases) {
    HttpResult r = http_->Post("/v1/events", c.body);
    EXPECT_EQ(r.status, c.status) << c.body.substr(0, 80) << " -> " << r.body;
    EXPECT_NE(r.body.find("\"code\":\"" + c.code + "\""), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"message\":\""), std::string::npos) << r.body;
  }
  // Valid events next to invalid ones are kept.
  std::string mixed = Click("carol", 1, 1, 1700000000000) + "\n{oops\n" + Click("carol", 2, 1, 1700000001000);
  HttpResult r = http_->Post("/v1/events", mixed);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find(R"("accepted":2)"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"({"index":1,"reason":"malformed_json")"), std::string::npos) << r.body;
  EXPECT_EQ(WaitForProfile(*http_, "carol", [](const ProfileView& v) { return v.click_items.size() == 2; })
                .click_items.size(),
            2u);

  EXPECT_EQ(http_->Get("/healthz").status, 200);
  std::string metrics = http_->Get("/metrics").body;
  EXPECT_NE(metrics.find("portrait_events_rejected_total{reason=\"malformed_json\"} 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("portrait_events_rejected_total{reason=\"wrong_type\"} 2"), std::string::npos);
  EXPECT_NE(metrics.find("portrait_events_rejected_total{reason=\"unknown_type\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("portrait_events_rejected_total{reason=\"too_deep\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("portrait_http_bodies_too_large_total 1"), std::string::npos);
  EXPECT_NE(metrics.find("portrait_events_accepted_total 2"), std::string::npos);

  // The rejected events are kept (the 413 body was never read, so it is not among them).
  HttpResult failed = http_->Get("/v1/failed?limit=2");
  ASSERT_EQ(failed.status, 200);
  EXPECT_NE(failed.body.find(R"("reason":"malformed_json","error":"malformed JSON)"), std::string::npos) << failed.body;
  EXPECT_NE(failed.body.find(R"("payload":"{oops")"), std::string::npos) << failed.body;
  EXPECT_NE(failed.body.find(R"("source":"http","kind":"event")"), std::string::npos) << failed.body;
  EXPECT_EQ(http_->Get("/v1/failed?limit=0").status, 400);
  std::string out;
  ASSERT_EQ(RunCommand(std::string(PORTRAIT_BINARY) + " failed list --config " + config_ + " --data-dir " +
                           dir_.path() + "/data --limit 100",
                       &out),
            0)
      << out;
  size_t lines = std::count(out.begin(), out.end(), '\n');
  EXPECT_EQ(lines, 7u) << out;  // 6 bad bodies above (one was too large) + the {oops line
  EXPECT_NE(out.find(R"("reason":"unknown_type")"), std::string::npos) << out;
}

TEST_F(ServeTest, RoutingErrorsAreJson) {
  HttpResult r = http_->Get("/v1/profiles/nobody");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("\"code\":\"not_found\""), std::string::npos);
  r = http_->Get("/v1/profiles/x?tags=clicks,nope");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("unknown tag \\\"nope\\\""), std::string::npos) << r.body;
  EXPECT_EQ(http_->Get("/v1/events").status, 405);
  EXPECT_EQ(http_->Get("/v2/whatever").status, 404);
}

TEST(CliTest, CheckConfigNamesProblemsAndHelpListsCommands) {
  TempDir dir;
  std::string out;
  EXPECT_EQ(
      RunCommand(std::string(PORTRAIT_BINARY) + " check-config " + PORTRAIT_SOURCE_DIR + "/examples/portrait.toml",
                 &out),
      0)
      << out;
  std::string bad = WriteExampleConfig(dir.path(), {{"size_limit = 1000", "size_limit = -1"}});
  EXPECT_EQ(RunCommand(std::string(PORTRAIT_BINARY) + " check-config " + bad, &out), 1);
  EXPECT_NE(out.find(bad + ":"), std::string::npos) << out;
  EXPECT_NE(out.find("tag \"clicks\": \"size_limit\" must be between 1"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(std::string(PORTRAIT_BINARY) + " serve --config " + bad, &out), 2);
  EXPECT_NE(out.find("invalid config"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(std::string(PORTRAIT_BINARY) + " --help", &out), 0);
  EXPECT_NE(out.find("serve"), std::string::npos);
  EXPECT_NE(out.find("check-config"), std::string::npos);
  EXPECT_EQ(RunCommand(std::string(PORTRAIT_BINARY) + " serve --help", &out), 0);
  EXPECT_NE(out.find("--data-dir"), std::string::npos);
}

}  // namespace
}  // namespace portrait::testing_util
