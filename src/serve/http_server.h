// HttpServer: a small libmicrohttpd front with bounded bodies and JSON errors.
//
// A pool of threads, each with its own epoll loop, calls the handler synchronously
// (the handler may block, e.g. until events are durable). Bodies over the limit are
// refused with 413 before they are buffered; TCP_NODELAY is set on every connection;
// idle clients time out. Start/Stop from one thread; the handler must be thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/metrics.h"
#include "core/status.h"

struct MHD_Daemon;

namespace portrait {

struct HttpRequest {
  std::string method;
  std::string path;  // percent-decoded
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;  // has at least 64 spare bytes of capacity after its end
};

struct HttpResponse {
  HttpResponse() = default;
  HttpResponse(int s, std::string type, std::string b, std::vector<std::pair<std::string, std::string>> h = {})
      : status(s), content_type(std::move(type)), body(std::move(b)), headers(std::move(h)) {}
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra response headers
};

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

 private:
  HttpServerOptions options_;
  HttpHandler handler_;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
  Counter* too_large_;
};

// Splits "host:port"; false if malformed.
bool ParseHostPort(const std::string& listen, std::string* host, int* port);

}  // namespace portrait
