// The webhook sink against a real HTTP server on loopback (libmicrohttpd, a thread per
// connection, counting the TCP connections it accepts): deliveries reuse one kept-alive
// connection, a 500 and a timeout are errors, the Idempotency-Key is sent, concurrent
// Deliver calls all arrive, the RetryQueue retries a failing hook and dead-letters one
// that never answers 2xx, and https:// works against a self-signed certificate given as
// the CA file (and fails without it).
#include "delivery/webhook.h"

#include <gtest/gtest.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "log/embedded/segment_log.h"
#include "temp_dir.h"

namespace portrait {
namespace {

using namespace std::chrono_literals;

WebhookOptions Options(int timeout_ms, int connections = 4, std::string ca_file = "") {
  WebhookOptions o;
  o.timeout_ms = timeout_ms;
  o.connections = connections;
  o.ca_file = std::move(ca_file);
  return o;
}

class HookServer {
 public:
  struct Post {
    std::string path, body, idempotency_key;
  };
  // Plain HTTP, or TLS with these PEM texts.
  explicit HookServer(std::string cert_pem = "", std::string key_pem = "")
      : cert_(std::move(cert_pem)), key_(std::move(key_pem)) {}
  ~HookServer() {
    if (daemon_) MHD_stop_daemon(daemon_);
  }

  bool Start() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    if (!cert_.empty()) {
      flags |= MHD_USE_TLS;
      daemon_ = MHD_start_daemon(flags, 0, nullptr, nullptr, &HookServer::Handle, this, MHD_OPTION_SOCK_ADDR, &a,
                                 MHD_OPTION_NOTIFY_CONNECTION, &HookServer::OnConnection, this,
                                 MHD_OPTION_NOTIFY_COMPLETED, &HookServer::OnCompleted, this,
                                 MHD_OPTION_HTTPS_MEM_CERT, cert_.c_str(), MHD_OPTION_HTTPS_MEM_KEY, key_.c_str(),
                                 MHD_OPTION_END);
    } else {
      daemon_ = MHD_start_daemon(flags, 0, nullptr, nullptr, &HookServer::Handle, this, MHD_OPTION_SOCK_ADDR, &a,
                                 MHD_OPTION_NOTIFY_CONNECTION, &HookServer::OnConnection, this,
                                 MHD_OPTION_NOTIFY_COMPLETED, &HookServer::OnCompleted, this, MHD_OPTION_END);
    }
    if (!daemon_) return false;
    port_ = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)->port;
    return true;
  }
  std::string Url(const std::string& path) const {
    return std::string(cert_.empty() ? "http" : "https") + "://127.0.0.1:" + std::to_string(port_) + path;
  }

  int port() const { return port_; }
  void AnswerWith(int status) { status_ = status; }
  void FailFirst(int n) { fail_first_ = n; }
  void Delay(std::chrono::milliseconds d) { delay_ms_ = static_cast<int>(d.count()); }
  int connections() const { return connections_; }
  int most_at_once() const { return most_at_once_; }
  std::vector<Post> posts() {
    std::lock_guard lk(mu_);
    return posts_;
  }

 private:
  static void OnConnection(void* cls, MHD_Connection*, void**, MHD_ConnectionNotificationCode code) {
    if (code == MHD_CONNECTION_NOTIFY_STARTED) ++static_cast<HookServer*>(cls)->connections_;
  }
  static void OnCompleted(void*, MHD_Connection*, void** req, MHD_RequestTerminationCode) {
    delete static_cast<std::string*>(*req);
    *req = nullptr;
  }
  static MHD_Result Handle(void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                           const char* data, size_t* size, void** req) {
    auto* self = static_cast<HookServer*>(cls);
    if (*req == nullptr) {
      *req = new std::string();
      return MHD_YES;
    }
    auto* body = static_cast<std::string*>(*req);
    if (*size > 0) {
      body->append(data, *size);
      *size = 0;
      return MHD_YES;
    }
    int now = ++self->in_flight_;
    for (int m = self->most_at_once_; now > m && !self->most_at_once_.compare_exchange_weak(m, now);) {
    }
    if (int d = self->delay_ms_; d > 0) std::this_thread::sleep_for(std::chrono::milliseconds(d));
    const char* key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    int status;
    {
      std::lock_guard lk(self->mu_);
      self->posts_.push_back({url, *body, key ? key : ""});
      status = self->fail_first_-- > 0 ? 500 : self->status_.load();
    }
    --self->in_flight_;
    MHD_Response* r = MHD_create_response_from_buffer(2, const_cast<char*>("{}"), MHD_RESPMEM_PERSISTENT);
    MHD_Result ok = MHD_queue_response(c, static_cast<unsigned>(status), r);
    MHD_destroy_response(r);
    return ok;
  }

