// HttpServer: a small libmicrohttpd front with bounded bodies and JSON errors.
//
// A pool of threads, each with its own epoll loop, calls the handler synchronously
// (the handler may block, e.g. until events are durable). Bodies over the limit are
// refused with 413 before they are buffered; TCP_NODELAY is set on every connection;
// idle clients time out. Start/Stop from one thread; the handler must be thread-safe.
#pragma once

#include <functional>
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
  std::mutex streams_mu_;
  std::vector<std::weak_ptr<HttpStream>> streams_;  // open streams, closed before the daemon stops
};

// Splits "host:port"; false if malformed.
bool ParseHostPort(const std::string& listen, std::string* host, int* port);

}  // namespace portrait
