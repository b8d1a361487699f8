// Segments end to end, on RocksDB and on Redis: members enter as their profiles change,
// leave when a time condition lapses or a reload changes the definition; the changes reach
// the live stream and the webhook once each; members are listed, paginated and exported.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "e2e/e2e_util.h"
#include "e2e/sse_client.h"
#include "e2e/webhook_receiver.h"
#include "redis_util.h"

namespace portrait::testing_util {
namespace {

int64_t Metric(HttpClient& http, const std::string& name) { return MetricValue(http.Get("/metrics").body, name); }

std::string Event(const std::string& uid, const std::string& type, int64_t ts, int category, int item) {
  return R"({"uid":")" + uid + R"(","type":")" + type + R"(","ts":)" + std::to_string(ts) +
         R"(,"props":{"item_id":)" + std::to_string(item) + R"(,"category_id":)" + std::to_string(category) + "}}\n";
}

// "enter cat7_fans u1" for each change the stream or webhook carried.
std::multiset<std::string> Changes(const std::vector<std::string>& bodies) {
  std::multiset<std::string> out;
  simdjson::dom::parser parser;
  for (const std::string& b : bodies) {
    simdjson::dom::element doc;
    if (parser.parse(b).get(doc)) continue;
    out.insert(std::string(doc["change"].get_string().value()) + " " + std::string(doc["segment"].get_string().value()) +
               " " + std::string(doc["uid"].get_string().value()));
  }
  return out;
}

class SegmentsE2eTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    port_ = WebhookReceiver::FreePort();
    hook_ = std::make_unique<WebhookReceiver>(port_);
    ASSERT_TRUE(hook_->Start());
    replace_ = {{"within = \"7d\"", "within = \"4s\""},
                {"webhook = \"\"                # e.g.", "webhook = \"http://127.0.0.1:" + std::to_string(port_) + "/seg\" # e.g."},
                {"recheck_interval = \"1s\"", "recheck_interval = \"200ms\""}};
    if (GetParam() == "redis") {
      redis_ = std::make_unique<RedisServer>();
      ASSERT_TRUE(redis_->Start());
      replace_.push_back({"backend = \"rocksdb\"", "backend = \"redis\"\nurl = \"redis://" + redis_->addr() + "\""});
    }
    config_ = WriteExampleConfig(dir_.path(), replace_);
    ASSERT_FALSE(config_.empty()) << "a replacement did not match examples/portrait.toml";
    server_ = std::make_unique<ServerProcess>(config_, dir_.path() + "/data");
    ASSERT_TRUE(server_->Start()) << server_->output();
    http_ = std::make_unique<HttpClient>(server_->url());
  }

  int64_t Count(const std::string& segment) {
    HttpResult r = http_->Get("/v1/segments");
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (r.status != 200 || parser.parse(r.body).get(doc)) return -1;
    for (auto s : doc["segments"].get_array()) {
      if (s["name"].get_string().value() == segment) return s["members"].get_int64().value();
    }
    return -1;
  }

  std::vector<std::string> Members(const std::string& segment, const std::string& query = "") {
    HttpResult r = http_->Get("/v1/segments/" + segment + "/members" + query);
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::vector<std::string> out;
    if (r.status != 200 || parser.parse(r.body).get(doc)) return out;
    for (auto m : doc["members"].get_array()) out.emplace_back(m.get_string().value());
    return out;
  }

  std::vector<std::string> Posted() {
    std::vector<std::string> bodies;
    for (const auto& p : hook_->posts()) bodies.push_back(p.body);
    return bodies;
  }

  TempDir dir_;
  int port_ = 0;
  std::unique_ptr<WebhookReceiver> hook_;
  std::unique_ptr<RedisServer> redis_;
  std::vector<std::pair<std::string, std::string>> replace_;
  std::string config_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> http_;
};

