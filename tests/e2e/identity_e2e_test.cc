// Identity stitching end to end, on RocksDB and on Redis: a device browses, its user logs
// in on it, and the device browses on; whatever order the events arrive in (and with
// repeats), the user's profile, asked for by the uid or by the device id, equals the
// profile of a reference user who sent all of those events under one uid.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <memory>
#include <string>
#include <vector>

#include "e2e/e2e_util.h"
#include "redis_util.h"

namespace portrait::testing_util {
namespace {

struct Ev {
  std::string uid, device;
  std::string type;
  int64_t ts;
  int item, category;
};

std::string Json(const Ev& e) {
  std::string s = "{";
  if (!e.uid.empty()) s += R"("uid":")" + e.uid + R"(",)";
  if (!e.device.empty()) s += R"("device_id":")" + e.device + R"(",)";
  s += R"("type":")" + e.type + R"(","ts":)" + std::to_string(e.ts) + R"(,"props":{"item_id":)" +
       std::to_string(e.item) + R"(,"category_id":)" + std::to_string(e.category) + "}}\n";
  return s;
}

// The person's stream: the device alone, the login on it, the user alone (another device
// of no interest here), and the device alone again after the login.
std::vector<Ev> Stream(const std::string& uid, const std::string& device, int64_t t0) {
  std::vector<Ev> out;
  for (int i = 0; i < 4; ++i) out.push_back({"", device, "click", t0 + i * 1000, 100 + i, 7});
  out.push_back({"", device, "fav", t0 + 4500, 103, 7});
  out.push_back({uid, device, "click", t0 + 5000, 104, 8});  // the login
  out.push_back({uid, "", "buy", t0 + 6000, 105, 7});
  out.push_back({uid, "", "click", t0 + 7000, 106, 9});
  for (int i = 0; i < 3; ++i) out.push_back({"", device, "click", t0 + 8000 + i * 1000, 107 + i, 9});
  out.push_back({"", device, "buy", t0 + 12000, 108, 9});
  return out;
}

// The same events, all under `ref` and without a device.
std::vector<Ev> AsOneUser(std::vector<Ev> events, const std::string& ref) {
  for (Ev& e : events) {
    e.uid = ref;
    e.device.clear();
  }
  return events;
}

struct Served {
  long status = 0;
  std::string uid, resolved_from, tags;
  std::vector<std::string> devices;
};

Served Read(HttpClient& http, const std::string& id) {
  Served s;
  HttpResult r = http.Get("/v1/profiles/" + id);
  s.status = r.status;
  if (r.status != 200) return s;
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(r.body);
  s.uid = std::string(doc["uid"].get_string().value());
  std::string_view from;
  if (!doc["resolved_from"].get_string().get(from)) s.resolved_from = std::string(from);
  s.tags = simdjson::minify(doc["tags"]);
  simdjson::dom::array devices;
  if (!doc["devices"].get_array().get(devices)) {
    for (auto d : devices) s.devices.emplace_back(d.get_string().value());
  }
  return s;
}

class IdentityE2eTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::vector<std::pair<std::string, std::string>> replace;
    if (GetParam() == "redis") {
      redis_ = std::make_unique<RedisServer>();
      ASSERT_TRUE(redis_->Start());
      replace.push_back({"backend = \"rocksdb\"", "backend = \"redis\"\nurl = \"redis://" + redis_->addr() + "\""});
    }
    std::string config = WriteExampleConfig(dir_.path(), replace);
    ASSERT_FALSE(config.empty());
    server_ = std::make_unique<ServerProcess>(config, dir_.path() + "/data");
    ASSERT_TRUE(server_->Start()) << server_->output();
    http_ = std::make_unique<HttpClient>(server_->url());
  }

  void Send(const std::vector<Ev>& events) {
    std::string body;
    for (const Ev& e : events) body += Json(e);
    HttpResult r = http_->Post("/v1/events", body);
    ASSERT_EQ(r.status, 200) << r.body;
  }

  // Waits until `id` is served with the tags `ref` is served with; the last reading.
  Served WaitEqual(const std::string& id, const std::string& ref) {
    Served got;
    WaitUntil([&] {
      Served want = Read(*http_, ref);
      got = Read(*http_, id);
      return want.status == 200 && got.status == 200 && got.tags == want.tags;
    });
    return got;
  }

  TempDir dir_;
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> http_;
};