  std::string cert_, key_;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
  std::atomic<int> status_{200}, delay_ms_{0}, connections_{0}, in_flight_{0}, most_at_once_{0};
  int fail_first_ = 0;  // under mu_
  std::mutex mu_;
  std::vector<Post> posts_;
};

class WebhookTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start()); }
  MetricsRegistry metrics_;
  HookServer server_;
};

TEST_F(WebhookTest, DeliveriesReuseOneKeptAliveConnectionAndSendTheIdempotencyKey) {
  WebhookSink sink(server_.Url("/hook"), Options(2000), &metrics_);
  for (int i = 0; i < 10; ++i) {
    Status st = sink.Deliver("d-" + std::to_string(i), R"({"n":)" + std::to_string(i) + "}");
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  ASSERT_TRUE(sink.Deliver("", "{}").ok());
  EXPECT_EQ(server_.connections(), 1) << "ten POSTs one after another, one TCP connection";
  auto posts = server_.posts();
  ASSERT_EQ(posts.size(), 11u);
  EXPECT_EQ(posts[3].path, "/hook");
  EXPECT_EQ(posts[3].body, R"({"n":3})");
  EXPECT_EQ(posts[3].idempotency_key, "d-3");
  EXPECT_EQ(posts[10].idempotency_key, "") << "no key, no header";
}

TEST_F(WebhookTest, A500IsAnErrorAndTheNext200IsDelivered) {
  WebhookSink sink(server_.Url("/hook"), 2000, &metrics_);
  server_.AnswerWith(500);
  Status st = sink.Deliver("k", "{}");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("answered 500"), std::string::npos) << st.message();
  server_.AnswerWith(404);
  EXPECT_FALSE(sink.Deliver("k", "{}").ok());
  server_.AnswerWith(204);
  EXPECT_TRUE(sink.Deliver("k", "{}").ok()) << "any 2xx is delivered";
  EXPECT_EQ(server_.connections(), 1) << "an error answer does not cost the connection";
}

TEST_F(WebhookTest, NoAnswerWithinTheTimeoutIsAnErrorAndTheSinkRecovers) {
  WebhookSink sink(server_.Url("/hook"), Options(300), &metrics_);
  server_.Delay(1500ms);
  auto start = std::chrono::steady_clock::now();
  Status st = sink.Deliver("slow", "{}");
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no answer within 300 ms"), std::string::npos) << st.message();
  EXPECT_LT(took, 1200ms);
  server_.Delay(0ms);
  st = sink.Deliver("fast", "{}");
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST_F(WebhookTest, ARefusedConnectionIsAnError) {
  int port = 0;
  {
    HookServer gone;
    ASSERT_TRUE(gone.Start());
    port = gone.port();
  }
  WebhookSink sink("http://127.0.0.1:" + std::to_string(port) + "/hook", 500, &metrics_);
  Status st = sink.Deliver("k", "{}");
  EXPECT_FALSE(st.ok());
}

TEST_F(WebhookTest, ConcurrentDeliverCallsAllArriveOverAFewConnections) {
  WebhookSink sink(server_.Url("/hook"), Options(5000, 4), &metrics_);
  server_.Delay(5ms);
  constexpr int kThreads = 8, kEach = 25;
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string key = std::to_string(t) + "-" + std::to_string(i);
        if (!sink.Deliver(key, R"({"k":")" + key + R"("})").ok()) ++failed;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed.load(), 0);
  std::set<std::string> keys;
  for (const auto& p : server_.posts()) {
    EXPECT_EQ(p.body, R"({"k":")" + p.idempotency_key + R"("})");
    keys.insert(p.idempotency_key);
  }
  EXPECT_EQ(keys.size(), static_cast<size_t>(kThreads * kEach)) << "each POST once";
  EXPECT_GT(server_.most_at_once(), 1) << "POSTs ran at the same time";
  EXPECT_LE(server_.connections(), 4) << "the pool's handles keep their connections";
}

