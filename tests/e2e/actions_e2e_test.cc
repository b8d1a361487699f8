// Actions from other systems, tag and batch reads, erasure, and a full replay of the log
// into an empty store, through the real binary.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

constexpr const char* kExtraTags = R"(
[tags.segments]
type = "set"

[tags.score]
type = "number"

[tags.nickname]
type = "string"
ttl = "1h"

[tags.attrs]
type = "map"
)";

class ActionsTest : public ServerFixture {
 protected:
  void SetUp() override { StartServer({{"# ---- rules: event -> Actions ----", kExtraTags}}); }

  // Waits until GET path answers `status` (the processor is asynchronous).
  HttpResult WaitFor(const std::string& path, long status, const std::string& contains = "") {
    HttpResult r;
    for (int i = 0; i < 1000; ++i) {
      r = http_->Get(path);
      if (r.status == status && r.body.find(contains) != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return r;
  }
};

TEST_F(ActionsTest, EveryOperatorThroughTheApi) {
  const std::string t = "1700000000000";
  const std::string now = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  std::string body = R"({"uid":"u1","tag":"clicks","op":"list.rpushl","ts":)" + t +
                     R"(,"source":"offline","value":[{"item_id":5,"et":100},{"item_id":6,"et":200}]})"
                     "\n"
                     R"({"uid":"u1","tag":"clicks","op":"list.rpush","ts":)" +
                     t +
                     R"(,"value":{"item_id":7,"et":150}})"
                     "\n"
                     R"({"uid":"u1","tag":"segments","op":"set.addl","ts":)" +
                     t +
                     R"(,"value":["vip","new"]})"
                     "\n"
                     R"({"uid":"u1","tag":"segments","op":"set.add","ts":)" +
                     t +
                     R"(,"value":"vip"})"
                     "\n"
                     R"({"uid":"u1","tag":"score","op":"number.max","ts":)" +
                     t +
                     R"(,"value":7.5})"
                     "\n"
                     R"({"uid":"u1","tag":"nickname","op":"string.set","ts":)" +
                     now +
                     R"(,"value":"Ann"})"
                     "\n"
                     R"({"uid":"u1","tag":"nickname","op":"string.set","ts":)" +
                     t +
                     R"(,"value":"Old"})"
                     "\n"
                     R"({"uid":"u1","tag":"attrs","op":"map.merge","ts":)" +
                     t +
                     R"(,"value":{"city":"Hangzhou","age":30}})"
                     "\n"
                     R"({"uid":"u1","tag":"attrs","op":"map.incr","ts":)" +
                     t +
                     R"(,"key":"visits","value":2})"
                     "\n"
                     R"({"uid":"u1","tag":"attrs","op":"map.del","ts":)" +
                     t +
                     R"(,"keys":["age"]})"
                     "\n";
  HttpResult r = http_->Post("/v1/actions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"accepted":10,"rejected":[]})");

  r = WaitFor("/v1/profiles/u1/tags/attrs", 200, "visits");
  EXPECT_NE(r.body.find(R"("value":{"city":"Hangzhou","visits":2})"), std::string::npos) << r.body;
  r = http_->Get("/v1/profiles/u1?tags=clicks,segments,score,nickname");
  EXPECT_NE(r.body.find(R"("clicks":{"value":[{"item_id":6,"et":200},{"item_id":7,"et":150},{"item_id":5,"et":100}])"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find(R"("segments":{"value":["new","vip"])"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("score":{"value":7.5)"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("nickname":{"value":"Ann")"), std::string::npos) << r.body;
  // Only external/offline actions so far: no real-time freshness yet.
  EXPECT_NE(r.body.find(R"("freshness":{"realtime_updated_at":null,"snapshot":null})"), std::string::npos) << r.body;

  // A tag not updated within its ttl (1h) is never served.
  ASSERT_EQ(
      http_->Post("/v1/actions", R"({"uid":"u9","tag":"nickname","op":"string.set","ts":)" + t + R"(,"value":"x"})")
          .status,
      200);
  ASSERT_EQ(
      http_->Post("/v1/actions", R"({"uid":"u9","tag":"score","op":"number.set","ts":)" + t + R"(,"value":1})").status,
      200);
  ASSERT_EQ(WaitFor("/v1/profiles/u9/tags/score", 200).status, 200);
  EXPECT_EQ(http_->Get("/v1/profiles/u9/tags/nickname").status, 404);

  // tag.del removes a tag.
  ASSERT_EQ(http_->Post("/v1/actions", R"({"uid":"u1","tag":"score","op":"tag.del","ts":1700000000001})").status, 200);
  EXPECT_EQ(WaitFor("/v1/profiles/u1/tags/score", 404).status, 404);
}

TEST_F(ActionsTest, IncrementsApplyOncePerActionId) {
  std::string with_id =
      R"({"id":"job-7","uid":"u2","tag":"attrs","op":"map.incr","ts":1700000000000,"key":"k","value":5})";
  std::string without_id = R"({"uid":"u2","tag":"purchases","op":"number.incr","ts":1700000000000,"value":3})";
  for (int i = 0; i < 3; ++i) {  // a client retrying the same requests
    ASSERT_EQ(http_->Post("/v1/actions", with_id).status, 200);
    ASSERT_EQ(http_->Post("/v1/actions", without_id).status, 200);
  }
  // A different id is a different increment.
  ASSERT_EQ(
      http_
          ->Post("/v1/actions",
                 R"({"id":"job-8","uid":"u2","tag":"attrs","op":"map.incr","ts":1700000000000,"key":"k","value":1})")
          .status,
      200);
  HttpResult r = WaitFor("/v1/profiles/u2/tags/attrs", 200, R"("k":6)");
  EXPECT_NE(r.body.find(R"("value":{"k":6})"), std::string::npos) << r.body;
  r = WaitFor("/v1/profiles/u2/tags/purchases", 200);
  EXPECT_NE(r.body.find(R"("value":3)"), std::string::npos) << r.body;
}

TEST_F(ActionsTest, BadActionsAreRejectedWithReasons) {
  struct Case {
    std::string body, code;
  };
  std::vector<Case> cases = {
      {R"({"uid":"u","tag":"nope","op":"string.set","ts":1700000000000,"value":"x"})", "unknown_tag"},
      {R"({"uid":"u","tag":"clicks","op":"number.incr","ts":1700000000000,"value":1})", "wrong_op"},
      {R"({"uid":"u","tag":"clicks","op":"list.push","ts":1700000000000,"value":{}})", "unknown_op"},
      {R"({"uid":"u","tag":"clicks","op":"list.rpush","ts":1700000000000,"value":{"item_id":1}})", "invalid_value"},
      {R"({"uid":"u","tag":"purchases","op":"number.incr","ts":1700000000000,"value":"1"})", "wrong_type"},
      {R"({"uid":"u","tag":"attrs","op":"map.put","ts":1700000000000,"value":1})", "missing_field"},
      {R"({"uid":"u","tag":"last_seen","op":"string.set","ts":1700000000,"value":"x"})", "invalid_value"},
      {R"({"uid":"u","tag":"last_seen","op":"string.set","ts":1700000000000,"value":"x","colour":1})", "unknown_field"},
  };
  for (const auto& c : cases) {
    HttpResult r = http_->Post("/v1/actions", c.body);
    EXPECT_EQ(r.status, 400) << c.body << " -> " << r.body;
    EXPECT_NE(r.body.find("\"code\":\"" + c.code + "\""), std::string::npos) << c.body << " -> " << r.body;
  }
  std::string metrics = http_->Get("/metrics").body;
  EXPECT_NE(metrics.find("portrait_actions_rejected_total{reason=\"wrong_op\"} 1"), std::string::npos) << metrics;
}

TEST_F(ActionsTest, BatchGetAndDeletionSurviveAFullReplay) {
  std::string events;
  for (int u = 0; u < 5; ++u) {
    for (int i = 0; i < 4; ++i) {
      events += R"({"uid":"r)" + std::to_string(u) + R"(","type":"click","ts":)" + std::to_string(1700000000000 + i) +
                R"(,"props":{"item_id":)" + std::to_string(i) + R"(,"category_id":)" + std::to_string(u) + "}}\n";
    }
  }
  ASSERT_EQ(http_->Post("/v1/events", events).status, 200);
  ASSERT_EQ(WaitFor("/v1/profiles/r4", 200, R"("4":4)").status, 200);
  // r2's partition may lag r4's: its profile must exist before the erasure, or the 404
  // below would only say its clicks were not applied yet.
  ASSERT_EQ(WaitFor("/v1/profiles/r2", 200, R"("2":4)").status, 200);
  HttpResult del = http_->Request("DELETE", "/v1/profiles/r2");
  ASSERT_EQ(del.status, 200) << del.body;
  EXPECT_EQ(del.body, R"({"deleted":"r2"})");
  EXPECT_EQ(WaitFor("/v1/profiles/r2", 404).status, 404);
  // Events after the erasure build a new profile from scratch.
  ASSERT_EQ(
      http_->Post("/v1/events", R"({"uid":"r3","type":"buy","ts":1700000009000,"props":{"item_id":9,"category_id":3}})")
          .status,
      200);
  ASSERT_EQ(WaitFor("/v1/profiles/r3/tags/purchases", 200).status, 200);

  std::string batch = R"({"uids":["r0","r1","r2","r3","r4"],"tags":["category_prefs","purchases"]})";
  HttpResult before = http_->Post("/v1/profiles:batchGet", batch);
  ASSERT_EQ(before.status, 200) << before.body;
  EXPECT_NE(before.body.find(R"({"uid":"r2","tags":{},"freshness":{"realtime_updated_at":null,"snapshot":null},"devices":[],"segments":[]})"),
            std::string::npos)
      << before.body;
  EXPECT_NE(before.body.find(R"("purchases":{"value":1,"updated_at":1700000009000})"), std::string::npos);

  // Throw the store away and replay the whole log: the same profiles, r2 still erased.
  server_->Kill(SIGTERM);
  std::filesystem::remove_all(dir_.path() + "/data/profiles");
  ASSERT_TRUE(server_->Start()) << server_->output();
  http_ = std::make_unique<HttpClient>(server_->url());
  // Partitions replay independently: wait for the whole answer to converge.
  HttpResult after;
  for (int i = 0; i < 1000; ++i) {
    after = http_->Post("/v1/profiles:batchGet", batch);
    if (after.body == before.body) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(after.body, before.body);

  EXPECT_EQ(http_->Post("/v1/profiles:batchGet", R"({"uids":[]})").status, 400);
  EXPECT_EQ(http_->Post("/v1/profiles:batchGet", R"({"uids":["a"],"tags":["zzz"]})").status, 400);
  EXPECT_EQ(http_->Post("/v1/profiles:batchGet", "{oops").status, 400);
}

}  // namespace
}  // namespace portrait::testing_util