TEST_P(IdentityE2eTest, ADeviceBrowsingThenLoggingInIsOnePersonInEitherArrivalOrder) {
  const int64_t t0 = NowMs() - 3600 * 1000;
  // In time order, and in reverse with some events sent twice (the login among the first).
  std::vector<Ev> in_order = Stream("u-fwd", "d-fwd", t0);
  std::vector<Ev> reversed = Stream("u-rev", "d-rev", t0);
  std::reverse(reversed.begin(), reversed.end());
  reversed.push_back(reversed[0]);
  reversed.push_back(reversed[6]);
  Send(AsOneUser(Stream("", "", t0), "ref"));
  for (const Ev& e : in_order) Send({e});  // one request each: they land in separate batches
  Send(reversed);

  for (const std::string& who : {std::string("fwd"), std::string("rev")}) {
    const std::string uid = "u-" + who, device = "d-" + who;
    Served user = WaitEqual(uid, "ref");
    Served want = Read(*http_, "ref");
    EXPECT_EQ(user.tags, want.tags) << who << ": the user's profile is the person's";
    EXPECT_EQ(user.uid, uid);
    EXPECT_TRUE(user.resolved_from.empty());
    EXPECT_EQ(user.devices, std::vector<std::string>{device});
    Served by_device = Read(*http_, device);
    EXPECT_EQ(by_device.status, 200);
    EXPECT_EQ(by_device.uid, uid) << who << ": the device answers for its user";
    EXPECT_EQ(by_device.resolved_from, device);
    EXPECT_EQ(by_device.tags, want.tags);
    HttpResult tag = http_->Get("/v1/profiles/" + device + "/tags/purchases");
    EXPECT_NE(tag.body.find(R"("value":2)"), std::string::npos) << tag.body;
    EXPECT_NE(tag.body.find(R"("resolved_from":")" + device + "\""), std::string::npos) << tag.body;
  }
  HttpResult batch = http_->Post("/v1/profiles:batchGet", R"({"uids":["d-fwd","u-rev"],"tags":["purchases"]})");
  EXPECT_EQ(batch.status, 200);
  EXPECT_NE(batch.body.find(R"("uid":"u-fwd")"), std::string::npos) << batch.body;
  size_t twos = 0;
  for (size_t at = batch.body.find(R"("purchases":{"value":2,)"); at != std::string::npos;
       at = batch.body.find(R"("purchases":{"value":2,)", at + 1)) {
    ++twos;
  }
  EXPECT_EQ(twos, 2u) << batch.body;
}

TEST_P(IdentityE2eTest, ADeviceBelongsToItsFirstLoginAndIsErasedWithThatUserOnly) {
  const int64_t t0 = NowMs() - 3600 * 1000;
  Send({{"", "shared", "click", t0, 1, 3}, {"", "shared", "click", t0 + 1000, 2, 3}});
  // The second user logs in later but its event arrives first.
  Send({{"second", "shared", "click", t0 + 9000, 3, 4}});
  Send({{"first", "shared", "click", t0 + 5000, 4, 5}});
  Send({{"second", "", "click", t0 + 10000, 5, 4}});
  ASSERT_TRUE(WaitUntil([&] { return Read(*http_, "first").devices == std::vector<std::string>{"shared"}; }))
      << Read(*http_, "first").tags;
  Served first = Read(*http_, "first");
  EXPECT_NE(first.tags.find(R"("3":2)"), std::string::npos) << "the device's clicks count for its owner: " << first.tags;
  Served second = Read(*http_, "second");
  EXPECT_TRUE(second.devices.empty()) << "a device seen with a later login stays with its first user";
  EXPECT_EQ(second.tags.find(R"("3":)"), std::string::npos) << second.tags;
  EXPECT_EQ(Read(*http_, "shared").uid, "first");

  // Erasing the later user leaves the device (its owner's) alone.
  HttpResult del = http_->Request("DELETE", "/v1/profiles/second");
  ASSERT_EQ(del.status, 200) << del.body;
  EXPECT_TRUE(WaitUntil([&] { return Read(*http_, "second").status == 404; }));
  EXPECT_EQ(Read(*http_, "first").tags, first.tags) << "the owner keeps its device's events";
  EXPECT_EQ(Read(*http_, "shared").uid, "first");

  del = http_->Request("DELETE", "/v1/profiles/first");
  ASSERT_EQ(del.status, 200) << del.body;
  EXPECT_TRUE(WaitUntil([&] { return Read(*http_, "first").status == 404 && Read(*http_, "shared").status == 404; }))
      << "the user and its device are erased";
}

INSTANTIATE_TEST_SUITE_P(Stores, IdentityE2eTest, ::testing::Values("rocksdb", "redis"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace portrait::testing_util