// The RetryQueue around the real sink: the behaviour the decisions and segments rely on.
class WebhookRetryTest : public WebhookTest {
 protected:
  void OpenQueue(int attempts) {
    config_.initial_backoff_ms = 20;
    config_.multiplier = 2;
    config_.max_backoff_ms = 100;
    config_.attempts = attempts;
    SegmentLogOptions o;
    o.dir = dir_.path() + "/retry";
    o.partitions = RetryQueue::Steps(config_);
    auto retry = OpenSegmentLog(o, &metrics_);
    ASSERT_TRUE(retry.ok()) << retry.status().ToString();
    o.dir = dir_.path() + "/dead";
    o.partitions = 1;
    auto dead = OpenSegmentLog(o, &metrics_);
    ASSERT_TRUE(dead.ok()) << dead.status().ToString();
    retry_ = std::move(retry).value();
    dead_ = std::move(dead).value();
    sink_ = std::make_unique<WebhookSink>(server_.Url("/hook"), 2000, &metrics_);
    queue_ = std::make_unique<RetryQueue>(config_, retry_.get(), dead_.get(), &metrics_);
    queue_->AddSink(sink_.get());
    ASSERT_TRUE(queue_->Start().ok());
  }
  void TearDown() override { queue_.reset(); }
  size_t Deliveries(const std::string& key) {
    size_t n = 0;
    for (const auto& p : server_.posts()) n += p.idempotency_key == key;
    return n;
  }

  testing_util::TempDir dir_;
  RetryConfig config_;
  std::unique_ptr<Log> retry_, dead_;
  std::unique_ptr<WebhookSink> sink_;
  std::unique_ptr<RetryQueue> queue_;
};

TEST_F(WebhookRetryTest, TwoFailuresAreRetriedWithBackoffThenDelivered) {
  OpenQueue(4);
  server_.FailFirst(2);
  ASSERT_TRUE(queue_->Deliver(*sink_, "dec-1", R"({"id":"dec-1"})").ok()) << "queued, not an error for the caller";
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (server_.posts().size() < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(Deliveries("dec-1"), 3u) << "two 500s, then the 200; nothing after it";
  auto dead = ReadLatestDead(*dead_, 10);
  ASSERT_TRUE(dead.ok());
  EXPECT_TRUE(dead->empty());
}

TEST_F(WebhookRetryTest, AHookThatNeverAnswers2xxEndsInTheDeadLettersWithItsError) {
  OpenQueue(3);
  server_.AnswerWith(503);
  ASSERT_TRUE(queue_->Deliver(*sink_, "dec-2", R"({"id":"dec-2"})").ok());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::vector<std::pair<Offset, RetryItem>> dead;
  while (dead.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    auto d = ReadLatestDead(*dead_, 10);
    ASSERT_TRUE(d.ok());
    dead = *d;
  }
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].second.key, "dec-2");
  EXPECT_EQ(dead[0].second.failures, 3);
  EXPECT_NE(dead[0].second.error.find("answered 503"), std::string::npos) << dead[0].second.error;
  EXPECT_EQ(Deliveries("dec-2"), 3u);
}

// https:// against a certificate made for this test; skipped where `openssl` is missing.
class WebhookTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "openssl command not installed";
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) GTEST_SKIP() << "libmicrohttpd built without TLS";
    cert_file_ = dir_.path() + "/cert.pem";
    const std::string key_file = dir_.path() + "/key.pem";
    const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                            "-addext subjectAltName=IP:127.0.0.1 -keyout " + key_file + " -out " + cert_file_ +
                            " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    server_ = std::make_unique<HookServer>(Read(cert_file_), Read(key_file));
    ASSERT_TRUE(server_->Start());
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  testing_util::TempDir dir_;
  std::string cert_file_;
  MetricsRegistry metrics_;
  std::unique_ptr<HookServer> server_;
};

TEST_F(WebhookTlsTest, HttpsIsVerifiedAgainstTheCaFileAndKeepsItsConnection) {
  WebhookSink sink(server_->Url("/hook"), Options(5000, 4, cert_file_), &metrics_);
  for (int i = 0; i < 3; ++i) {
    Status st = sink.Deliver("tls-" + std::to_string(i), R"({"tls":true})");
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  auto posts = server_->posts();
  ASSERT_EQ(posts.size(), 3u);
  EXPECT_EQ(posts[2].idempotency_key, "tls-2");
  EXPECT_EQ(posts[2].body, R"({"tls":true})");
  EXPECT_EQ(server_->connections(), 1) << "one TLS connection for three POSTs";
}

TEST_F(WebhookTlsTest, AnUnknownCertificateIsAnError) {
  WebhookSink sink(server_->Url("/hook"), Options(5000), &metrics_);
  Status st = sink.Deliver("tls", "{}");
  EXPECT_FALSE(st.ok()) << "the self-signed certificate is not among the system's CAs";
  EXPECT_TRUE(server_->posts().empty());
}

}  // namespace
}  // namespace portrait
