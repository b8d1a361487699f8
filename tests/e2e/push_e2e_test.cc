// Push ingestion as apps and web pages use it: bearer tokens per source, gzip bodies,
// and CORS for browsers, through the real binary.
#include <gtest/gtest.h>
#include <zlib.h>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

std::string Gzip(const std::string& in) {
  z_stream z{};
  deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);  // +16: gzip wrapper
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

class PushTest : public ServerFixture {
 protected:
  void SetUp() override {
    StartServer({{"max_body_bytes = 16777216", "max_body_bytes = 65536"},
                 {"max_json_depth = 32         # deeper JSON is rejected as too_deep",
                  "max_json_depth = 32\ncors_origins = [\"https://shop.example\"]\n"
                  "tokens = { app = \"app-token-123\", web = \"web-token-456\", "
                  "ops = { token = \"ops-token-789\", scopes = [\"read\", \"admin\"] } }"}});
  }
};

const std::string kEvent = R"({"uid":"p1","type":"click","ts":1700000000000,"props":{"item_id":1,"category_id":2}})";

TEST_F(PushTest, WritesNeedAKnownBearerToken) {
  HttpResult r = http_->Post("/v1/events", kEvent);
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("\"code\":\"unauthorized\""), std::string::npos) << r.body;
  EXPECT_EQ(http_->Request("POST", "/v1/events", kEvent, {"Authorization: Bearer nope-nope-nope"}).status, 401);
  EXPECT_EQ(http_->Request("DELETE", "/v1/profiles/p1", "", {}).status, 401);
  r = http_->Request("POST", "/v1/events", kEvent, {"Authorization: Bearer web-token-456"});
  EXPECT_EQ(r.status, 200) << r.body;
  // Rejections remember which source sent them.
  ASSERT_EQ(http_->Request("POST", "/v1/events", "{bad", {"Authorization: Bearer app-token-123"}).status, 400);
  const std::vector<std::string> ops = {"Authorization: Bearer ops-token-789"};
  HttpResult failed = http_->Request("GET", "/v1/failed?limit=1", "", ops);
  EXPECT_NE(failed.body.find(R"("source":"http:app")"), std::string::npos) << failed.body;
  EXPECT_EQ(http_->Get("/v1/profiles/nobody").status, 401);  // reads need the read scope
  EXPECT_EQ(http_->Request("GET", "/v1/profiles/nobody", "", ops).status, 404);
  EXPECT_EQ(http_->Request("GET", "/v1/profiles/nobody", "", {"Authorization: Bearer app-token-123"}).status, 403);
  EXPECT_NE(http_->Request("GET", "/metrics", "", ops).body.find("portrait_http_unauthorized_total 4"),
            std::string::npos);
}

TEST_F(PushTest, GzipBodiesAreInflatedWithinTheLimit) {
  std::string ndjson;
  for (int i = 0; i < 200; ++i) {
    ndjson += R"({"uid":"g1","type":"click","ts":)" + std::to_string(1700000000000 + i) + R"(,"props":{"item_id":)" +
              std::to_string(i) +
              R"(,"category_id":4}})"
              "\n";
  }
  std::vector<std::string> h = {"Authorization: Bearer app-token-123", "Content-Encoding: gzip"};
  HttpResult r = http_->Request("POST", "/v1/events", Gzip(ndjson), h);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"accepted":200,"rejected":[]})");
  r = http_->Request("POST", "/v1/events", "not gzip at all", h);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("\"code\":\"malformed_body\""), std::string::npos) << r.body;
  // Small on the wire, too large once inflated.
  std::string bomb = Gzip(std::string(200000, ' ') + kEvent);
  ASSERT_LT(bomb.size(), 65536u);
  r = http_->Request("POST", "/v1/events", bomb, h);
  EXPECT_EQ(r.status, 413) << r.body;
  r = http_->Request("POST", "/v1/events", kEvent, {"Authorization: Bearer app-token-123", "Content-Encoding: br"});
  EXPECT_EQ(r.status, 415);
  http_->SetBearer("ops-token-789");  // reads need the read scope
  ProfileView p = WaitForProfile(*http_, "g1", [](const ProfileView& v) { return v.click_items.size() == 200; });
  EXPECT_EQ(p.click_items.size(), 200u);
}

TEST_F(PushTest, BrowsersGetCorsForAllowedOrigins) {
  HttpResult pre = http_->Request("OPTIONS", "/v1/events", "",
                                  {"Origin: https://shop.example", "Access-Control-Request-Method: POST"});
  EXPECT_EQ(pre.status, 204);
  EXPECT_NE(pre.headers.find("Access-Control-Allow-Origin: https://shop.example"), std::string::npos) << pre.headers;
  EXPECT_NE(pre.headers.find("Access-Control-Allow-Headers: Content-Type, Content-Encoding, Authorization"),
            std::string::npos);
  HttpResult r = http_->Request("POST", "/v1/events", kEvent,
                                {"Origin: https://shop.example", "Authorization: Bearer web-token-456"});
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.headers.find("Access-Control-Allow-Origin: https://shop.example"), std::string::npos) << r.headers;
  r = http_->Request("GET", "/healthz", "", {"Origin: https://evil.example"});
  EXPECT_EQ(r.headers.find("Access-Control-Allow-Origin"), std::string::npos) << r.headers;
}

}  // namespace
}  // namespace portrait::testing_util