TEST_P(SegmentsE2eTest, MembersFollowEventsTimeAndReloadOnTheStreamAndTheWebhook) {
  SseClient sse;
  ASSERT_TRUE(sse.Connect(server_->port(), "", "/v1/segments/stream"));
  const int64_t now = NowMs();
  // fan: category 7 three times (enters cat7_fans); near: twice; buyer: one purchase.
  std::string body = Event("fan", "click", now, 7, 1) + Event("fan", "fav", now, 7, 1) + Event("near", "click", now, 7, 2) +
                     Event("near", "cart", now, 7, 2) + Event("buyer", "buy", now, 3, 9);
  ASSERT_EQ(http_->Post("/v1/events", body).status, 200);
  ASSERT_EQ(http_->Post("/v1/events", Event("fan", "buy", now + 1, 7, 1)).status, 200);  // in a later batch
  ASSERT_TRUE(WaitUntil([&] { return Count("cat7_fans") == 1 && Count("buyers") == 2; }, 20))
      << http_->Get("/v1/segments").body;
  EXPECT_EQ(Members("cat7_fans"), std::vector<std::string>{"fan"});
  EXPECT_EQ(Members("buyers"), (std::vector<std::string>{"buyer", "fan"}));
  HttpResult profile = http_->Get("/v1/profiles/fan");
  EXPECT_NE(profile.body.find(R"("segments":["buyers","cat7_fans"])"), std::string::npos) << profile.body;

  // fan's last_seen lapses 4 s after its last event: it leaves cat7_fans (not buyers).
  ASSERT_TRUE(WaitUntil([&] { return Count("cat7_fans") == 0; }, 20)) << http_->Get("/v1/segments").body;
  EXPECT_EQ(Count("buyers"), 2);

  // A reload that asks for two purchases: buyer leaves, fan (one purchase) leaves too.
  std::string text;
  {
    std::ifstream in(config_);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  const std::string from = R"(when = [{ tag = "purchases", at_least = 1 }])";
  ASSERT_NE(text.find(from), std::string::npos);
  text.replace(text.find(from), from.size(), R"(when = [{ tag = "purchases", at_least = 2 }])");
  std::ofstream(config_) << text;
  HttpResult reload = http_->Post("/v1/admin/reload", "");
  ASSERT_EQ(reload.status, 200) << reload.body;
  EXPECT_NE(reload.body.find(R"("segments":2)"), std::string::npos) << reload.body;
  ASSERT_TRUE(WaitUntil([&] { return Count("buyers") == 0; }, 20)) << http_->Get("/v1/segments").body;
  // ...and a second purchase brings buyer back under the new definition.
  ASSERT_EQ(http_->Post("/v1/events", Event("buyer", "buy", NowMs(), 3, 10)).status, 200);
  ASSERT_TRUE(WaitUntil([&] { return Count("buyers") == 1; }, 20));

  const std::multiset<std::string> want = {"enter cat7_fans fan", "leave cat7_fans fan", "enter buyers buyer",
                                           "enter buyers fan",    "leave buyers buyer",  "leave buyers fan",
                                           "enter buyers buyer"};
  ASSERT_TRUE(WaitUntil([&] {
    std::vector<std::string> bodies;
    for (const auto& [data, at] : sse.events()) bodies.push_back(data);
    return Changes(bodies).size() >= want.size() && Changes(Posted()).size() >= want.size();
  }, 20));
  std::vector<std::string> streamed;
  for (const auto& [data, at] : sse.events()) streamed.push_back(data);
  EXPECT_EQ(Changes(streamed), want) << "the live stream carries each change once";
  EXPECT_EQ(Changes(Posted()), want) << "the webhook receives each change once";
  for (const std::string& json : streamed) {
    const std::string reason = json.find(R"("change":"leave","at")") == std::string::npos ? "profile"
                               : json.find(R"("segment":"cat7_fans")") != std::string::npos ? "time"
                                                                                          : "reload";
    EXPECT_NE(json.find("\"reason\":\"" + reason + "\""), std::string::npos) << json;
  }
  EXPECT_EQ(Metric(*http_, "portrait_segment_entered_total"), 4);
  EXPECT_EQ(Metric(*http_, "portrait_segment_left_total"), 3);
}

TEST_P(SegmentsE2eTest, MembersArePaginatedAndExportedAndErasedWithTheUser) {
  const int64_t now = NowMs();
  std::string body;
  for (int u = 0; u < 25; ++u) body += Event("b" + std::to_string(100 + u), "buy", now, 3, u);
  ASSERT_EQ(http_->Post("/v1/events", body).status, 200);
  ASSERT_TRUE(WaitUntil([&] { return Count("buyers") == 25; }, 20)) << http_->Get("/v1/segments").body;
  std::vector<std::string> all;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    HttpResult r = http_->Get("/v1/segments/buyers/members?limit=10" + (after.empty() ? "" : "&after=" + after));
    ASSERT_EQ(r.status, 200) << r.body;
    simdjson::dom::parser parser;
    simdjson::dom::element doc = parser.parse(r.body);
    for (auto m : doc["members"].get_array()) all.emplace_back(m.get_string().value());
    std::string_view next;
    if (doc["next"].get_string().get(next)) break;
    after = std::string(next);
  }
  ASSERT_EQ(all.size(), 25u);
  for (int u = 0; u < 25; ++u) EXPECT_EQ(all[static_cast<size_t>(u)], "b" + std::to_string(100 + u));
  HttpResult csv = http_->Get("/v1/segments/buyers/members?format=csv&limit=100000");
  EXPECT_EQ(csv.status, 200);
  EXPECT_TRUE(csv.body.starts_with("uid\r\nb100\r\nb101\r\n")) << csv.body;
  HttpResult nd = http_->Get("/v1/segments/buyers/members?format=ndjson&limit=3");
  EXPECT_EQ(nd.body, "{\"uid\":\"b100\"}\n{\"uid\":\"b101\"}\n{\"uid\":\"b102\"}\n");
  EXPECT_EQ(http_->Get("/v1/segments/nope/members").status, 404);
  EXPECT_EQ(http_->Get("/v1/segments/buyers/members?limit=0").status, 400);
  EXPECT_EQ(http_->Get("/v1/segments/buyers/members?format=xml").status, 400);

  ASSERT_EQ(http_->Request("DELETE", "/v1/profiles/b105").status, 200);
  EXPECT_TRUE(WaitUntil([&] { return Count("buyers") == 24; }, 20)) << "an erased user leaves every segment";
  EXPECT_EQ(Members("buyers", "?after=b104&limit=1"), std::vector<std::string>{"b106"});
}

INSTANTIATE_TEST_SUITE_P(Stores, SegmentsE2eTest, ::testing::Values("rocksdb", "redis"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace portrait::testing_util
