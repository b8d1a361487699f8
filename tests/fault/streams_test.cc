// Stream limits against the real binary: 5,000 idle decision streams do not stop the server
// (those past [server] max_streams are answered 503, a POST is still answered at once), and
// streams whose clients do not read are closed once their unsent bytes pass the cap, with a
// last event saying why, while the server's memory stays bounded (printed).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

int64_t RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("VmRSS:")) return std::atoll(line.c_str() + 6);
  }
  return -1;
}

TEST(StreamLimitsTest, IdleAndNonReadingStreamsNeitherStopTheServerNorGrowItsMemory) {
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, 16384);
  setrlimit(RLIMIT_NOFILE, &nofile);
  if (nofile.rlim_cur < 6000) GTEST_SKIP() << "needs 6000 open files, the limit is " << nofile.rlim_cur;

  TempDir dir;
  std::string config = WriteExampleConfig(
      dir.path(), {{"max_json_depth = 32         # deeper JSON is rejected as too_deep",
                    "max_json_depth = 32\nmax_streams = 1000\nstream_buffer_bytes = 65536\nstream_heartbeat = \"500ms\""}});
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());
  const int64_t rss_start = RssKb(server.pid());

  // One stream that does not read, with a small receive window.
  int slow = ::socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;
  ::setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(slow, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string get = "GET /v1/decisions/stream HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(slow, get.data(), get.size(), MSG_NOSIGNAL);

  std::vector<int> idle;
  for (int i = 0; i < 5000; ++i) {
    int fd = OpenGetStream(server.port(), "/v1/decisions/stream");
    ASSERT_GE(fd, 0) << "stream " << i;
    idle.push_back(fd);
  }
  ASSERT_TRUE(WaitUntil([&] {
    std::string m = http.Get("/metrics").body;
    return MetricValue(m, "portrait_http_streams") >= 999 &&
           m.find("portrait_http_refused_total{limit=\"max_streams\"} 4") != std::string::npos;
  }, 30)) << http.Get("/metrics").body;

  // A POST is answered at once next to them.
  double best_ms = 1e9;
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    HttpResult r = http.Post("/v1/events", R"({"uid":"probe","type":"click","ts":1700000000000,"props":{"item_id":1,"category_id":1}})");
    ASSERT_EQ(r.status, 200) << r.body;
    best_ms = std::min(best_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("POST next to 5000 idle streams: best of 5 %.2f ms\n", best_ms);
  EXPECT_LT(best_ms, 100.0);

  // ~12,000 decisions (3 clicks of one category per user): several MB for every stream,
  // none of which reads.
  const int64_t ts = NowMs() - 60'000;
  for (int batch = 0; batch < 4; ++batch) {
    std::string body;
    for (int u = 0; u < 3000; ++u) {
      for (int k = 0; k < 3; ++k) {
        body += R"({"uid":"s)" + std::to_string(batch * 3000 + u) + R"(","type":"click","ts":)" +
                std::to_string(ts + k) + R"(,"props":{"item_id":)" + std::to_string(k) + R"(,"category_id":9}})" + "\n";
      }
    }
    ASSERT_EQ(http.Post("/v1/events", body).status, 200);
  }
  ASSERT_TRUE(WaitUntil([&] {
    std::string m = http.Get("/metrics").body;
    return m.find("portrait_http_streams_closed_total{reason=\"buffer\"} 1") != std::string::npos ||
           MetricValue(m, "portrait_decisions_total") >= 12000;
  }, 60));
  ASSERT_TRUE(WaitUntil([&] {
    return MetricValue(http.Get("/metrics").body, "portrait_http_streams_closed_total{reason=\"buffer\"}") >= 900;
  }, 60)) << http.Get("/metrics").body;
  const int64_t rss_end = RssKb(server.pid());
  std::printf("server RSS: %lld KB at start, %lld KB after ~12000 decisions to 1000 non-reading streams\n",
              static_cast<long long>(rss_start), static_cast<long long>(rss_end));
  EXPECT_LT(rss_end - rss_start, 400 * 1024) << "unbounded: 1000 streams x several MB each";

  // The slow stream ends with the reason.
  std::string got;
  char buf[65536];
  timeval tv{10, 0};
  ::setsockopt(slow, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (ssize_t n; (n = ::recv(slow, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
  EXPECT_NE(got.find("event: closed"), std::string::npos) << got.substr(got.size() > 300 ? got.size() - 300 : 0);
  EXPECT_NE(got.find("the client read too slowly"), std::string::npos);
  ::close(slow);
  for (int fd : idle) ::close(fd);
  EXPECT_EQ(http.Get("/healthz").status, 200);
}

// A parked stream hears a heartbeat line every stream_heartbeat, and one with nothing but
// heartbeats for stream_idle_timeout is closed with a last event saying so.
TEST(StreamLimitsTest, HeartbeatsThenAnIdleStreamIsClosedWithItsReason) {
  TempDir dir;
  std::string config = WriteExampleConfig(
      dir.path(), {{"max_json_depth = 32         # deeper JSON is rejected as too_deep",
                    "max_json_depth = 32\nstream_heartbeat = \"200ms\"\nstream_idle_timeout = \"1500ms\""}});
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  int fd = OpenGetStream(server.port(), "/v1/decisions/stream");
  ASSERT_GE(fd, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  char buf[4096];
  auto t0 = std::chrono::steady_clock::now();
  // Until the response's last chunk (the connection itself may stay open for keep-alive).
  for (ssize_t n; got.find("\r\n0\r\n\r\n") == std::string::npos && (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
    got.append(buf, static_cast<size_t>(n));
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(fd);
  EXPECT_NE(got.find(": heartbeat"), std::string::npos) << got;
  EXPECT_NE(got.find("event: closed"), std::string::npos) << got;
  EXPECT_NE(got.find("idle for 1 s"), std::string::npos) << got;
  EXPECT_LT(seconds, 8.0) << "the idle stream was not closed";
  HttpClient http(server.url());
  // Counted when the server finishes the stream, which may be just after its last chunk left.
  EXPECT_TRUE(WaitUntil([&] {
    return http.Get("/metrics").body.find("portrait_http_streams_closed_total{reason=\"idle\"} 1") != std::string::npos;
  }, 5));
}

}  // namespace
}  // namespace portrait::testing_util
