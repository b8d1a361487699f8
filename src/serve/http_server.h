// HttpServer: a small libmicrohttpd front with bounded bodies and JSON errors.
//
// A pool of threads, each with its own epoll loop, calls the handler synchronously
// (the handler may block, e.g. until events are durable). Bodies over the limit are
// refused with 413 before they are buffered; TCP_NODELAY is set on every connection;
// idle clients time out. Start/Stop from one thread; the handler must be thread-safe.
//
// Limits: past `max_connections` open connections a request is answered 503 with
// Retry-After and its connection closed; past `max_streams` a streamed answer is replaced by
// a 503. Every stream gets a comment line (`: heartbeat`) every `stream_heartbeat_ms`, which
// also finds clients that went away; a stream with nothing but heartbeats for
// `stream_idle_timeout_ms`, or with more than `stream_buffer_bytes` unsent (a client that
// does not read), is closed with a last `event: closed` saying why.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <thread>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/metrics.h"
#include "core/status.h"

struct MHD_Daemon;
struct MHD_Connection;

#include "core/http.h"

namespace portrait {

using HttpHandler = std::function<HttpResponse(HttpRequest&)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = any free port
  int threads = 4;
  size_t max_body_bytes = 16u << 20;
  unsigned timeout_seconds = 60;
  int max_connections = 2048;             // past it: 503 (and the connection closed)
  int max_streams = 1000;                 // streamed answers open at once; past it: 503
  size_t stream_buffer_bytes = 1u << 20;  // a stream with more unsent is closed
  int64_t stream_heartbeat_ms = 15'000;   // a comment line to every stream this often
  int64_t stream_idle_timeout_ms = 3'600'000;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler, MetricsRegistry* metrics);
  ~HttpServer();
  Status Start();
  void Stop();
  int port() const { return port_; }

  // Internal: state of one request while its body arrives.
  struct Call;
  const HttpServerOptions& options() const { return options_; }
  HttpResponse Dispatch(HttpRequest& req) { return handler_(req); }
  Counter* too_large() const { return too_large_; }
  void Track(const std::shared_ptr<HttpStream>& s);
  void Untrack(const HttpStream* s);

 private:
  HttpServerOptions options_;
  HttpHandler handler_;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
  Counter* too_large_;
  void Heartbeats();  // the heartbeat thread

  std::mutex streams_mu_;
  std::vector<std::weak_ptr<HttpStream>> streams_;  // open streams, closed before the daemon stops
  std::thread heartbeat_;
  std::mutex beat_mu_;
  std::condition_variable beat_cv_;
  bool stopping_ = false;

 public:
  // Internal, for the connection callbacks.
  std::atomic<int> connections{0};
  Gauge* connections_gauge = nullptr;
  Gauge* streams_gauge = nullptr;
  Counter* refused_connections = nullptr;
  Counter* refused_streams = nullptr;
  Counter* closed_slow = nullptr;
  Counter* closed_idle = nullptr;
  size_t open_streams();
};

// Splits "host:port"; false if malformed.
bool ParseHostPort(const std::string& listen, std::string* host, int* port);

}  // namespace portrait
